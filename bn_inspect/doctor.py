"""The BN doctor: what is wrong with a run's BatchNormalization layers, and what to do about it.

Pure functions over what :func:`bn_inspect.reader.load_logdir` returns: no Keras, no
TensorFlow, no TensorBoard server. The CLI (``bn-inspect doctor``), the TensorBoard tab and
the tests share them. Every check reads one run's last logged epoch (and its configuration)
and returns :class:`Finding` records; :func:`diagnose` runs them all. The thresholds below
are module constants, each with the reasoning behind it (the README's BN doctor section explains them).

Example:
    >>> from bn_inspect import load_logdir
    >>> runs = load_logdir("logs")                                   # doctest: +SKIP
    >>> for finding in diagnose(runs):                               # doctest: +SKIP
    ...     print(finding.severity, finding.id, finding.run, finding.layer)
    error initializer_dominant epochs/1 batch_normalization
    >>> diagnose(runs)[0].to_dict()["fix"]                           # doctest: +SKIP
    'train >= 292 more steps (about 42 epochs), use momentum <= 0.652, or ...'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.reader import RunData, Series
from bn_inspect.report import layer_configs
from bn_inspect.table import format_cell

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)  # most severe first

# The views of the BN Inspect tab (``VIEWS`` in tb_plugin/static/index.js) a finding points at.
VIEW_RUNS = "runs"  # "Runs & configurations": run config, per-layer config (trainable, ...)
VIEW_EPOCHS = "epochs"  # per-layer, per-channel heatmap of one quantity over epochs
VIEW_COMPARE = "compare"  # runs compared, incl. the residual initializer weight momentum**t
VIEW_MODES = "modes"  # training vs inference: output gap; per-layer probe gaps, staleness, replicas
VIEWS = (VIEW_RUNS, VIEW_EPOCHS, VIEW_COMPARE, VIEW_MODES)

# --- thresholds ------------------------------------------------------------------------------
# 1. Initializer still dominant. The moving statistics are ``m**t * initializer + (1 - m**t) *
# (batches)``: above 5% the initializer (mean 0, variance 1) visibly pulls inference away from
# the data for any input not already standardised; above 50% it outweighs all batches together.
RESIDUAL_WARNING = 0.05
RESIDUAL_ERROR = 0.5

# 2, 6. Layer gaps, in the units of stats.layer_gaps: a channel mean shifted by 0.2 inference-time
# standard deviations, or a variance off by 22% (|log ratio| 0.2), is the smallest mismatch worth
# a fix; a whole standard deviation, or a factor 4 in variance (2 in scale), breaks inference.
MEAN_GAP_WARNING = 0.2
VAR_LOG_RATIO_WARNING = 0.2
MEAN_GAP_ERROR = 1.0
VAR_LOG_RATIO_ERROR = math.log(4.0)
# 2. A probe of n samples shows gaps of stats.sampling_gap_floor(n) by chance alone (0.10 sd and
# 0.14 for n = 64); a layer counts as diverging only beyond 3 times that.
PROBE_NOISE_FACTOR = 3.0
# 2. Output gap on the probe, mean |training - inference| / mean |inference|: 10% changes
# predictions noticeably, 50% means inference outputs are not the model that was trained.
OUTPUT_GAP_WARNING = 0.1
OUTPUT_GAP_ERROR = 0.5

# 3. Samples behind each batch statistic. The batch variance's relative standard error is
# about sqrt(2 / (n - 1)): 37% at 16 samples, 82% at 4, 141% at 2 (at 1 the variance is 0 and
# every output equals beta). Conv layers average over H*W positions too, but positions of one
# image are strongly correlated, so the sample count is what bounds the noise.
BATCH_WARNING = 16
BATCH_ERROR = 4
# 3. Probe: below 16 samples its gaps are noise (sampling_gap_floor(16) = 0.20 sd, 0.29).
PROBE_MIN_SAMPLES = 16

# 5. Moving variance below epsilon: epsilon then makes up at least half of the denominator
# sqrt(var + eps), so the channel is no longer normalised (dead units have variance 0).
TINY_VARIANCE_FACTOR = 1.0

# 7. Replicas' batch means apart by 0.2 batch standard deviations (stats.replica_mean_spread_gap)
# normalise the same channel visibly differently; a whole standard deviation breaks it.
REPLICA_SPREAD_WARNING = 0.2
REPLICA_SPREAD_ERROR = 1.0

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
)
MODEL_QUANTITIES_USED = (schema.OUTPUT_GAP,)
MAX_LISTED = 8  # channel indices / layer paths listed in the evidence


@dataclass(frozen=True)
class Finding:
    """One problem found in one run, with the figures that show it and the fix.

    ``layer`` is ``None`` for run-level findings; ``view`` is the tab view that shows it
    (:data:`VIEWS`), ``quantity`` what to select there, ``step`` the epoch of the evidence.
    """

    id: str
    severity: str
    run: str
    layer: str | None
    title: str
    evidence: dict[str, Any]
    fix: str
    view: str
    quantity: str | None = None
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: numpy values become Python numbers, NaN and infinity ``None``.

        Example:
            >>> Finding("x", INFO, "r", None, "t", {"v": np.float32(0.5)}, "f", VIEW_RUNS).to_dict()["evidence"]
            {'v': 0.5}
        """
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --- reading a run ---------------------------------------------------------------------------
@dataclass
class _Layer:
    """One BN layer of a run: its config entry and logged series."""

    path: str
    config: dict
    series: dict[str, Series] = field(default_factory=dict)

    @property
    def frozen(self) -> bool:
        """Runs in inference mode during training (``trainable=False``)."""
        return bool(self.config.get("inference_mode_in_training", self.config.get("trainable") is False))

    @property
    def epsilon(self) -> float:
        return float(self.config.get("epsilon", 1e-3))

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


