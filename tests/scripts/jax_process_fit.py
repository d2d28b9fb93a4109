"""One of two JAX processes training together under ``keras.distribution`` (data parallel, gloo).

Usage: python jax_process_fit.py PROCESS_ID COORDINATOR_PORT LOG_DIR OUT_NPZ

Both processes pass the same ``log_dir`` to the inspector; each saves its own copy of the BN
variables after every epoch to OUT_NPZ (``{layer}/{variable}/{step}``) for the test to compare.
"""

import os
import sys
import warnings

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bn_inspect import BatchNormInspector  # noqa: E402


class SaveVariables(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[str, np.ndarray] = {}

    def _save(self, step: int) -> None:
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                for variable in (layer.moving_mean, layer.moving_variance, layer.gamma, layer.beta):
                    self.saved[f"{layer.name}/{variable.name}/{step}"] = np.asarray(variable.numpy())

    def on_train_begin(self, logs=None):
        self._save(0)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1)


def main(process_id: int, port: int, log_dir: str, out: str) -> None:
    keras.distribution.initialize(job_addresses=f"127.0.0.1:{port}", num_processes=2, process_id=process_id)
    distribution = keras.distribution.DataParallel(devices=jax.devices())
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1)]
    )
    model.compile("sgd", "mse")
    rng = np.random.default_rng(process_id)  # each process feeds its own data
    x = rng.normal(loc=process_id, size=(64, 6)).astype("float32")
    saver = SaveVariables()
    warnings.simplefilter("ignore")
    model.fit(
        x,
        x[:, :1],
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[BatchNormInspector(log_dir, probe_data=x[:16]), saver],
    )
    np.savez(out, process_index=jax.process_index(), **saver.saved)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
