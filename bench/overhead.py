"""Training overhead and bytes on disk of BatchNormInspector, measured side by side.

Conditions, interleaved in every repetition (fresh model, same seed each time):
``none`` (no callback), ``inspector`` (BatchNormInspector with a 64-sample probe),
``inspector+reference`` (plus population statistics over 1024 samples, when available), and
``keras-tensorboard`` (``keras.callbacks.TensorBoard(histogram_freq=1)``, what users run today).

Two figures per condition: the median fit time divided by the median ``none`` fit time, and
the median share of fit time spent inside the callback's own hooks (stable on noisy machines).

Run: ``python -m bench.overhead [--reps 3] [--epochs 5]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end", "on_train_batch_end")


def conv_bn_model(blocks: int = 20, input_size: int = 32, seed: int = 0) -> keras.Model:
    """A CNN of ``blocks`` Conv-BN-ReLU blocks (widths 16→64), global pooling and a classifier."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3))
    x = inputs
    for i in range(blocks):
        width = 16 * 2 ** min(i // 7, 2)
        stride = 2 if i in (7, 14) else 1
        x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class HookTimer(keras.callbacks.Callback):
    """Wraps a callback and adds up the wall time spent in its hooks."""

    def __init__(self, inner: keras.callbacks.Callback) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = 0.0
        for hook in HOOKS:
            method = getattr(type(inner), hook)
            if getattr(method, "_is_default", False) and hook == "on_train_batch_end":
                continue  # keep Keras' async batch dispatch as the bare callback would
            setattr(self, hook, self._timed(getattr(inner, hook)))

    def _timed(self, method: Callable) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return call

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.inner.set_params(params)


def make_callback(condition: str, log_dir: Path, x: np.ndarray) -> keras.callbacks.Callback | None:
    from bn_inspect import BatchNormInspector

    if condition == "none":
        return None
    if condition == "inspector":
        return BatchNormInspector(log_dir, probe_data=x[:64])
    if condition == "inspector+reference":
        return BatchNormInspector(log_dir, probe_data=x[:64], reference_data=x[:1024])
    if condition == "keras-tensorboard":
        return keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1)
    raise ValueError(condition)


def reference_supported() -> bool:
    import inspect

    from bn_inspect import BatchNormInspector

    return "reference_data" in inspect.signature(BatchNormInspector.__init__).parameters


def one_fit(condition: str, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int) -> dict:
    model = conv_bn_model()
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{condition}-"))
    callback = make_callback(condition, log_dir, x)
    timer = HookTimer(callback) if callback is not None else None
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer] if timer else [])
    seconds = time.perf_counter() - start
    bytes_on_disk = sum(p.stat().st_size for p in log_dir.rglob("*") if p.is_file())
    shutil.rmtree(log_dir, ignore_errors=True)
    return {"fit": seconds, "hooks": timer.seconds if timer else 0.0, "bytes": bytes_on_disk}


def measure_overhead(reps: int, epochs: int, samples: int = 1024, batch_size: int = 64) -> dict:
    """Median fit seconds, hook seconds and ratios per condition (interleaved repetitions)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=samples)
    conditions = ["none", "inspector", "keras-tensorboard"]
    if reference_supported():
        conditions.insert(2, "inspector+reference")
    one_fit("none", x[:128], y[:128], 1, batch_size)  # warm up TensorFlow itself
    results: dict[str, list[dict]] = {c: [] for c in conditions}
    order = list(conditions)
    for _ in range(reps):
        random.Random(len(results["none"])).shuffle(order)
        for condition in order:
            results[condition].append(one_fit(condition, x, y, epochs, batch_size))
    base = statistics.median(r["fit"] for r in results["none"])
    summary = {}
    for condition, runs in results.items():
        fit = statistics.median(r["fit"] for r in runs)
        summary[condition] = {
            "fit_seconds": fit,
            "fit_ratio": fit / base,
            "hooks_share": statistics.median(r["hooks"] / r["fit"] for r in runs),
            "bytes": statistics.median(r["bytes"] for r in runs),
        }
    return {
        "conditions": summary,
        "setup": f"{samples} samples 32x32x3, batch {batch_size} ({samples // batch_size} steps/epoch), "
        f"{epochs} epochs, 20 Conv-BN blocks, probe 64 samples, {reps} interleaved repetitions",
    }


def measure_bytes(epochs: int = 6) -> dict:
    """Event-file bytes per epoch divided by the raw float32 payload of one epoch."""
    from bn_inspect import BatchNormInspector, load_logdir

    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=256)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-bytes-"))
    sizes: list[int] = []

    class FileSize(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            sizes.append(sum(p.stat().st_size for p in log_dir.rglob("*") if p.is_file()))

    model = conv_bn_model()
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0,
              callbacks=[BatchNormInspector(log_dir, probe_data=x[:64]), FileSize()])
    run = load_logdir(log_dir)["."]
    raw_per_step = sum(
        series.values[0].nbytes for quantities in run.layers.values() for series in quantities.values()
    ) + sum(series.values[0].nbytes for series in run.model.values()) + 4 * len(run.scalars)
    per_epoch = (sizes[-1] - sizes[0]) / (len(sizes) - 1)
    shutil.rmtree(log_dir, ignore_errors=True)
    return {"bytes_per_epoch": per_epoch, "raw_payload_per_epoch": raw_per_step, "ratio": per_epoch / raw_per_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    print(measure_overhead(args.reps, args.epochs))
    print(measure_bytes())


if __name__ == "__main__":
    main()