def _layers(run: RunData) -> list[_Layer]:
    """The run's BN layers in model order (config order, then any logged only)."""
    configs = layer_configs(run)
    paths = list(configs) + [p for p in run.layers if p not in configs]
    return [_Layer(p, configs.get(p, {"path": p}), run.layers.get(p, {})) for p in paths]


def _scalar(value: np.ndarray) -> float:
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def _last_epoch(run: RunData) -> int | None:
    epochs = run.epochs
    return int(epochs[-1]) if epochs.size else None


def _fit_start(run: RunData) -> int | None:
    """First step of the newest fit: its config record's step, else the first logged."""
    if run.configs:
        return int(run.configs[-1][0])
    epochs = run.epochs
    return int(epochs[0]) if epochs.size else None


def _initializer_constant(record: Any) -> float | None:
    """The constant an initializer record fills with (Zeros, Ones, Constant), else ``None``."""
    if not isinstance(record, dict):
        return None
    name = record.get("class_name")
    if name == "Zeros":
        return 0.0
    if name == "Ones":
        return 1.0
    if name == "Constant":
        value = (record.get("config") or {}).get("value")
        return float(value) if isinstance(value, (int, float)) else None
    return None


def _at_initializers(layer: _Layer, step: int) -> bool | None:
    """Whether the moving statistics at ``step`` are exactly their initializers' constants
    (``None`` when unknown: non-constant initializers, or not logged)."""
    mean, variance = layer.at(schema.MOVING_MEAN, step), layer.at(schema.MOVING_VARIANCE, step)
    mean_init = _initializer_constant(layer.config.get("moving_mean_initializer"))
    variance_init = _initializer_constant(layer.config.get("moving_variance_initializer"))
    if mean is None or variance is None or mean_init is None or variance_init is None:
        return None
    return bool(np.all(mean == np.float32(mean_init)) and np.all(variance == np.float32(variance_init)))


def _listed(items: Sequence[Any]) -> list[Any]:
    return list(items[:MAX_LISTED])


def _affected(hits: Sequence[Any]) -> str:
    """Title suffix counting the layers a run-level finding covers."""
    return f" ({len(hits)} layers affected)" if len(hits) > 1 else ""


def _gap_thresholds(samples: int) -> tuple[float, float]:
    """Per-layer (mean gap, variance log ratio) thresholds for a probe of ``samples``."""
    mean_floor, variance_floor = stats.sampling_gap_floor(samples)
    return max(MEAN_GAP_WARNING, PROBE_NOISE_FACTOR * mean_floor), max(
        VAR_LOG_RATIO_WARNING, PROBE_NOISE_FACTOR * variance_floor
    )


def _counting_start(run: RunData) -> int | None:
    """Step of the newest fit that began with an untrained optimizer (where ``updates``
    counts from), else ``None``."""
    fresh = [step for step, config in run.configs if not config.get("momentum_steps_at_begin")]
    return int(fresh[-1]) if fresh else None


