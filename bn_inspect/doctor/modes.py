"""Check 2: training- and inference-mode outputs differ on the probe, and where the gap starts."""

from __future__ import annotations

import math

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.doctor.finding import ERROR, INFO, VIEW_MODES, WARNING, Finding, finding
from bn_inspect.doctor.reading import run_layers, scalar
from bn_inspect.doctor.thresholds import (
    MEAN_GAP_WARNING,
    OUTPUT_GAP_ERROR,
    OUTPUT_GAP_WARNING,
    PROBE_NOISE_FACTOR,
    VAR_LOG_RATIO_WARNING,
)
from bn_inspect.reader import RunData
from bn_inspect.run_config import RunConfig


def _gap_thresholds(samples: int) -> tuple[float, float]:
    """Per-layer (mean gap, variance log ratio) thresholds for a probe of ``samples``."""
    mean_floor, variance_floor = stats.sampling_gap_floor(samples)
    return max(MEAN_GAP_WARNING, PROBE_NOISE_FACTOR * mean_floor), max(
        VAR_LOG_RATIO_WARNING, PROBE_NOISE_FACTOR * variance_floor
    )


def check_train_inference_gap(run: RunData) -> list[Finding]:
    """The model's training- and inference-mode outputs on the probe differ at the last epoch,
    and some layer's probe gap is beyond chance: names the first such layer in model order.

    Severity follows the output gap: error from :data:`OUTPUT_GAP_ERROR`, warning from
    :data:`OUTPUT_GAP_WARNING`, info below (at most warning when Dropout adds noise).
    """
    gap = run.model.get(schema.OUTPUT_GAP)
    config = run.run_config or RunConfig()
    samples = config.probe_samples
    if gap is None or len(gap.steps) == 0 or samples < 2:
        return []
    step = int(gap.steps[-1])
    fields = dict(zip(schema.OUTPUT_GAP_FIELDS, np.asarray(gap.values[-1], dtype=np.float64).tolist()))
    if not math.isfinite(fields["relative"]):  # NaN/inf outputs: check_nonfinite names the cause
        return []
    mean_threshold, variance_threshold = _gap_thresholds(samples)
    over = []
    for layer in run_layers(run):
        mean_gap, variance_ratio = layer.at(schema.PROBE_MEAN_GAP, step), layer.at(schema.PROBE_VAR_LOG_RATIO, step)
        if mean_gap is None or variance_ratio is None:
            continue
        mean_gap, variance_ratio = scalar(mean_gap), scalar(variance_ratio)
        if mean_gap >= mean_threshold or variance_ratio >= variance_threshold:  # NaN (frozen) never
            over.append((layer, mean_gap, variance_ratio))
    if not over:
        return []
    layer, mean_gap, variance_ratio = over[0]
    relative = fields["relative"]
    severity = ERROR if relative >= OUTPUT_GAP_ERROR else WARNING if relative >= OUTPUT_GAP_WARNING else INFO
    noisy = config.probe_has_dropout
    if noisy and severity == ERROR:
        severity = WARNING
    quantity = schema.PROBE_MEAN_GAP if mean_gap >= mean_threshold else schema.PROBE_VAR_LOG_RATIO
    return [
        finding(
            "train_inference_gap",
            severity,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in over],
            title=(
                f"training and inference outputs differ by {relative:.0%} on the probe; the gap first "
                f"appears at '{layer.path}' (mean {mean_gap:.2g} sd, variance x{math.exp(variance_ratio):.2g})"
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
