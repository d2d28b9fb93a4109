"""Check 5: broken moving variance: NaN, inf or negative statistics, or variance below epsilon."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bn_inspect import schema
from bn_inspect.doctor.finding import ERROR, VIEW_EPOCHS, WARNING, Finding, finding, listed
from bn_inspect.doctor.reading import Layer, run_layers
from bn_inspect.doctor.thresholds import TINY_VARIANCE_FACTOR
from bn_inspect.reader import RunData


def _channel_check(
    run: RunData, bad: Callable[[Layer, np.ndarray, np.ndarray], np.ndarray]
) -> list[tuple[Layer, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Layers with channels where ``bad(layer, mean, variance)`` holds at their last epoch:
    ``(layer, step, mask, mean, variance)``."""
    out = []
    for layer in run_layers(run):
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
        finding(
            "nonfinite_moving_stats",
            ERROR,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in hits],
            title=(
                f"'{layer.path}' has {int(mask.sum())} of {mask.size} channels with NaN, inf or negative "
                "moving statistics"
            ),
            evidence={
                "channels": int(mask.sum()),
                "of_channels": int(mask.size),
                "nan": int(np.count_nonzero(np.isnan(mean) | np.isnan(variance))),
                "inf": int(np.count_nonzero(np.isinf(mean) | np.isinf(variance))),
                "negative_variance": negative,
                "channel_indices": listed(np.flatnonzero(mask).tolist()),
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

    def tiny(layer: Layer, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.isfinite(variance) & (variance >= 0) & (variance < TINY_VARIANCE_FACTOR * layer.epsilon)

    hits = _channel_check(run, tiny)
    if not hits:
        return []
    layer, step, mask, _, variance = hits[0]
    return [
        finding(
            "tiny_moving_variance",
            WARNING,
            run,
            layer=layer.path,
            affected=[hit[0].path for hit in hits],
            title=(
                f"'{layer.path}' has {int(mask.sum())} of {mask.size} channels with moving variance below "
                f"epsilon ({layer.epsilon:g}): dead or near-constant units"
            ),
            evidence={
                "channels": int(mask.sum()),
                "of_channels": int(mask.size),
                "zero_variance": int(np.count_nonzero(variance[mask] == 0)),
                "min_variance": float(np.min(variance[mask])),
                "epsilon": layer.epsilon,
                "channel_indices": listed(np.flatnonzero(mask).tolist()),
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
