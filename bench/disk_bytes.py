"""Event-file bytes per epoch divided by the raw float32 payload of one epoch.

Measured with the real ``BatchNormInspector`` (probe of 64 samples) on the overhead
benchmark's CNN (widths 16-64) and on models of 20 BN layers of one width (64, 256, 512
channels). Bytes per epoch = growth of the event file between two epoch ends (steady state:
the first write also carries each series' metadata and the run config, once per file). Raw
payload = 4 bytes per float32 value logged in one epoch (every per-channel vector, per-layer
scalar, model output, and plain scalar).

Run: ``python -m bench.disk_bytes``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from bench.common import Figure, Section, at_most, directory_bytes

GOAL_RATIO = 1.15  # at 64 channels and more, with readable tags (schema v3)
FULL = {"epochs": 4, "widths": (64, 256, 512), "layers": 20, "cnn": {"blocks": 20, "input_size": 32}}
QUICK = {"epochs": 2, "widths": (8,), "layers": 2, "cnn": {"blocks": 2, "input_size": 8}}


def raw_payload_per_step(log_dir: Path) -> int:
    """Bytes of every float32 value logged at the last epoch step of the run in ``log_dir``."""
    from bn_inspect import load_logdir

    run = load_logdir(log_dir)["."]
    step = int(run.epochs[-1])
    series = [s for quantities in run.layers.values() for s in quantities.values()]
    series += list(run.model.values()) + list(run.scalars.values())
    return sum(np.asarray(s.at(step), dtype=np.float32).nbytes for s in series if step in s.steps)


def bytes_per_epoch(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int) -> dict:
    """Fit ``model`` with the inspector: steady-state bytes per epoch, raw payload, ratio."""
    from bn_inspect import BatchNormInspector

    log_dir = Path(tempfile.mkdtemp(prefix="bench-bytes-"))
    sizes: list[int] = []

    class FileSize(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            sizes.append(directory_bytes(log_dir))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=64,
            verbose=0,
            callbacks=[BatchNormInspector(log_dir, probe_data=x[:64]), FileSize()],
        )
    raw = raw_payload_per_step(log_dir)
    per_epoch = (sizes[-1] - sizes[0]) / (len(sizes) - 1)
    shutil.rmtree(log_dir, ignore_errors=True)
    return {
        "bytes_per_epoch": per_epoch,
        "raw_payload_per_epoch": raw,
        "ratio": per_epoch / raw,
        "file_bytes": sizes[-1],
    }


def dense_bn_model(width: int, layers: int = 20) -> keras.Model:
    """``layers`` blocks of Dense(width)-BN-ReLU: BN layers of ``width`` channels, cheap to fit."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((width,))
    x = inputs
    for _ in range(layers):
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(width)(x)))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def measure_cnn(epochs: int, blocks: int = 20, input_size: int = 32) -> dict:
    """:func:`bytes_per_epoch` on the overhead benchmark's CNN."""
    from bench.overhead import conv_bn_model

    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, input_size, input_size, 3)).astype("float32")
    return bytes_per_epoch(conv_bn_model(blocks, input_size), x, rng.integers(0, 10, size=256), epochs)


def measure_width(width: int, epochs: int, layers: int = 20) -> dict:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, width)).astype("float32")
    return bytes_per_epoch(dense_bn_model(width, layers), x, rng.integers(0, 10, size=256), epochs)


def run(quick: bool = False) -> Section:
    """Benchmark 2 as a RESULTS.md section."""
    sizes = QUICK if quick else FULL
    cnn = measure_cnn(sizes["epochs"], **sizes["cnn"])
    by_width = {width: measure_width(width, sizes["epochs"], sizes["layers"]) for width in sizes["widths"]}
    blocks, layers = sizes["cnn"]["blocks"], sizes["layers"]
    figures: list[Figure] = [
        at_most(f"event-file bytes / raw float32, CNN of {blocks} BN layers (widths 16-64)", cnn["ratio"], GOAL_RATIO)
    ]
    figures += [
        at_most(f"event-file bytes / raw float32, {layers} BN layers × {w} channels", r["ratio"], GOAL_RATIO)
        for w, r in by_width.items()
    ]
    lines = ["| model | raw payload / epoch | event-file bytes / epoch | ratio |", "|---|---|---|---|"]
    rows = [(f"CNN, {blocks} BN layers, widths 16-64", cnn)] + [
        (f"{layers} BN layers × {w} channels", r) for w, r in by_width.items()
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['raw_payload_per_epoch']:,} | {r['bytes_per_epoch']:,.0f} | {r['ratio']:.3f} |")
    return Section(
        "Bytes on disk",
        "BatchNormInspector with a 64-sample probe; bytes per epoch = event-file growth between two epoch "
        "ends; raw = 4 bytes per float32 value logged that epoch (variables, probe statistics, per-layer "
        "figures, model outputs on the probe, plain scalars). Per-width models: Dense-BN-ReLU blocks.",
        figures,
        lines,
    )


if __name__ == "__main__":
    print("\n".join(run().details))
