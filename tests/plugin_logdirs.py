"""Logdirs for the TensorBoard plugin's tests: real callback runs, a synthetic run with replicas
and a long synthetic run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.reader import load_run
from bn_inspect.writer import SummaryWriter

CALLBACK_RUNS = ("constant_init", "default")  # sorted, as TensorBoard lists them
FROZEN_RUN = "frozen"  # real callback run: FROZEN_LAYER trainable=False, with reference_data
FROZEN_LAYER = "bn_1"
REPLICA_RUN = "replicas"  # synthetic: 2 replicas, non-finite moving variance in NONFINITE_LAYER
NONFINITE_LAYER = "bn_2"
RUNS = tuple(sorted((*CALLBACK_RUNS, FROZEN_RUN, REPLICA_RUN)))  # every run of the logdir
EPOCHS = 6
STEPS_PER_EPOCH = 8
LOG_EVERY_N_BATCHES = 4  # within-epoch curves, for run "default" only
LONG_RUN_EPOCHS = 150
LONG_RUN_LAYER = "stem/bn"
LONG_RUN_CHANNELS = 3
REPEATED_STEP = 5  # written twice in the long run; the second value must win


def _model(initializer: str | None, frozen: str | None = None):
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
    if frozen is not None:
        model.get_layer(frozen).trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def write_callback_runs(root: Path) -> Path:
    """Train three tiny models with the real ``BatchNormInspector``: ``default`` (Keras' default
    BN initializers, within-epoch logging), ``constant_init`` (every initializer
    ``Constant(0.5)``) and ``frozen`` (``FROZEN_LAYER`` trainable=False, population statistics
    of ``reference_data``); then write the synthetic ``replicas`` run. Returns ``root``."""
    from bn_inspect import BatchNormInspector

    rng = np.random.default_rng(0)
    batch = 16
    x = (rng.normal(size=(batch * STEPS_PER_EPOCH, 6)) * 3 + 2).astype("float32")
    y = np.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], axis=1).astype("float32")
    runs = (
        ("default", None, None, {"log_every_n_batches": LOG_EVERY_N_BATCHES}),
        ("constant_init", "constant", None, {}),
        (FROZEN_RUN, None, FROZEN_LAYER, {"reference_data": x}),
    )
    for name, initializer, frozen, options in runs:
        model = _model(initializer, frozen)
        inspector = BatchNormInspector(root / name, probe_data=x[:32], **options)
        model.fit(x, y, batch_size=batch, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=[inspector])
    write_replica_run(root / REPLICA_RUN, load_run(root / "default", "default").config)
    return root


def write_replica_run(directory: Path, template: dict) -> Path:
    """A schema-conformant run as ``MirroredStrategy`` with 2 unsynchronized replicas would log
    it, written with bn-inspect's own writer (training under a strategy needs a process with 2
    logical CPUs; tests/test_robustness.py covers that). Layers and config follow ``template``
    (the ``default`` run's). Channel 3 of ``NONFINITE_LAYER``'s moving variance is NaN from
    epoch 4 and channel 7 negative from epoch 5. Every derived figure uses bn_inspect.stats."""
    rng = np.random.default_rng(7)
    config = dict(template, model_name="mlp_mirrored", replicas=2, replica_probe_shards=[16, 16])
    writer = SummaryWriter(directory)
    writer.add_config(config)
    layers = {}
    for entry in config["layers"]:
        channels = entry["channels"]
        layers[entry["path"]] = (
            entry["epsilon"],
            rng.normal(size=channels) * 2,
            rng.uniform(0.5, 2.0, channels),
            np.abs(rng.normal(size=channels)) * 0.8,
            np.abs(rng.normal(size=channels)) * 0.5,
        )
    for step in range(EPOCHS + 1):
        residual = 0.99 ** (STEPS_PER_EPOCH * step)
        gaps = []
        for path, (epsilon, mean, variance, mean_spread, variance_spread) in layers.items():
            moving_mean = ((1 - residual) * mean).astype(np.float32)
            moving_variance = (residual + (1 - residual) * variance).astype(np.float32)
            if path == NONFINITE_LAYER and step >= 4:
                moving_variance[3] = np.nan
            if path == NONFINITE_LAYER and step >= 5:
                moving_variance[7] = -0.05
            batch_mean = mean + rng.normal(size=mean.size) * 0.2
            batch_variance = variance * rng.uniform(0.8, 1.2, variance.size)
            batch_mean_spread = mean_spread * (1 + 0.1 * rng.normal(size=mean.size))
            values = {
                schema.MOVING_MEAN: moving_mean,
                schema.MOVING_VARIANCE: moving_variance,
                schema.GAMMA: 1 + 0.02 * step * np.sin(np.arange(mean.size)),
                schema.BETA: 0.02 * step * np.cos(np.arange(mean.size)),
                schema.UPDATES: np.float32(STEPS_PER_EPOCH * step),
                schema.RESIDUAL_INIT_WEIGHT: np.float32(residual),
                schema.NONFINITE_CHANNELS: np.float32(stats.nonfinite_channels(moving_mean, moving_variance)),
                schema.PROBE_BATCH_MEAN: batch_mean,
                schema.PROBE_BATCH_VARIANCE: batch_variance,
                schema.REPLICA_BATCH_MEAN_SPREAD: batch_mean_spread,
                schema.REPLICA_BATCH_VARIANCE_SPREAD: variance_spread * (1 + 0.1 * rng.normal(size=mean.size)),
                schema.REPLICA_MOVING_MEAN_SPREAD: (1 - residual) * mean_spread * 0.3,
                schema.REPLICA_MOVING_VARIANCE_SPREAD: (1 - residual) * variance_spread * 0.3,
            }
            gap = stats.replica_mean_spread_gap(batch_mean_spread, batch_variance, epsilon)
            values[schema.PROBE_MEAN_GAP], values[schema.PROBE_VAR_LOG_RATIO] = stats.layer_gaps(
                batch_mean, batch_variance, moving_mean, moving_variance, epsilon
            )
            values[schema.REPLICA_MEAN_SPREAD_GAP] = gap
            gaps.append(gap)
            for quantity, value in values.items():
                writer.add_layer(path, quantity, value)
        broken = step >= 4  # inference outputs are NaN once a moving variance is
        writer.add_model(
            schema.OUTPUT_GAP, np.full(3, np.nan) if broken else np.array([0.5, 2.0, 0.4]) * residual + 0.05
        )
        writer.add_scalar(schema.SCALAR_MAX_REPLICA_SPREAD, max(gaps))
        writer.write_step(step)
    writer.close()
    return directory


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
