"""Synthetic logdirs written with bn-inspect's own writer, for the plugin and front-end benchmarks.

Each run holds a config record and, per layer and epoch step (0..epochs), the chosen
per-channel quantities plus the per-layer figures the callback always writes
(:func:`bn_inspect.summaries.add_variables` and ``add_moving_figures``). Values are smooth in
channel and epoch so heatmaps look like real ones; their content does not change any timing.

A logdir is cached under ``bench/out`` by its specification: rerunning reuses it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bn_inspect import schema, summaries
from bn_inspect.writer import SummaryWriter

MOMENTUM = 0.99
STEPS_PER_EPOCH = 100


@dataclass(frozen=True)
class Spec:
    """What a synthetic logdir holds."""

    runs: int
    layers: int
    epochs: int  # steps 0..epochs are written
    channels: int
    quantities: tuple[str, ...] = schema.VARIABLE_QUANTITIES

    @property
    def name(self) -> str:
        codes = "-".join(schema.TAG_CODES[q] for q in self.quantities)
        return f"r{self.runs}-l{self.layers}-e{self.epochs}-c{self.channels}-{codes}"

    @property
    def raw_bytes(self) -> int:
        """float32 bytes of the per-channel quantities alone."""
        return 4 * self.runs * self.layers * (self.epochs + 1) * self.channels * len(self.quantities)


def run_name(index: int) -> str:
    return f"run_{index:02d}"


def layer_path(index: int) -> str:
    return f"block_{index:02d}/batch_normalization"


def _config(spec: Spec) -> dict:
    layer = {
        "class_name": "BatchNormalization",
        "momentum": MOMENTUM,
        "epsilon": 0.001,
        "axis": -1,
        "center": True,
        "scale": True,
        "trainable": True,
        "synchronized": False,
        "channels": spec.channels,
    }
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "model_name": "synthetic",
        "backend": "tensorflow",
        "batch_size": 64,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "epochs": spec.epochs,
        "probe_samples": 0,
        "layers": [dict(layer, path=layer_path(i)) for i in range(spec.layers)],
    }


def write_run(directory: Path, spec: Spec, seed: int) -> None:
    """One run of ``spec`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(spec.layers, len(spec.quantities), spec.channels)).astype(np.float32)
    waves = np.sin(np.arange(spec.channels, dtype=np.float32) / 7.0)
    writer = SummaryWriter(directory)
    writer.add_config(_config(spec))
    start: dict[str, dict[str, np.ndarray]] = {}
    for step in range(spec.epochs + 1):
        fade = np.float32(1.0 - np.exp(-step / 20.0))
        updates = step * STEPS_PER_EPOCH
        for i in range(spec.layers):
            path = layer_path(i)
            values = {q: base[i, k] * fade + waves * np.float32(0.1 * k) for k, q in enumerate(spec.quantities)}
            for quantity, value in values.items():
                writer.add_layer(path, quantity, value)
            writer.add_layer(path, schema.UPDATES, np.float32(updates))
            writer.add_layer(path, schema.RESIDUAL_INIT_WEIGHT, np.float32(MOMENTUM**updates))
            writer.add_layer(path, schema.NONFINITE_CHANNELS, np.float32(0))
            if schema.MOVING_MEAN in values and schema.MOVING_VARIANCE in values:
                start.setdefault(path, values)
                summaries.add_moving_figures(writer, {path: values}, start, {})
        writer.write_step(step)
    writer.close()


def ensure_logdir(spec: Spec, root: Path) -> tuple[Path, float]:
    """The logdir of ``spec`` under ``root`` (written unless already there) and the seconds
    writing took (0 when reused)."""
    logdir = root / spec.name
    marker = logdir / "spec.json"
    written = dict(asdict(spec), schema_version=schema.SCHEMA_VERSION, figures=list(schema.LAYER_SCALAR_QUANTITIES))
    if marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(written)):
        return logdir, 0.0
    shutil.rmtree(logdir, ignore_errors=True)
    start = time.perf_counter()
    for r in range(spec.runs):
        write_run(logdir / run_name(r), spec, seed=r)
    seconds = time.perf_counter() - start
    marker.write_text(json.dumps(written))
    return logdir, seconds


def event_bytes(logdir: Path) -> int:
    """Bytes of every event file under ``logdir``."""
    return sum(p.stat().st_size for p in logdir.rglob("*tfevents*"))
