"""The BN doctor: what is wrong with a run's BatchNormalization layers, and what to do about it.

Pure functions over what :func:`bn_inspect.reader.load_logdir` returns: no Keras, no
TensorFlow, no TensorBoard server. The CLI (``bn-inspect doctor``), the TensorBoard tab and
the tests share them. Every check reads one run's last logged epoch (and its configuration)
and returns :class:`Finding` records; :func:`diagnose` runs them all, and
:func:`group_findings` groups a finding shared by several runs (same check, severity and
aligned layer slot) into one :class:`FindingGroup`. One module per family
of checks; the thresholds, each with the reasoning behind it, are in
:mod:`bn_inspect.doctor.thresholds` (docs/doctor.md explains them).

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

from collections.abc import Callable, Iterable

from bn_inspect.doctor.batch import check_batch_size, check_probe
from bn_inspect.doctor.finding import (
    ERROR,
    INFO,
    SEVERITIES,
    VIEW_COMPARE,
    VIEW_EPOCHS,
    VIEW_MODES,
    VIEW_RUNS,
    VIEW_TITLES,
    VIEWS,
    WARNING,
    Finding,
    severity_rank,
)
from bn_inspect.doctor.formatting import counts, format_report
from bn_inspect.doctor.frozen import check_frozen, check_not_updating
from bn_inspect.doctor.grouping import FindingGroup, group_findings
from bn_inspect.doctor.initializer import check_initializer_dominant
from bn_inspect.doctor.modes import check_train_inference_gap
from bn_inspect.doctor.reading import (
    LAST_STEP_QUANTITIES,
    LAYER_QUANTITIES_USED,
    MODEL_QUANTITIES_USED,
    last_step_quantities,
)
from bn_inspect.doctor.replicas import check_replica_divergence
from bn_inspect.doctor.staleness import check_staleness
from bn_inspect.doctor.thresholds import (
    BATCH_ERROR,
    BATCH_WARNING,
    MAX_LISTED,
    MEAN_GAP_ERROR,
    MEAN_GAP_WARNING,
    OUTPUT_GAP_ERROR,
    OUTPUT_GAP_WARNING,
    PROBE_MIN_SAMPLES,
    PROBE_NOISE_FACTOR,
    REPLICA_SPREAD_ERROR,
    REPLICA_SPREAD_WARNING,
    RESIDUAL_ERROR,
    RESIDUAL_WARNING,
    TINY_VARIANCE_FACTOR,
    VAR_LOG_RATIO_ERROR,
    VAR_LOG_RATIO_WARNING,
)
from bn_inspect.doctor.variance import check_nonfinite, check_tiny_variance
from bn_inspect.reader import RunData

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


def diagnose(runs: dict[str, RunData], checks: Iterable[Callable[[RunData], list[Finding]]] = CHECKS) -> list[Finding]:
    """Every finding of every run, most severe first (then in run and check order).

    Example:
        >>> diagnose({})
        []
    """
    checks = tuple(checks)
    findings = [finding for run in runs.values() for check in checks for finding in check(run)]
    return sorted(findings, key=lambda finding: severity_rank(finding.severity))


__all__ = [
    "BATCH_ERROR",
    "BATCH_WARNING",
    "CHECKS",
    "ERROR",
    "INFO",
    "LAST_STEP_QUANTITIES",
    "LAYER_QUANTITIES_USED",
    "MAX_LISTED",
    "MEAN_GAP_ERROR",
    "MEAN_GAP_WARNING",
    "MODEL_QUANTITIES_USED",
    "OUTPUT_GAP_ERROR",
    "OUTPUT_GAP_WARNING",
    "PROBE_MIN_SAMPLES",
    "PROBE_NOISE_FACTOR",
    "REPLICA_SPREAD_ERROR",
    "REPLICA_SPREAD_WARNING",
    "RESIDUAL_ERROR",
    "RESIDUAL_WARNING",
    "SEVERITIES",
    "TINY_VARIANCE_FACTOR",
    "VAR_LOG_RATIO_ERROR",
    "VAR_LOG_RATIO_WARNING",
    "VIEWS",
    "VIEW_COMPARE",
    "VIEW_EPOCHS",
    "VIEW_MODES",
    "VIEW_RUNS",
    "VIEW_TITLES",
    "WARNING",
    "Finding",
    "FindingGroup",
    "check_batch_size",
    "check_frozen",
    "check_initializer_dominant",
    "check_nonfinite",
    "check_not_updating",
    "check_probe",
    "check_replica_divergence",
    "check_staleness",
    "check_tiny_variance",
    "check_train_inference_gap",
    "counts",
    "diagnose",
    "format_report",
    "group_findings",
    "last_step_quantities",
    "severity_rank",
]
