"""Check 3: too few samples behind each batch statistic, and a probe too small to tell."""

from __future__ import annotations

import math
from typing import Any

from bn_inspect import stats
from bn_inspect.doctor.finding import ERROR, INFO, VIEW_RUNS, WARNING, Finding, finding, listed
from bn_inspect.doctor.reading import last_epoch, run_layers
from bn_inspect.doctor.thresholds import BATCH_ERROR, BATCH_WARNING, PROBE_MIN_SAMPLES
from bn_inspect.reader import RunData
from bn_inspect.run_config import RunConfig


def check_batch_size(run: RunData) -> list[Finding]:
    """Batch statistics computed from fewer than :data:`BATCH_WARNING` samples per replica
    (error below :data:`BATCH_ERROR`), from the run config's batch size and replica count."""
    config = run.run_config or RunConfig()
    batch_size, replicas = config.batch_size, config.replicas
    if batch_size is None or batch_size < 1:
        return []
    counts = [
        (layer, batch_size if replicas == 1 or layer.config.synchronized else batch_size // replicas)
        for layer in run_layers(run)
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
        finding(
            "small_batch",
            ERROR if samples < BATCH_ERROR else WARNING,
            run,
            layer=None if uniform else smallest[0],
            title=f"batch statistics come from {samples} sample(s) per replica: {what}",
            evidence={
                "batch_size": batch_size,
                "replicas": replicas,
                "samples_per_statistic": samples,
                "variance_relative_error": relative_error,
                "mean_error_sd": 1.0 / math.sqrt(samples),
                "threshold": BATCH_WARNING,
                "layers": listed(smallest),
            },
            fix=(
                f"train with >= {BATCH_WARNING} samples per replica (synchronized=True pools the replicas), "
                "or use keras.layers.GroupNormalization, which does not depend on the batch"
            ),
            view=VIEW_RUNS,
            step=last_epoch(run),
        )
    ]


def check_probe(run: RunData) -> list[Finding]:
    """Info when the run has no probe (the training-vs-inference gap cannot be checked) or a
    probe below :data:`PROBE_MIN_SAMPLES` samples (its gaps are mostly noise)."""
    config = run.run_config
    if config is None:
        return []
    samples = config.probe_samples
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
        finding(
            "no_probe" if samples == 0 else "small_probe",
            INFO,
            run,
            title=title,
            evidence=evidence,
            fix="pass BatchNormInspector(..., probe_data=x_train[:64]): a fixed batch of a few dozen training inputs",
            view=VIEW_RUNS,
        )
    ]
