"""Train with the inspector and die by SIGKILL in the middle of epoch 3.

Usage: python killed_fit.py LOG_DIR

Before the kill, a prefix of a valid event record is appended to the inspector's event file,
as a process killed while writing leaves it: the file ends in a truncated record.
"""

import os
import signal
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

from bn_inspect import BatchNormInspector
from bn_inspect.events import frame_record, is_event_file


class KillInEpoch3(keras.callbacks.Callback):
    """On the second batch of epoch 3, half-write a record and SIGKILL this process."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2 and batch == 1:
            (path,) = [p for p in self.log_dir.iterdir() if is_event_file(p.name)]
            value = summary_pb2.Summary.Value(tag="bn_inspect/partial", simple_value=1.0)
            event = event_pb2.Event(wall_time=time.time(), step=3, summary=summary_pb2.Summary(value=[value]))
            record = frame_record(event.SerializeToString())
            with open(path, "ab") as handle:
                handle.write(record[: len(record) // 2])
                handle.flush()
                os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)


def main(log_dir: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    warnings.simplefilter("ignore")
    model.fit(
        x,
        x[:, :1],
        batch_size=16,
        epochs=5,
        verbose=0,
        callbacks=[BatchNormInspector(log_dir, probe_data=x[:16]), KillInEpoch3(Path(log_dir))],
    )
    sys.exit("not killed")


if __name__ == "__main__":
    main(sys.argv[1])
