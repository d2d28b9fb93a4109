"""Train into an object store with the inspector and die by SIGKILL in the middle of epoch 3.

Usage: python killed_s3_fit.py LOG_URL VARIABLES_NPZ

The S3 endpoint and credentials come from the environment (``FSSPEC_S3_ENDPOINT_URL``,
``AWS_*``). After each epoch the BN layer's moving mean is saved to VARIABLES_NPZ
(``step_K``), so the test can compare what reached the bucket with what the model held.
"""

import os
import signal
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from bn_inspect import BatchNormInspector


class SaveThenKillInEpoch3(keras.callbacks.Callback):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.out, self.epoch, self.saved = out, 0, {}

    def _save(self, step: int) -> None:
        self.saved[f"step_{step}"] = np.array(self.model.get_layer("bn").moving_mean.numpy())
        np.savez(self.out, **self.saved)

    def on_train_begin(self, logs=None):
        self._save(0)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1)

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2 and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)


def main(log_url: str, out: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    warnings.simplefilter("ignore")
    model.fit(
        x,
        x[:, :1],
        batch_size=16,
        epochs=5,
        verbose=0,
        callbacks=[BatchNormInspector(log_url, probe_data=x[:16]), SaveThenKillInEpoch3(out)],
    )
    sys.exit("not killed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