# --- 1. initializer still dominant ------------------------------------------------------------
def check_initializer_dominant(run: RunData) -> list[Finding]:
    """Trainable layers whose moving statistics still weigh the initializer ``momentum**updates``
    above :data:`RESIDUAL_WARNING` at the last epoch; names the first in model order, with
    the steps (and the momentum) that would bring it below the threshold."""
    hits = []
    for layer in _layers(run):
        last = layer.last(schema.RESIDUAL_INIT_WEIGHT)
        if layer.frozen or last is None or not _scalar(last[1]) >= RESIDUAL_WARNING:
            continue
        hits.append((layer, last[0], _scalar(last[1])))
    if not hits:
        return []
    layer, step, weight = hits[0]
    momentum = float(layer.config.get("momentum", 0.99))
    updates_value = layer.at(schema.UPDATES, step)
    updates = int(_scalar(updates_value)) if updates_value is not None else None
    if updates is None:
        updates = round(math.log(weight) / math.log(momentum)) if 0 < momentum < 1 and weight > 0 else 0
    steps_needed = max(0, stats.steps_until_residual(momentum, RESIDUAL_WARNING) - updates) if momentum < 1 else None
    steps_per_epoch = (run.config or {}).get("steps_per_epoch")
    epochs_needed = math.ceil(steps_needed / steps_per_epoch) if steps_needed is not None and steps_per_epoch else None
    momentum_needed = RESIDUAL_WARNING ** (1.0 / updates) if updates > 0 else None
    start = _counting_start(run)
    from_initializers = _at_initializers(layer, start) if start is not None else None
    severity = ERROR if weight >= RESIDUAL_ERROR and from_initializers is not False else WARNING
    origin = "the starting values" if from_initializers is False else "the initializers"
    fixes = []
    if steps_needed is not None:
        about = f" (about {_plural(epochs_needed, 'epoch')})" if epochs_needed else ""
        fixes.append(f"train >= {steps_needed} more steps{about}")
    if momentum_needed is not None:
        fixes.append(f"use momentum <= {momentum_needed:.3g}")
    fixes.append("or call bn_inspect.recalibrate(model, x_train) after training")
    return [
        Finding(
            id="initializer_dominant",
            severity=severity,
            run=run.name,
            layer=layer.path,
            title=(
                f"{origin} still weigh {weight:.0%} in the moving statistics after {updates} updates "
                f"(momentum {momentum:g})" + _affected(hits)
            ),
            evidence={
                "residual_init_weight": weight,
                "momentum": momentum,
                "updates": updates,
                "threshold": RESIDUAL_WARNING,
                "steps_needed": steps_needed,
                "epochs_needed": epochs_needed,
                "momentum_needed": momentum_needed,
                "starts_from_initializers": from_initializers,
                "layers_affected": len(hits),
                "layers": _listed([hit[0].path for hit in hits]),
                "max_residual_init_weight": max(hit[2] for hit in hits),
            },
            fix=", ".join(fixes),
            view=VIEW_COMPARE,
            quantity=schema.RESIDUAL_INIT_WEIGHT,
            step=step,
        )
    ]


# --- 2. train / inference gap -------------------------------------------------------------------
def check_train_inference_gap(run: RunData) -> list[Finding]:
    """The model's training- and inference-mode outputs on the probe differ at the last epoch,
    and some layer's probe gap is beyond chance: names the first such layer in model order.

    Severity follows the output gap: error from :data:`OUTPUT_GAP_ERROR`, warning from
    :data:`OUTPUT_GAP_WARNING`, info below (at most warning when Dropout adds noise).
    """
    gap = run.model.get(schema.OUTPUT_GAP)
    config = run.config or {}
    samples = int(config.get("probe_samples") or 0)
    if gap is None or len(gap.steps) == 0 or samples < 2:
        return []
    step = int(gap.steps[-1])
    fields = dict(zip(schema.OUTPUT_GAP_FIELDS, np.asarray(gap.values[-1], dtype=np.float64).tolist()))
    if not math.isfinite(fields["relative"]):  # NaN/inf outputs: check_nonfinite names the cause
        return []
    mean_threshold, variance_threshold = _gap_thresholds(samples)
    over = []
    for layer in _layers(run):
        mean_gap, variance_ratio = layer.at(schema.PROBE_MEAN_GAP, step), layer.at(schema.PROBE_VAR_LOG_RATIO, step)
        if mean_gap is None or variance_ratio is None:
            continue
        mean_gap, variance_ratio = _scalar(mean_gap), _scalar(variance_ratio)
        if mean_gap >= mean_threshold or variance_ratio >= variance_threshold:  # NaN (frozen) never
            over.append((layer, mean_gap, variance_ratio))
    if not over:
        return []
    layer, mean_gap, variance_ratio = over[0]
    relative = fields["relative"]
    severity = ERROR if relative >= OUTPUT_GAP_ERROR else WARNING if relative >= OUTPUT_GAP_WARNING else INFO
    noisy = bool(config.get("probe_has_dropout"))
    if noisy and severity == ERROR:
        severity = WARNING
    quantity = schema.PROBE_MEAN_GAP if mean_gap >= mean_threshold else schema.PROBE_VAR_LOG_RATIO
    return [
        Finding(
            id="train_inference_gap",
            severity=severity,
            run=run.name,
            layer=layer.path,
            title=(
                f"training and inference outputs differ by {relative:.0%} on the probe; the gap first "
                f"appears at '{layer.path}' (mean {mean_gap:.2g} sd, variance x{math.exp(variance_ratio):.2g})"
                + _affected(over)
            ),
            evidence={
                "output_gap_relative": relative,
                "output_gap_mean_abs": fields["mean_abs"],
                "output_gap_max_abs": fields["max_abs"],
                "mean_gap": mean_gap,
                "var_log_ratio": variance_ratio,
                "mean_gap_threshold": mean_threshold,
                "var_log_ratio_threshold": variance_threshold,
                "probe_samples": samples,
                "probe_has_dropout": noisy,
                "layers_affected": len(over),
                "layers": _listed([hit[0].path for hit in over]),
            },
            fix=(
                f"make inference use statistics that match '{layer.path}' and the layers after it: "
                "bn_inspect.recalibrate(model, x_train) after training, or train longer"
            ),
            view=VIEW_MODES,
            quantity=quantity,
            step=step,
        )
    ]


