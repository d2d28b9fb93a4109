"""The kinds of summaries the inspector writes, each from values already on the host.

One function per kind: the BN variables and what follows from them, the probe, the replicas'
spread, the population statistics. Each queues values on a :class:`SummaryWriter`; the
caller writes the step.

Example:
    >>> import tempfile, numpy as np
    >>> from bn_inspect.writer import SummaryWriter
    >>> writer = SummaryWriter(tempfile.mkdtemp())
    >>> from bn_inspect.transfer import Snapshot
    >>> block = np.array([[0.0, 0.0], [1.0, 1.0]], "float32")  # moving mean and variance of 2 channels
    >>> snapshot = Snapshot({"bn": block}, {"bn": ("moving_mean", "moving_variance")}, {"bn": 0})
    >>> add_variables(writer, snapshot, {"bn": (0.99, 100)}, "epoch")
    >>> writer.write_step(1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.distribution import replica_values
from bn_inspect.layers import FoundLayer
from bn_inspect.probe import ProbeResult, ReplicaResult
from bn_inspect.transfer import Snapshot

# Model outputs on the probe are stored raw only up to this many floats per mode.
MAX_STORED_OUTPUT_VALUES = 65536

Values = dict[str, dict[str, np.ndarray]]  # layer path -> variable name -> float32 [channels]


def _max_finite(gaps: Sequence[float]) -> float | None:
    measured = [gap for gap in gaps if np.isfinite(gap)]  # frozen layers measure none
    return float(max(measured)) if measured else None


def add_variables(
    writer: Any, snapshot: Snapshot, momentum_updates: dict[str, tuple[float, int]], timeline: str
) -> None:
    """Each layer's variables (its block, as it came from the device), its updates, the weight
    the initializer still has in its moving statistics and its count of non-finite channels.

    ``momentum_updates`` maps a layer path to its momentum and the updates it has had.
    """
    paths = list(snapshot.blocks)
    for path in paths:
        writer.add_layer_group(path, snapshot.names[path], snapshot.blocks[path], timeline)
    momenta = np.array([momentum_updates[path][0] for path in paths], dtype=np.float64)
    updates = np.array([momentum_updates[path][1] for path in paths], dtype=np.float64)
    figures = {
        schema.UPDATES: updates,
        schema.RESIDUAL_INIT_WEIGHT: stats.residual_init_weight(momenta, updates),
        schema.NONFINITE_CHANNELS: np.array([snapshot.nonfinite[path] for path in paths], dtype=np.float64),
    }
    writer.add_figures(paths, figures, timeline)


def moving_statistics(values: Values) -> Values:
    """A copy of each layer's moving mean and variance in ``values`` (a starting state for
    :func:`add_moving_figures`)."""
    return {
        path: {name: np.array(named[name]) for name in (schema.MOVING_MEAN, schema.MOVING_VARIANCE)}
        for path, named in values.items()
    }


def add_moving_figures(
    writer: Any, values: Values, start: Values, initial: dict[str, tuple[float | None, float | None]]
) -> None:
    """How far each layer's moving statistics are from ``start``, the fit's first logged state
    (:data:`~bn_inspect.schema.MOVING_CHANGE`: 0 exactly for a layer that never updated), and
    from the constants their initializers fill them with (``initial`` per path, see
    :attr:`~bn_inspect.run_config.LayerConfig.initial_statistics`;
    :data:`~bn_inspect.schema.INIT_DISTANCE`, NaN unless both are constants)."""
    for path, named in values.items():
        mean, variance = named[schema.MOVING_MEAN], named[schema.MOVING_VARIANCE]
        if path in start:
            begun = start[path]
            change = stats.largest_difference(mean, variance, begun[schema.MOVING_MEAN], begun[schema.MOVING_VARIANCE])
            writer.add_layer(path, schema.MOVING_CHANGE, change, schema.TIMELINE_EPOCH)
        mean_init, variance_init = initial.get(path, (None, None))
        distance = np.float32("nan")
        if mean_init is not None and variance_init is not None:
            distance = stats.largest_difference(mean, variance, np.float32(mean_init), np.float32(variance_init))
        writer.add_layer(path, schema.INIT_DISTANCE, distance, schema.TIMELINE_EPOCH)


def add_replica_copies(writer: Any, found: FoundLayer, strategy: Any) -> None:
    """How far apart the replicas' copies of a layer's moving statistics are (see distribution.py)."""
    mean_copies = replica_values(found.layer.moving_mean, strategy)
    variance_copies = replica_values(found.layer.moving_variance, strategy)
    writer.add_layer(found.path, schema.REPLICA_MOVING_MEAN_SPREAD, stats.replica_spread(mean_copies))
    writer.add_layer(found.path, schema.REPLICA_MOVING_VARIANCE_SPREAD, stats.replica_spread(variance_copies))


def add_probe(writer: Any, layers: Sequence[FoundLayer], result: ProbeResult, values: Values) -> None:
    """The probe's outputs in both modes, their gap, and each layer's batch statistics next to
    its moving ones."""
    gap = stats.output_gap(result.outputs_training, result.outputs_inference)
    writer.add_model(schema.OUTPUT_GAP, gap)
    writer.add_scalar(schema.SCALAR_OUTPUT_GAP, gap[0])
    if result.outputs_inference.size <= MAX_STORED_OUTPUT_VALUES:
        writer.add_model(schema.OUTPUT_TRAINING, result.outputs_training)
        writer.add_model(schema.OUTPUT_INFERENCE, result.outputs_inference)
    layer_gaps = []
    for found in layers:
        mean, variance = result.batch_mean[found.path], result.batch_variance[found.path]
        moving = values[found.path]
        writer.add_layer(found.path, schema.PROBE_BATCH_MEAN, mean)
        writer.add_layer(found.path, schema.PROBE_BATCH_VARIANCE, variance)
        mean_gap, var_ratio = stats.layer_gaps(
            mean, variance, moving["moving_mean"], moving["moving_variance"], found.layer.epsilon
        )
        writer.add_layer(found.path, schema.PROBE_MEAN_GAP, mean_gap)
        writer.add_layer(found.path, schema.PROBE_VAR_LOG_RATIO, var_ratio)
        layer_gaps.append(mean_gap)
    largest = _max_finite(layer_gaps)
    if largest is not None:
        writer.add_scalar(schema.SCALAR_MAX_LAYER_GAP, largest)


def add_replica_batch_stats(
    writer: Any, layers: Sequence[FoundLayer], replicas: ReplicaResult, result: ProbeResult
) -> None:
    """How far apart the replicas' batch statistics of the split probe are, per layer."""
    gaps = []
    for found in layers:
        mean_spread = stats.replica_spread(replicas.batch_mean[found.path])
        writer.add_layer(found.path, schema.REPLICA_BATCH_MEAN_SPREAD, mean_spread)
        variance_spread = stats.replica_spread(replicas.batch_variance[found.path])
        writer.add_layer(found.path, schema.REPLICA_BATCH_VARIANCE_SPREAD, variance_spread)
        gap = stats.replica_mean_spread_gap(mean_spread, result.batch_variance[found.path], found.layer.epsilon)
        writer.add_layer(found.path, schema.REPLICA_MEAN_SPREAD_GAP, gap)
        gaps.append(gap)
    largest = _max_finite(gaps)
    if largest is not None:
        writer.add_scalar(schema.SCALAR_MAX_REPLICA_SPREAD, largest)


def add_population(writer: Any, order: Sequence[FoundLayer], populations: dict, values: Values) -> None:
    """Each reached layer's population statistics and their distance to its moving ones."""
    gaps = []
    for found in order:
        population, moving = populations[found.path], values[found.path]
        writer.add_layer(found.path, schema.POPULATION_MEAN, population.mean)
        writer.add_layer(found.path, schema.POPULATION_VARIANCE, population.variance)
        mean_gap, var_ratio = stats.layer_gaps(
            population.mean,
            population.variance,
            moving["moving_mean"],
            moving["moving_variance"],
            found.layer.epsilon,
        )
        writer.add_layer(found.path, schema.POPULATION_MEAN_GAP, mean_gap)
        writer.add_layer(found.path, schema.POPULATION_VAR_LOG_RATIO, var_ratio)
        gaps.append(mean_gap)
    if gaps:
        writer.add_scalar(schema.SCALAR_MAX_STALENESS, float(np.nanmax(gaps)))
