"""A logdir written the way users write one: models of one architecture built one after another
in one process, without ``keras.backend.clear_session()``, so every run's layers carry other
automatic names (``batch_normalization``, ``batch_normalization_1``, ...). Shared by the tests of
``bn-inspect compare``, the plugin's alignment route and the tab."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SAMPLES, BATCH = 64, 16
# run -> (BN initializers Constant(0.5), a second Dense(8) -> BN block, epochs)
RUNS = {"init_default": (False, False, 2), "init_custom": (True, False, 2), "deeper": (False, True, 2)}


def _model(constant: bool, extra_bn: bool):
    """The article's model (Dense(32) -> BN -> Dense(1)) with automatic names; ``constant``:
    every BN initializer ``Constant(0.5)``; ``extra_bn`` adds Dense(8) -> BN before the head."""
    import keras

    keras.utils.set_random_seed(1)
    half = keras.initializers.Constant(0.5)
    options = (
        dict(
            beta_initializer=half,
            gamma_initializer=half,
            moving_mean_initializer=half,
            moving_variance_initializer=half,
        )
        if constant
        else {}
    )
    layers = [keras.Input((10,)), keras.layers.Dense(32), keras.layers.BatchNormalization(**options)]
    if extra_bn:
        layers += [keras.layers.Dense(8), keras.layers.BatchNormalization()]
    model = keras.Sequential([*layers, keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model


def write_auto_named_runs(root: Path) -> dict:
    """Train every run of ``RUNS`` into ``root/<run>``; return the root, each run's BN paths and
    each BN layer's final (moving mean, moving variance)."""
    from bn_inspect import BatchNormInspector
    from bn_inspect.layers import find_batchnorm_layers

    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, 10)).astype("float32")
    y = rng.random((SAMPLES, 1)).astype("float32")
    paths, states = {}, {}
    for run, (constant, extra_bn, epochs) in RUNS.items():
        model = _model(constant, extra_bn)
        inspector = BatchNormInspector(root / run, probe_data=x[:16])
        model.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0, callbacks=[inspector])
        found = find_batchnorm_layers(model)
        paths[run] = [f.path for f in found]
        states[run] = [(f.layer.moving_mean.numpy(), f.layer.moving_variance.numpy()) for f in found]
    return {"root": str(root), "paths": paths, "states": states}


def write_auto_named_runs_in_a_new_process(root: Path) -> dict:
    """:func:`write_auto_named_runs` in a new Python process, as a user's script runs: Keras
    numbers the layers from ``batch_normalization`` on, whatever models this process built before."""
    with tempfile.TemporaryDirectory() as scratch:
        answer = Path(scratch) / "auto_named.json"
        subprocess.run([sys.executable, __file__, str(root), str(answer)], check=True)
        written = json.loads(answer.read_text())
    written["states"] = {
        run: [tuple(np.asarray(values, np.float32) for values in state) for state in states]
        for run, states in written["states"].items()
    }
    return written


# A sweep of 200 runs: learning rate x seed, all models of one process, so run k's layer is
# `batch_normalization_<k + 1000>` (matched across runs, and with the runs above, by name; far
# from the numbers the test session's own models get, which would match by identical path).
SWEEP_LRS = ("0.001", "0.01", "0.1", "0.3")
SWEEP_SEEDS = 50
SWEEP_CHANNELS = 16
SWEEP_EPOCHS = 2
SWEEP_STEPS_PER_EPOCH = 8


def sweep_run_name(lr: str, seed: int) -> str:
    return f"sweep/lr{lr}_seed{seed:02d}"


def write_sweep(root: Path) -> list[str]:
    """200 schema-conformant runs written with bn-inspect's own writer (training 200 models
    would take minutes): one BN layer of ``SWEEP_CHANNELS`` channels, epochs 0..2, the moving
    statistics of a momentum-0.99 EMA after 8 steps per epoch, so the initializer still weighs
    85% at the last epoch in every run. Returns the run names."""
    from bn_inspect import schema
    from bn_inspect.writer import SummaryWriter

    names = []
    for k, (lr, seed) in enumerate((lr, seed) for lr in SWEEP_LRS for seed in range(SWEEP_SEEDS)):
        name = sweep_run_name(lr, seed)
        path = f"batch_normalization_{k + 1000}"
        rng = np.random.default_rng(k)
        config = {
            "model_name": f"sequential_{k}",
            "backend": "tensorflow",
            "keras_version": "3",
            "batch_size": 32,
            "steps_per_epoch": SWEEP_STEPS_PER_EPOCH,
            "layers": [
                {
                    "path": path,
                    "channels": SWEEP_CHANNELS,
                    "momentum": 0.99,
                    "epsilon": 1e-3,
                    "axis": -1,
                    "trainable": True,
                    "synchronized": False,
                }
            ],
        }
        target_mean, target_variance = rng.normal(size=SWEEP_CHANNELS), rng.uniform(0.5, 2, SWEEP_CHANNELS)
        writer = SummaryWriter(root / name)
        writer.add_config(config)
        for step in range(SWEEP_EPOCHS + 1):
            residual = 0.99 ** (SWEEP_STEPS_PER_EPOCH * step)
            writer.add_layer(path, schema.MOVING_MEAN, ((1 - residual) * target_mean).astype(np.float32))
            writer.add_layer(
                path, schema.MOVING_VARIANCE, (residual + (1 - residual) * target_variance).astype(np.float32)
            )
            writer.add_layer(path, schema.GAMMA, np.ones(SWEEP_CHANNELS, np.float32))
            writer.add_layer(path, schema.BETA, np.zeros(SWEEP_CHANNELS, np.float32))
            writer.add_layer(path, schema.UPDATES, np.float32(SWEEP_STEPS_PER_EPOCH * step))
            writer.add_layer(path, schema.RESIDUAL_INIT_WEIGHT, np.float32(residual))
            writer.write_step(step)
        writer.close()
        names.append(name)
    return names


if __name__ == "__main__":
    written = write_auto_named_runs(Path(sys.argv[1]))
    written["states"] = {
        run: [[values.tolist() for values in state] for state in states] for run, states in written["states"].items()
    }
    Path(sys.argv[2]).write_text(json.dumps(written))
