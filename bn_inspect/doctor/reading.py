"""What the checks read of a run: its BN layers in model order with their config and series,
and the steps that matter (last epoch, start of the newest fit)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bn_inspect import schema
from bn_inspect.doctor.finding import ERROR, WARNING
from bn_inspect.doctor.thresholds import MEAN_GAP_ERROR, MEAN_GAP_WARNING, VAR_LOG_RATIO_ERROR, VAR_LOG_RATIO_WARNING
from bn_inspect.reader import RunData, Series
from bn_inspect.run_config import LayerConfig, RunConfig

# Series the checks read; the tab reads only these to build the RunData it diagnoses.
LAYER_QUANTITIES_USED = (
    schema.MOVING_MEAN,
    schema.MOVING_VARIANCE,
    schema.RESIDUAL_INIT_WEIGHT,
    schema.UPDATES,
    schema.PROBE_MEAN_GAP,
    schema.PROBE_VAR_LOG_RATIO,
    schema.POPULATION_MEAN_GAP,
    schema.POPULATION_VAR_LOG_RATIO,
    schema.REPLICA_MEAN_SPREAD_GAP,
    schema.REPLICA_MOVING_MEAN_SPREAD,
    schema.MOVING_CHANGE,
    schema.INIT_DISTANCE,
)
MODEL_QUANTITIES_USED = (schema.OUTPUT_GAP,)
# Per-channel series the checks read at their last logged step only, in a run that logs
# MOVING_CHANGE and INIT_DISTANCE (what the checks of other steps, :func:`unchanged_since` and
# :func:`at_initializers`, read then): a reader that can fetch a series' last point alone
# (the tab) reads just that of these.
LAST_STEP_QUANTITIES = (schema.MOVING_MEAN, schema.MOVING_VARIANCE, schema.REPLICA_MOVING_MEAN_SPREAD)


def last_step_quantities(logged: Iterable[str]) -> tuple[str, ...]:
    """Of the series the checks read, those they need at their last logged step only, in a
    run that logged the quantities ``logged``: :data:`LAST_STEP_QUANTITIES` once it logs
    :data:`~bn_inspect.schema.MOVING_CHANGE` and :data:`~bn_inspect.schema.INIT_DISTANCE`, else
    none (older logs).

    Example:
        >>> last_step_quantities([schema.MOVING_MEAN, schema.MOVING_CHANGE, schema.INIT_DISTANCE])[:2]
        ('moving_mean', 'moving_variance')
        >>> last_step_quantities([schema.MOVING_MEAN])
        ()
    """
    logged = set(logged)
    return LAST_STEP_QUANTITIES if {schema.MOVING_CHANGE, schema.INIT_DISTANCE} <= logged else ()


@dataclass
class Layer:
    """One BN layer of a run: its configuration and logged series."""

    config: LayerConfig
    series: dict[str, Series] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.config.path

    @property
    def frozen(self) -> bool:
        return self.config.frozen

    @property
    def epsilon(self) -> float:
        return float(self.config.epsilon)

    def at(self, quantity: str, step: int) -> np.ndarray | None:
        series = self.series.get(quantity)
        if series is None:
            return None
        hits = np.nonzero(series.steps == step)[0]
        return None if hits.size == 0 else np.asarray(series.values[hits[0]], dtype=np.float64)

    def last(self, quantity: str) -> tuple[int, np.ndarray] | None:
        series = self.series.get(quantity)
        if series is None or len(series.steps) == 0:
            return None
        return int(series.steps[-1]), np.asarray(series.values[-1], dtype=np.float64)


def run_layers(run: RunData) -> list[Layer]:
    """The run's BN layers in model order, the configured ones and any logged only."""
    config = run.run_config or RunConfig()
    return [Layer(config.layer(path), run.layers.get(path, {})) for path in run.layer_paths]


def scalar(value: np.ndarray) -> float:
    """A logged per-layer figure as a float."""
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def last_epoch(run: RunData) -> int | None:
    epochs = run.epochs
    return int(epochs[-1]) if epochs.size else None


def epochs_trained(run: RunData) -> int:
    epochs = run.epochs
    return int(epochs[-1] - epochs[0]) if epochs.size else 0


def fit_start(run: RunData) -> int | None:
    """First step of the newest fit: its config record's step, else the first logged."""
    if run.configs:
        return int(run.configs[-1][0])
    epochs = run.epochs
    return int(epochs[0]) if epochs.size else None


def counting_start(run: RunData) -> int | None:
    """Step of the newest fit that began with an untrained optimizer (where ``updates``
    counts from), else ``None``."""
    fresh = [step for step, record in run.configs if not RunConfig.from_record(record).momentum_steps_at_begin]
    return int(fresh[-1]) if fresh else None


def at_initializers(layer: Layer, step: int) -> bool | None:
    """Whether the moving statistics at ``step`` are exactly their initializers' constants
    (``None`` when unknown: non-constant initializers, or not logged): the logged
    :data:`~bn_inspect.schema.INIT_DISTANCE` at ``step``, else, in logs without it, the
    per-channel values."""
    distance = layer.at(schema.INIT_DISTANCE, step)
    if distance is not None:
        value = scalar(distance)
        return None if np.isnan(value) else value == 0.0
    mean, variance = layer.at(schema.MOVING_MEAN, step), layer.at(schema.MOVING_VARIANCE, step)
    mean_init, variance_init = layer.config.initial_statistics
    if mean is None or variance is None or mean_init is None or variance_init is None:
        return None
    return bool(np.all(mean == np.float32(mean_init)) and np.all(variance == np.float32(variance_init)))


def unchanged_since(layer: Layer, start: int, last: int) -> bool | None:
    """Whether the layer's moving statistics at ``last`` are exactly those at ``start``, the
    newest fit's first step (``None``: not logged): its logged
    :data:`~bn_inspect.schema.MOVING_CHANGE` at ``last`` (the change since that fit's first
    step), else, in logs without it, its per-channel values at both steps."""
    change = layer.at(schema.MOVING_CHANGE, last)
    if change is not None:
        return scalar(change) == 0.0
    means = [layer.at(schema.MOVING_MEAN, step) for step in (start, last)]
    variances = [layer.at(schema.MOVING_VARIANCE, step) for step in (start, last)]
    if any(v is None for v in means + variances):
        return None
    return bool(np.array_equal(means[0], means[1]) and np.array_equal(variances[0], variances[1]))


def population_gaps(layer: Layer) -> tuple[int, float, float] | None:
    """``(step, mean gap, variance log ratio)`` to the population statistics, last logged."""
    mean_gap, variance_ratio = layer.last(schema.POPULATION_MEAN_GAP), layer.last(schema.POPULATION_VAR_LOG_RATIO)
    if mean_gap is None or variance_ratio is None:
        return None
    return mean_gap[0], scalar(mean_gap[1]), scalar(variance_ratio[1])


def misfit(mean_gap: float, variance_ratio: float) -> str | None:
    """Severity of statistics that are ``mean_gap`` / ``variance_ratio`` off exact ones."""
    if mean_gap >= MEAN_GAP_ERROR or variance_ratio >= VAR_LOG_RATIO_ERROR:
        return ERROR
    if mean_gap >= MEAN_GAP_WARNING or variance_ratio >= VAR_LOG_RATIO_WARNING:
        return WARNING
    return None


def plural(count: int, word: str) -> str:
    """``"1 epoch"``, ``"2 epochs"`` (``info`` stays ``info``)."""
    return f"{count} {word}" + ("" if count == 1 or word == "info" else "s")
