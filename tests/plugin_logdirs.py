"""Logdirs for the TensorBoard plugin's tests: real callback runs and a long synthetic run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bn_inspect import schema
from bn_inspect.writer import SummaryWriter

CALLBACK_RUNS = ("constant_init", "default")  # sorted, as TensorBoard lists them
EPOCHS = 6
STEPS_PER_EPOCH = 8
LOG_EVERY_N_BATCHES = 4  # within-epoch curves, for run "default" only
LONG_RUN_EPOCHS = 150
LONG_RUN_LAYER = "stem/bn"
LONG_RUN_CHANNELS = 3
REPEATED_STEP = 5  # written twice in the long run; the second value must win


def _model(initializer: str | None):
    import keras

    def bn(name: str):
        if initializer is None:
            return keras.layers.BatchNormalization(name=name)
        init = keras.initializers.Constant(0.5)
        return keras.layers.BatchNormalization(
            name=name,
            gamma_initializer=init,
            beta_initializer=init,
            moving_mean_initializer=init,
            moving_variance_initializer=init,
        )

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(24, name="dense_1"),
            bn("bn_1"),
            keras.layers.Activation("relu"),
            keras.layers.Dense(12, name="dense_2"),
            bn("bn_2"),
            keras.layers.Dense(2, name="head"),
        ],
        name="mlp",
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def write_callback_runs(root: Path) -> Path:
    """Train two tiny models with the real ``BatchNormInspector``: ``default`` (Keras' default
    BN initializers, within-epoch logging) and ``constant_init`` (every initializer
    ``Constant(0.5)``). Returns ``root``."""
    from bn_inspect import BatchNormInspector

    rng = np.random.default_rng(0)
    batch = 16
    x = (rng.normal(size=(batch * STEPS_PER_EPOCH, 6)) * 3 + 2).astype("float32")
    y = np.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], axis=1).astype("float32")
    for name, initializer, every in (("default", None, LOG_EVERY_N_BATCHES), ("constant_init", "constant", None)):
        model = _model(initializer)
        inspector = BatchNormInspector(root / name, probe_data=x[:32], log_every_n_batches=every)
        model.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=[inspector])
    return root


def long_run_values(step: int) -> np.ndarray:
    """Moving mean of the synthetic long run at ``step`` (channel c: ``step + c / 10``)."""
    return step + np.arange(LONG_RUN_CHANNELS, dtype=np.float32) / 10


def write_long_run(directory: Path) -> Path:
    """A schema-conformant run with ``LONG_RUN_EPOCHS`` epochs (steps 0..150) of one layer,
    written with bn-inspect's own writer; step ``REPEATED_STEP`` is written twice, first
    with a wrong value."""
    writer = SummaryWriter(directory)
    layer_entry = {"path": LONG_RUN_LAYER, "momentum": 0.9, "channels": LONG_RUN_CHANNELS}
    writer.add_config({"schema_version": schema.SCHEMA_VERSION, "steps_per_epoch": 1, "layers": [layer_entry]})
    for step in range(LONG_RUN_EPOCHS + 1):
        if step == REPEATED_STEP:
            writer.add_layer(LONG_RUN_LAYER, schema.MOVING_MEAN, np.full(LONG_RUN_CHANNELS, -1.0))
            writer.write_step(step)
        writer.add_layer(LONG_RUN_LAYER, schema.MOVING_MEAN, long_run_values(step))
        writer.add_layer(LONG_RUN_LAYER, schema.RESIDUAL_INIT_WEIGHT, np.float32(0.9**step))
        writer.write_step(step)
    writer.close()
    return directory
