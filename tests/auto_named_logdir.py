"""A logdir written the way users write one: models of one architecture built one after another
in one process, without ``keras.backend.clear_session()``, so every run's layers carry other
automatic names (``batch_normalization``, ``batch_normalization_1``, ...). Shared by the tests of
``bn-inspect compare``, the plugin's alignment route and the tab."""

from __future__ import annotations

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