# --- 3. batch too small ------------------------------------------------------------------------
def check_batch_size(run: RunData) -> list[Finding]:
    """Batch statistics computed from fewer than :data:`BATCH_WARNING` samples per replica
    (error below :data:`BATCH_ERROR`), from the run config's batch size and replica count."""
    config = run.config or {}
    batch_size, replicas = config.get("batch_size"), int(config.get("replicas") or 1)
    if not isinstance(batch_size, int) or batch_size < 1:
        return []
    counts = [
        (layer, batch_size if replicas == 1 or layer.config.get("synchronized") else batch_size // replicas)
        for layer in _layers(run)
        if not layer.frozen
    ]
    if not counts:
        return []
    samples = min(count for _, count in counts)
    if samples >= BATCH_WARNING:
        return []
    smallest = [layer.path for layer, count in counts if count == samples]
    uniform = len(smallest) == len(counts)
    relative_error = math.sqrt(2.0 / (samples - 1)) if samples > 1 else math.inf
    what = (
        "the batch variance is 0 and every output equals beta in training"
        if samples <= 1
        else f"their variance estimate is off by about {relative_error:.0%}"
    )
    return [
        Finding(
            id="small_batch",
            severity=ERROR if samples < BATCH_ERROR else WARNING,
            run=run.name,
            layer=None if uniform else smallest[0],
            title=f"batch statistics come from {samples} sample(s) per replica: {what}",
            evidence={
                "batch_size": batch_size,
                "replicas": replicas,
                "samples_per_statistic": samples,
                "variance_relative_error": relative_error,
                "mean_error_sd": 1.0 / math.sqrt(samples),
                "threshold": BATCH_WARNING,
                "layers": _listed(smallest),
            },
            fix=(
                f"train with >= {BATCH_WARNING} samples per replica (synchronized=True pools the replicas), "
                "or use keras.layers.GroupNormalization, which does not depend on the batch"
            ),
            view=VIEW_RUNS,
            step=_last_epoch(run),
        )
    ]


def check_probe(run: RunData) -> list[Finding]:
    """Info when the run has no probe (the training-vs-inference gap cannot be checked) or a
    probe below :data:`PROBE_MIN_SAMPLES` samples (its gaps are mostly noise)."""
    if run.config is None:
        return []
    samples = int(run.config.get("probe_samples") or 0)
    if samples >= PROBE_MIN_SAMPLES:
        return []
    evidence: dict[str, Any] = {"probe_samples": samples, "threshold": PROBE_MIN_SAMPLES}
    if samples == 0:
        title = "no probe: the training-vs-inference gap cannot be checked"
    elif samples == 1:
        title = "the probe has 1 sample: in training mode every BN layer then outputs beta, so its gaps say nothing"
    else:
        mean_floor, variance_floor = stats.sampling_gap_floor(samples)
        evidence.update(chance_mean_gap=mean_floor, chance_var_log_ratio=variance_floor)
        title = f"the probe has {samples} samples: its mean gaps reach {mean_floor:.2g} sd by chance alone"
    return [
        Finding(
            id="no_probe" if samples == 0 else "small_probe",
            severity=INFO,
            run=run.name,
            layer=None,
            title=title,
            evidence=evidence,
            fix="pass BatchNormInspector(..., probe_data=x_train[:64]): a fixed batch of a few dozen training inputs",
            view=VIEW_RUNS,
        )
    ]


# --- 4. frozen BN, and the reverse -----------------------------------------------------------
def _epochs_trained(run: RunData) -> int:
    epochs = run.epochs
    return int(epochs[-1] - epochs[0]) if epochs.size else 0


def check_frozen(run: RunData) -> list[Finding]:
    """BN layers with ``trainable=False`` (inference mode during training, fixed statistics) in
    a run that trained: the fine-tuning trap.

    With ``reference_data`` logged, a frozen layer's statistics are compared with the population
    statistics of the input it now sees (thresholds of :func:`check_staleness`): error when they
    are a whole standard deviation or a factor 4 in variance off, warning from 0.2, info when
    they fit. Without it: warning (the fit cannot be checked). Error in any case when a frozen
    layer still holds its initializers' constants: it never estimated any statistics.
    """
    layers = _layers(run)
    frozen = [layer for layer in layers if layer.frozen]
    epochs_trained = _epochs_trained(run)
    last = _last_epoch(run)
    if not frozen or epochs_trained == 0 or last is None:
        return []
    at_init = [layer for layer in frozen if _at_initializers(layer, last)]
    gaps = {layer.path: _population_gaps(layer) for layer in frozen}
    misfits = {path: _misfit(gap[1], gap[2]) for path, gap in gaps.items() if gap is not None}
    misfit = [layer for layer in frozen if misfits.get(layer.path)]
    unmeasured = [layer for layer in frozen if gaps[layer.path] is None]
    named = (at_init or misfit or frozen)[0]
    gap = gaps[named.path]
    count = f"{len(frozen)} BN layer(s) frozen (inference mode, fixed statistics)"
    refresh = "set trainable=True, bn_inspect.recalibrate(model, x_new), freeze again, recompile"
    if at_init:
        severity = ERROR
        title = f"'{named.path}' is frozen with its initializers' statistics: it has never normalised anything"
        fix = "train the layer before freezing it, or run bn_inspect.recalibrate(model, x_train) while it is trainable, then freeze"
    elif misfit:
        severity = ERROR if ERROR in misfits.values() else WARNING
        title = (
            f"'{named.path}' is frozen and no longer normalises the data it sees: its statistics are "
            f"{gap[1]:.2g} sd and x{math.exp(gap[2]):.2g} in variance off the reference data's"
        )
        fix = f"refresh the frozen layers' statistics on the new data before fine-tuning: {refresh}"
    elif unmeasured:
        severity = WARNING
        title = f"{count} while the model trained {_plural(epochs_trained, 'epoch')}"
        fix = f"pass reference_data to BatchNormInspector to check them against the new data; if they differ: {refresh}"
    else:
        severity = INFO
        title = f"{count}; their statistics fit the reference data"
        fix = "nothing to do while the data stays like the reference data"
    steps_per_epoch = (run.config or {}).get("steps_per_epoch")
    return [
        Finding(
            id="frozen_bn",
            severity=severity,
            run=run.name,
            layer=named.path,
            title=title,
            evidence={
                "frozen_bn_layers": len(frozen),
                "trainable_bn_layers": len(layers) - len(frozen),
                "frozen_at_initializers": len(at_init),
                "frozen_misfit": len(misfit),
                "frozen_unmeasured": len(unmeasured),
                "population_mean_gap": gap[1] if gap else None,
                "population_var_log_ratio": gap[2] if gap else None,
                "epochs_trained": epochs_trained,
                "steps_trained": epochs_trained * steps_per_epoch if steps_per_epoch else None,
                "layers": _listed([layer.path for layer in frozen]),
            },
            fix=fix,
            view=VIEW_MODES if misfits.get(named.path) else VIEW_RUNS,
            quantity=schema.POPULATION_MEAN_GAP if misfits.get(named.path) else None,
            step=last,
        )
    ]


def check_not_updating(run: RunData) -> list[Finding]:
    """The reverse of the frozen trap: trainable BN layers whose moving statistics did not change
    at all while the optimizer stepped in the newest fit. They run in inference mode although
    trainable: called with ``training=False`` (Keras' fine-tuning recipe), or momentum 1. Error
    when they still hold their initializers' constants, else warning."""
    start, last = _fit_start(run), _last_epoch(run)
    if start is None or last is None or last <= start:
        return []
    static = []
    for layer in _layers(run):
        if layer.frozen:
            continue
        updates = [layer.at(schema.UPDATES, step) for step in (start, last)]
        means = [layer.at(schema.MOVING_MEAN, step) for step in (start, last)]
        variances = [layer.at(schema.MOVING_VARIANCE, step) for step in (start, last)]
        if any(v is None for v in updates + means + variances):
            continue
        stepped = int(_scalar(updates[1]) - _scalar(updates[0]))
        if stepped > 0 and np.array_equal(means[0], means[1]) and np.array_equal(variances[0], variances[1]):
            static.append((layer, stepped))
    if not static:
        return []
    at_init = [layer.path for layer, _ in static if _at_initializers(layer, last)]
    layer, stepped = next(((lay, s) for lay, s in static if lay.path in at_init), static[0])
    return [
        Finding(
            id="bn_not_updating",
            severity=ERROR if at_init else WARNING,
            run=run.name,
            layer=layer.path,
            title=(
                f"'{layer.path}' is trainable but its moving statistics did not change in {stepped} training steps: "
                "it runs in inference mode" + (" with its initializers' statistics" if at_init else "")
            ),
            evidence={
                "training_steps": stepped,
                "momentum": layer.config.get("momentum"),
                "static_layers": len(static),
                "static_at_initializers": len(at_init),
                "layers": _listed([lay.path for lay, _ in static]),
            },
            fix=(
                "call the model (or sub-model) holding it with training=None, not training=False, and keep "
                "momentum < 1; if inference mode is intended, check its statistics fit the data (recalibrate)"
            ),
            view=VIEW_EPOCHS,
            quantity=schema.MOVING_MEAN,
            step=last,
        )
    ]


# --- 5. broken moving variance -----------------------------------------------------------------
def _channel_check(
    run: RunData, bad: Callable[[_Layer, np.ndarray, np.ndarray], np.ndarray]
) -> list[tuple[_Layer, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Layers with channels where ``bad(layer, mean, variance)`` holds at their last epoch:
    ``(layer, step, mask, mean, variance)``."""
    out = []
    for layer in _layers(run):
        mean, variance = layer.last(schema.MOVING_MEAN), layer.last(schema.MOVING_VARIANCE)
        if mean is None or variance is None:
            continue
        mask = bad(layer, mean[1].reshape(-1), variance[1].reshape(-1))
        if np.any(mask):
            out.append((layer, variance[0], mask, mean[1].reshape(-1), variance[1].reshape(-1)))
    return out


def check_nonfinite(run: RunData) -> list[Finding]:
    """Channels whose moving mean is NaN/inf or whose moving variance is NaN, inf or negative
    at the last epoch (error: inference on them is NaN or undefined)."""
    hits = _channel_check(
        run, lambda layer, mean, variance: ~np.isfinite(mean) | ~np.isfinite(variance) | (np.nan_to_num(variance) < 0)
    )
    if not hits:
        return []
    layer, step, mask, mean, variance = hits[0]
    with np.errstate(invalid="ignore"):
        negative = int(np.count_nonzero(variance < 0))
    return [
        Finding(
            id="nonfinite_moving_stats",
            severity=ERROR,
            run=run.name,
            layer=layer.path,
            title=(
                f"'{layer.path}' has {int(mask.sum())} of {mask.size} channels with NaN, inf or negative "
                "moving statistics" + _affected(hits)
            ),
            evidence={
                "channels": int(mask.sum()),
                "of_channels": int(mask.size),
                "nan": int(np.count_nonzero(np.isnan(mean) | np.isnan(variance))),
                "inf": int(np.count_nonzero(np.isinf(mean) | np.isinf(variance))),
                "negative_variance": negative,
                "channel_indices": _listed(np.flatnonzero(mask).tolist()),
                "layers_affected": len(hits),
                "layers": _listed([hit[0].path for hit in hits]),
            },
            fix=(
                "find where training diverged (lower the learning rate, check inputs for NaN), then retrain or "
                "recalibrate; a negative variance comes from a manual assignment or a broken checkpoint"
            ),
            view=VIEW_EPOCHS,
            quantity=schema.MOVING_VARIANCE,
            step=step,
        )
    ]


def check_tiny_variance(run: RunData) -> list[Finding]:
    """Channels whose moving variance is finite but below ``epsilon`` (times
    :data:`TINY_VARIANCE_FACTOR`) at the last epoch: dead or near-constant units (warning)."""

    def tiny(layer: _Layer, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.isfinite(variance) & (variance >= 0) & (variance < TINY_VARIANCE_FACTOR * layer.epsilon)

    hits = _channel_check(run, tiny)
    if not hits:
        return []
    layer, step, mask, _, variance = hits[0]
    return [
        Finding(
            id="tiny_moving_variance",
            severity=WARNING,
            run=run.name,
            layer=layer.path,
            title=(
                f"'{layer.path}' has {int(mask.sum())} of {mask.size} channels with moving variance below "
                f"epsilon ({layer.epsilon:g}): dead or near-constant units" + _affected(hits)
            ),
            evidence={
                "channels": int(mask.sum()),
                "of_channels": int(mask.size),
                "zero_variance": int(np.count_nonzero(variance[mask] == 0)),
                "min_variance": float(np.min(variance[mask])),
                "epsilon": layer.epsilon,
                "channel_indices": _listed(np.flatnonzero(mask).tolist()),
                "layers_affected": len(hits),
                "layers": _listed([hit[0].path for hit in hits]),
            },
            fix=(
                "variance 0 means a unit never varies (e.g. a ReLU that never fires: lower the learning rate or use "
                "a leaky activation); for inputs that are genuinely this small, lower epsilon"
            ),
            view=VIEW_EPOCHS,
            quantity=schema.MOVING_VARIANCE,
            step=step,
        )
    ]


# --- 6. EMA staleness --------------------------------------------------------------------------
def _population_gaps(layer: _Layer) -> tuple[int, float, float] | None:
    """``(step, mean gap, variance log ratio)`` to the population statistics, last logged."""
    mean_gap, variance_ratio = layer.last(schema.POPULATION_MEAN_GAP), layer.last(schema.POPULATION_VAR_LOG_RATIO)
    if mean_gap is None or variance_ratio is None:
        return None
    return mean_gap[0], _scalar(mean_gap[1]), _scalar(variance_ratio[1])


def _misfit(mean_gap: float, variance_ratio: float) -> str | None:
    """Severity of statistics that are ``mean_gap`` / ``variance_ratio`` off exact ones."""
    if mean_gap >= MEAN_GAP_ERROR or variance_ratio >= VAR_LOG_RATIO_ERROR:
        return ERROR
    if mean_gap >= MEAN_GAP_WARNING or variance_ratio >= VAR_LOG_RATIO_WARNING:
        return WARNING
    return None


def check_staleness(run: RunData) -> list[Finding]:
    """Trainable layers' moving statistics far from the exact population statistics of the
    reference data at the last step they were computed (only when the run logged
    ``reference_data``; frozen layers are :func:`check_frozen`'s)."""
    hits = []
    for layer in _layers(run):
        gap = None if layer.frozen else _population_gaps(layer)
        if gap is not None and _misfit(gap[1], gap[2]):
            hits.append((layer, *gap))
    if not hits:
        return []
    layer, step, mean_gap, variance_ratio = hits[0]
    severe = [hit for hit in hits if _misfit(hit[2], hit[3]) == ERROR]
    return [
        Finding(
            id="stale_moving_stats",
            severity=ERROR if severe else WARNING,
            run=run.name,
            layer=layer.path,
            title=(
                f"moving statistics of '{layer.path}' are {mean_gap:.2g} sd and x{math.exp(variance_ratio):.2g} in "
                "variance away from the reference data's population statistics" + _affected(hits)
            ),
            evidence={
                "population_mean_gap": mean_gap,
                "population_var_log_ratio": variance_ratio,
                "mean_gap_threshold": MEAN_GAP_WARNING,
                "var_log_ratio_threshold": VAR_LOG_RATIO_WARNING,
                "layers_affected": len(hits),
                "layers_severe": len(severe),
                "layers": _listed([hit[0].path for hit in hits]),
            },
            fix="call bn_inspect.recalibrate(model, x_train) after training to install the population statistics",
            view=VIEW_MODES,
            quantity=schema.POPULATION_MEAN_GAP,
            step=step,
        )
    ]


# --- 7. replicas diverging ---------------------------------------------------------------------
def check_replica_divergence(run: RunData) -> list[Finding]:
    """Under a distribution strategy with several replicas, unsynchronized layers whose replicas'
    batch means on the probe (split in one shard per replica) are :data:`REPLICA_SPREAD_WARNING`
    batch standard deviations or more apart at the last epoch."""
    config = run.config or {}
    replicas = int(config.get("replicas") or 1)
    if replicas < 2:
        return []
    hits = []
    for layer in _layers(run):
        spread = layer.last(schema.REPLICA_MEAN_SPREAD_GAP)
        if layer.frozen or layer.config.get("synchronized") or spread is None:
            continue
        if _scalar(spread[1]) >= REPLICA_SPREAD_WARNING:
            hits.append((layer, spread[0], _scalar(spread[1])))
    if not hits:
        return []
    layer, step, spread_gap = hits[0]
    shards = [int(s) for s in config.get("replica_probe_shards") or [] if s]
    chance = stats.expected_normal_range(replicas) / math.sqrt(min(shards)) if shards else None
    copies, variance = layer.at(schema.REPLICA_MOVING_MEAN_SPREAD, step), layer.at(schema.MOVING_VARIANCE, step)
    copies_gap = (
        float(np.mean(copies / np.sqrt(np.maximum(variance + layer.epsilon, np.finfo(np.float64).tiny))))
        if copies is not None and variance is not None
        else None
    )
    batch_size = config.get("batch_size")
    return [
        Finding(
            id="replica_divergence",
            severity=ERROR if spread_gap >= REPLICA_SPREAD_ERROR else WARNING,
            run=run.name,
            layer=layer.path,
            title=(
                f"{replicas} replicas normalise '{layer.path}' with batch means {spread_gap:.2g} sd apart "
                "(synchronized=False"
                + (f"; chance alone: {chance:.2g} sd" if chance is not None else "")
                + ")"
                + _affected(hits)
            ),
            evidence={
                "replica_mean_spread_gap": spread_gap,
                "chance_spread_gap": chance,
                "replicas": replicas,
                "probe_shards": shards,
                "samples_per_replica": batch_size // replicas if isinstance(batch_size, int) else None,
                "moving_copies_mean_gap": copies_gap,
                "threshold": REPLICA_SPREAD_WARNING,
                "layers_affected": len(hits),
                "layers": _listed([hit[0].path for hit in hits]),
            },
            fix="use BatchNormalization(synchronized=True): it all-reduces the batch statistics across replicas",
            view=VIEW_MODES,
            quantity=schema.REPLICA_MEAN_SPREAD_GAP,
            step=step,
        )
    ]


CHECKS: tuple[Callable[[RunData], list[Finding]], ...] = (
    check_initializer_dominant,
    check_train_inference_gap,
    check_batch_size,
    check_probe,
    check_frozen,
    check_not_updating,
    check_nonfinite,
    check_tiny_variance,
    check_staleness,
    check_replica_divergence,
)


def severity_rank(severity: str) -> int:
    """0 for error, 1 for warning, 2 for info (sort key: most severe first)."""
    return SEVERITIES.index(severity)


def diagnose(runs: dict[str, RunData], checks: Iterable[Callable[[RunData], list[Finding]]] = CHECKS) -> list[Finding]:
    """Every finding of every run, most severe first (then in run and check order).

    Example:
        >>> diagnose({})
        []
    """
    checks = tuple(checks)
    findings = [finding for run in runs.values() for check in checks for finding in check(run)]
    return sorted(findings, key=lambda finding: severity_rank(finding.severity))


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Number of findings per severity, every severity present.

    Example:
        >>> counts([])
        {'error': 0, 'warning': 0, 'info': 0}
    """
    tally = {severity: 0 for severity in SEVERITIES}
    for finding in findings:
        tally[finding.severity] += 1
    return tally


# --- text report -------------------------------------------------------------------------------
def _evidence_text(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        parts.append(f"{key}={format_cell(value)}")
    return "  ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 or word == "info" else "s")


def _counts_text(findings: Sequence[Finding]) -> str:
    return ", ".join(_plural(n, severity) for severity, n in counts(findings).items() if n) or "no findings"


def format_report(findings: Sequence[Finding], run_names: Sequence[str]) -> str:
    """The findings as text, grouped by run (runs with the most severe findings first), each
    run's findings most severe first; runs without findings are listed as such.

    Example:
        >>> print(format_report([], ["a"]))
        run a: no findings
        <BLANKLINE>
        1 run checked: no findings
    """
    by_run: dict[str, list[Finding]] = {name: [] for name in run_names}
    for finding in findings:
        by_run.setdefault(finding.run, []).append(finding)
    order = sorted(
        by_run,
        key=lambda name: (
            min((severity_rank(f.severity) for f in by_run[name]), default=len(SEVERITIES)),
            list(by_run).index(name),
        ),
    )
    width = max((len(f.id) for f in findings), default=0)
    lines = []
    for name in order:
        group = sorted(by_run[name], key=lambda f: severity_rank(f.severity))
        lines.append(f"run {name}: {_counts_text(group)}")
        for f in group:
            where = f"[{f.layer}] " if f.layer else ""
            lines.append(f"  {f.severity.upper():<7}  {f.id:<{width}}  {where}{f.title}")
            pad = " " * (2 + 7 + 2)
            lines.append(f"{pad}fix:      {f.fix}")
            lines.append(f"{pad}evidence: {_evidence_text(f.evidence)}")
            shown = (
                f"{f.view} view"
                + (f", {f.quantity}" if f.quantity else "")
                + (f", epoch {f.step}" if f.step is not None else "")
            )
            lines.append(f"{pad}see:      {shown}")
        lines.append("")
    lines.append(f"{_plural(len(by_run), 'run')} checked: {_counts_text(findings)}")
    return "\n".join(lines)
