"""Check 6: EMA staleness: moving statistics far from the reference data's population statistics."""

from __future__ import annotations

import math

from bn_inspect import schema
from bn_inspect.doctor.finding import ERROR, VIEW_MODES, WARNING, Finding, finding
from bn_inspect.doctor.reading import misfit, population_gaps, run_layers
from bn_inspect.doctor.thresholds import MEAN_GAP_WARNING, VAR_LOG_RATIO_WARNING
from bn_inspect.reader import RunData


def check_staleness(run: RunData) -> list[Finding]:
    """Trainable layers' moving statistics far from the exact population statistics of the
    reference data at the last step they were computed (only when the run logged
    ``reference_data``; frozen layers are :func:`check_frozen`'s)."""
    hits = []
    for layer in run_layers(run):
        gap = None if layer.frozen else population_gaps(layer)
        if gap is not None and misfit(gap[1], gap[2]):
            hits.append((layer, *gap))
    if not hits:
        return []
    layer, step, mean_gap, variance_ratio = hits[0]
    severe = [hit for hit in hits if misfit(hit[2], hit[3]) == ERROR]
    return [
        finding(
            "stale_moving_stats",
            ERROR if severe else WARNING,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in hits],
            title=(
                f"moving statistics of '{layer.path}' are {mean_gap:.2g} sd and x{math.exp(variance_ratio):.2g} in "
                "variance away from the reference data's population statistics"
            ),
            evidence={
                "population_mean_gap": mean_gap,
                "population_var_log_ratio": variance_ratio,
                "mean_gap_threshold": MEAN_GAP_WARNING,
                "var_log_ratio_threshold": VAR_LOG_RATIO_WARNING,
                "layers_severe": len(severe),
            },
            fix="call bn_inspect.recalibrate(model, x_train) after training to install the population statistics",
            view=VIEW_MODES,
            quantity=schema.POPULATION_MEAN_GAP,
            step=step,
        )
    ]
