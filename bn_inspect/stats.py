"""Pure numpy numerics of bn-inspect: no Keras, no TensorFlow.

Example:
    >>> round(float(residual_init_weight(0.99, 100)), 3)
    0.366
    >>> layer_gaps(np.array([1.0]), np.array([4.0]), np.array([0.0]), np.array([1.0]), 0.0)
    (1.0, 1.3862943611198906)
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def residual_init_weight(momentum: float | np.ndarray, updates: int | np.ndarray) -> np.ndarray:
    """Weight the initializer still has in the moving statistics: ``momentum ** updates``.

    Each update ``moving = m * moving + (1 - m) * batch`` scales the initial value by ``m``;
    every batch enters with weight ``(1 - m)`` and then decays like the initializer.
    """
    return np.power(np.float64(momentum), np.asarray(updates, dtype=np.float64))


def steps_until_residual(momentum: float, target: float) -> int:
    """Fewest updates after which ``momentum ** updates <= target`` (0 when already there).

    Example:
        >>> steps_until_residual(0.99, 0.01)
        459
    """
    if momentum <= 0.0 or target >= 1.0:
        return 0
    if momentum >= 1.0 or target <= 0.0:
        raise ValueError("momentum must be < 1 and target > 0 for the initializer to fade")
    return int(np.ceil(np.log(target) / np.log(momentum)))


def interval_for_share(cost_seconds: float, period_seconds: float, share: float) -> int:
    """Fewest periods between runs of a ``cost_seconds`` job so that it adds at most
    ``share`` of ``period_seconds`` per period (1 when it already does).

    Example:
        >>> interval_for_share(cost_seconds=25.0, period_seconds=20.0, share=0.1)  # 25 / (k * 20) <= 0.1
        13
    """
    if period_seconds <= 0:
        raise ValueError(f"period_seconds must be positive; got {period_seconds!r}")
    return max(1, math.ceil(cost_seconds / (share * period_seconds) - 1e-9))


def batch_stat_from_update(updated_from_zero: np.ndarray, momentum: float) -> np.ndarray:
    """Recover a batch statistic from one moving-average update that started at zero.

    With ``moving = 0`` before the update, ``moving' = (1 - m) * batch``, so
    ``batch = moving' / (1 - m)`` without the cancellation that ``(new - m * old)`` suffers.
    Returns NaN where ``momentum == 1`` (the update carries no information).
    """
    values = np.asarray(updated_from_zero, dtype=np.float64)
    if momentum >= 1.0:
        return np.full(values.shape, np.nan)
    return values / (1.0 - momentum)


def merge_moments(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two per-channel ``(count, mean, m2)`` summaries into the summary of their union.

    ``m2`` is the sum of squared deviations from the mean (``variance = m2 / count``, ddof=0).
    Chan, Golub & LeVeque's parallel update, in float64: no ``sum(x**2) - n*mean**2``
    cancellation, so a long stream of batches with a large mean keeps full precision.
    Channels with a zero count on one side take the other side unchanged.

    Example:
        >>> x = np.array([[1.0], [2.0], [4.0], [9.0]])
        >>> part = lambda v: (np.array([len(v)]), v.mean(0), ((v - v.mean(0)) ** 2).sum(0))
        >>> n, mean, m2 = merge_moments(part(x[:1]), part(x[1:]))
        >>> n.tolist(), mean.tolist(), (m2 / n).tolist() == x.var(0).tolist()
        ([4], [4.0], True)
    """
    count_a, mean_a, m2_a = (np.asarray(v, np.float64) for v in a)
    count_b, mean_b, m2_b = (np.asarray(v, np.float64) for v in b)
    count = count_a + count_b
    safe = np.where(count > 0, count, 1.0)
    delta = mean_b - mean_a
    mean = np.where(count > 0, mean_a + delta * (count_b / safe), 0.0)
    m2 = m2_a + m2_b + np.square(delta) * (count_a * count_b / safe)
    return count.astype(np.int64), mean, m2


def layer_gaps(
    batch_mean: np.ndarray,
    batch_variance: np.ndarray,
    moving_mean: np.ndarray,
    moving_variance: np.ndarray,
    epsilon: float,
) -> tuple[float, float]:
    """How far batch (or population) statistics are from the moving ones, for one layer.

    Returns ``(mean_gap, variance_log_ratio)``:
    ``mean_gap = mean_c |batch_mean - moving_mean| / sqrt(moving_variance + eps)`` (in units
    of the inference-time standard deviation: how far inference shifts each channel), and
    ``variance_log_ratio = mean_c |log((batch_variance + eps) / (moving_variance + eps))|``
    (0 when the scales agree; log(4) when one is 4x the other).
    """
    moving_variance = np.asarray(moving_variance, dtype=np.float64)
    scale = np.sqrt(np.maximum(moving_variance + epsilon, np.finfo(np.float64).tiny))
    mean_gap = np.abs(np.asarray(batch_mean, np.float64) - np.asarray(moving_mean, np.float64)) / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log((np.asarray(batch_variance, np.float64) + epsilon) / (moving_variance + epsilon))
    return float(np.mean(mean_gap)), float(np.mean(np.abs(ratio)))


def output_gap(training_outputs: np.ndarray, inference_outputs: np.ndarray) -> np.ndarray:
    """``[mean |diff|, max |diff|, mean |diff| / mean |inference|]`` of two output arrays."""
    train = np.asarray(training_outputs, dtype=np.float64)
    infer = np.asarray(inference_outputs, dtype=np.float64)
    diff = np.abs(train - infer)
    if diff.size == 0:
        return np.zeros(3)
    scale = np.mean(np.abs(infer))
    relative = np.mean(diff) / scale if scale > 0 else (0.0 if np.mean(diff) == 0 else np.inf)
    return np.array([np.mean(diff), np.max(diff), relative])


def moving_stats_distance(
    mean_a: np.ndarray,
    variance_a: np.ndarray,
    mean_b: np.ndarray,
    variance_b: np.ndarray,
    epsilon: float,
) -> dict[str, float]:
    """How far apart two sets of moving statistics of one layer are (e.g. in two runs).

    Returns, over channels c:

    - ``mean_rms = sqrt(mean_c (mean_b - mean_a)**2)`` and ``variance_rms`` likewise;
    - ``mean_gap = mean_c |mean_b - mean_a| / sqrt((variance_a + variance_b) / 2 + eps)``: the
      mean shift in units of the pooled inference-time standard deviation (symmetric in a, b);
    - ``variance_log_ratio = mean_c |log((variance_b + eps) / (variance_a + eps))|``.

    Layers with different channel counts are not comparable: ``ValueError``.

    Example:
        >>> d = moving_stats_distance(np.zeros(2), np.ones(2), np.ones(2), np.ones(2) * 4, 0.0)
        >>> {k: round(v, 3) for k, v in d.items()}
        {'mean_rms': 1.0, 'variance_rms': 3.0, 'mean_gap': 0.632, 'variance_log_ratio': 1.386}
    """
    ma, va, mb, vb = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (mean_a, variance_a, mean_b, variance_b))
    if not ma.size == va.size == mb.size == vb.size:
        raise ValueError(f"channel counts differ ({ma.size} vs {mb.size}); the layers are not comparable")
    diff = mb - ma
    pooled = np.sqrt(np.maximum((va + vb) / 2 + epsilon, np.finfo(np.float64).tiny))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log((vb + epsilon) / (va + epsilon))
    return {
        "mean_rms": float(np.sqrt(np.mean(np.square(diff)))),
        "variance_rms": float(np.sqrt(np.mean(np.square(vb - va)))),
        "mean_gap": float(np.mean(np.abs(diff) / pooled)),
        "variance_log_ratio": float(np.mean(np.abs(log_ratio))),
    }


def nonfinite_channel_mask(moving_mean: np.ndarray, moving_variance: np.ndarray) -> np.ndarray:
    """Per channel: is the moving mean NaN/inf or the moving variance NaN/inf/negative."""
    var = np.asarray(moving_variance)
    return ~(np.isfinite(moving_mean) & np.isfinite(var) & (var >= 0))  # NaN >= 0 is False


def nonfinite_channels(moving_mean: np.ndarray, moving_variance: np.ndarray) -> int:
    """Channels whose moving mean is NaN/inf or whose moving variance is NaN/inf/negative."""
    return int(np.count_nonzero(nonfinite_channel_mask(moving_mean, moving_variance)))


def largest_difference(
    moving_mean: np.ndarray,
    moving_variance: np.ndarray,
    reference_mean: np.ndarray | float,
    reference_variance: np.ndarray | float,
) -> np.float32:
    """Largest absolute difference of a layer's moving statistics from reference ones (a
    starting state, or its initializers' constants):
    ``max_c max(|mean_c - reference_mean_c|, |variance_c - reference_variance_c|)``.

    Exactly 0 when both statistics equal the reference in every channel, NaN when a value is NaN.

    Example:
        >>> float(largest_difference(np.array([0.5, 0.0]), np.array([1.0, 3.0]), np.zeros(2), 1.0))
        2.0
    """
    mean_difference = np.abs(np.asarray(moving_mean, np.float64) - np.asarray(reference_mean, np.float64))
    variance_difference = np.abs(np.asarray(moving_variance, np.float64) - np.asarray(reference_variance, np.float64))
    return np.float32(np.max(np.maximum(mean_difference, variance_difference)))


def replica_spread(per_replica: np.ndarray) -> np.ndarray:
    """Per channel ``max - min`` across replicas of a ``[replicas, channels]`` statistic.

    0 when every replica normalises a channel with the same statistic (one replica, or
    synchronized BatchNormalization); NaN where any replica's value is NaN.

    Example:
        >>> replica_spread(np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])).tolist()
        [2.0, 0.0]
    """
    values = np.asarray(per_replica, dtype=np.float64)
    return np.max(values, axis=0) - np.min(values, axis=0)


def replica_mean_spread_gap(mean_spread: np.ndarray, batch_variance: np.ndarray, epsilon: float) -> float:
    """``mean_c spread_c / sqrt(batch_variance_c + eps)``: how far apart the replicas' batch
    means are, in units of the standard deviation of the whole probe batch (NaN if unmeasured).

    Example:
        >>> replica_mean_spread_gap(np.array([2.0, 0.0]), np.array([4.0, 1.0]), 0.0)
        0.5
    """
    variance = np.asarray(batch_variance, dtype=np.float64)
    scale = np.sqrt(np.maximum(variance + epsilon, np.finfo(np.float64).tiny))
    return float(np.mean(np.asarray(mean_spread, dtype=np.float64) / scale))


def sampling_gap_floor(samples: int) -> tuple[float, float]:
    """The :func:`layer_gaps` a random batch of ``samples`` shows by chance alone.

    For normally distributed channels, a batch mean misses the true mean by
    ``sigma * z / sqrt(n)`` and the log of the biased batch variance misses the log of the
    true one with standard deviation about ``sqrt(2 / (n - 1))`` (delta method). ``|N(0, s²)|``
    averages ``s * sqrt(2 / pi)``, so the expected ``(mean_gap, variance_log_ratio)`` against
    exact statistics is ``(sqrt(2 / (pi n)), sqrt(2 / pi) * sqrt(2 / (n - 1)))``, infinite for
    ``n < 2``. The variance term is an approximation that gets good from a dozen samples.

    Example:
        >>> [round(v, 3) for v in sampling_gap_floor(64)]
        [0.1, 0.142]
    """
    if samples < 2:
        return np.inf, np.inf
    root = np.sqrt(2.0 / np.pi)
    return float(root / np.sqrt(samples)), float(root * np.sqrt(2.0 / (samples - 1)))


def expected_normal_range(count: int) -> float:
    """``E[max - min]`` of ``count`` independent standard normal values (0 for ``count < 2``).

    Scaled by ``sigma / sqrt(k)`` it is the spread :func:`replica_spread` expects by chance
    when ``count`` replicas each average ``k`` samples of the same data. Computed as
    ``integral of 1 - Phi(x)**n - (1 - Phi(x))**n dx``.

    Example:
        >>> [round(expected_normal_range(n), 3) for n in (2, 3, 4, 8)]
        [1.128, 1.693, 2.059, 2.847]
    """
    if count < 2:
        return 0.0
    x = np.linspace(-12.0, 12.0, 24001)
    phi = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))
    integrand = 1.0 - phi**count - (1.0 - phi) ** count
    return float(np.sum((integrand[1:] + integrand[:-1]) / 2.0) * (x[1] - x[0]))


def drift(series: np.ndarray) -> np.ndarray:
    """Per-step RMS change of a ``[steps, channels]`` series; the first step is 0.

    Example:
        >>> drift(np.array([[0.0, 0.0], [3.0, 4.0]])).round(3).tolist()
        [0.0, 3.536]
    """
    values = np.asarray(series, dtype=np.float64)
    out = np.zeros(values.shape[0])
    if values.shape[0] > 1:
        out[1:] = np.sqrt(np.mean(np.square(np.diff(values, axis=0)), axis=1))
    return out


def _rows(series: np.ndarray) -> np.ndarray:
    """A ``[steps, ...]`` array as ``[steps, channels]``, its dtype kept (a per-step scalar is 1 channel)."""
    values = np.asarray(series)
    return values.reshape(values.shape[0], int(np.prod(values.shape[1:])))


def channel_summary(series: np.ndarray, low: float = 10.0, high: float = 90.0) -> dict[str, np.ndarray]:
    """Per-step summary over channels of a ``[steps, channels]`` series, ignoring NaNs.

    Returns ``{"mean", "low", "high"}``, each of shape ``[steps]``: the channel mean and the
    ``low``-th / ``high``-th channel percentiles (a band showing how spread the channels are),
    as ``np.nanmean`` and ``np.nanpercentile`` (linear interpolation) give them.

    Example:
        >>> s = channel_summary(np.array([[0.0, 10.0], [1.0, 3.0]]), low=0, high=100)
        >>> s["mean"].tolist(), s["low"].tolist(), s["high"].tolist()
        ([5.0, 2.0], [0.0, 1.0], [10.0, 3.0])
    """
    values = _rows(series)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    # NaNs sort last; one sort serves both percentiles, in the stored precision (exact: only
    # the interpolation and the mean compute, in float64)
    ordered = np.sort(values, axis=1)
    finite_count = np.count_nonzero(~np.isnan(ordered), axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps give NaN
        if finite_count.min(initial=values.shape[1]) < values.shape[1]:
            mean = np.nanmean(values.astype(np.float64), axis=1)
        else:
            mean = values.mean(axis=1, dtype=np.float64)
        return {
            "mean": mean,
            "low": _sorted_percentile(ordered, finite_count, low),
            "high": _sorted_percentile(ordered, finite_count, high),
        }


def _sorted_percentile(ordered: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per row, the ``q``-th percentile of its first ``counts`` values (rows sorted
    ascending): at position ``p = q / 100 * (count - 1)``, ``v[floor p] + (p - floor p) *
    (v[floor p + 1] - v[floor p])``; NaN for a row of no values.

    Example:
        >>> _sorted_percentile(np.array([[1.0, 2.0, 4.0, np.nan]]), np.array([3]), 75.0).tolist()
        [3.0]
    """
    position = q / 100.0 * np.maximum(counts - 1, 0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(counts - 1, 0))
    rows = np.arange(ordered.shape[0])
    if ordered.shape[1] == 0:
        return np.full(ordered.shape[0], np.nan)
    lower, upper = ordered[rows, below].astype(np.float64), ordered[rows, above].astype(np.float64)
    result = lower + (position - below) * (upper - lower)
    return np.where(counts > 0, result, np.nan)


def run_distance(
    steps_a: np.ndarray, values_a: np.ndarray, steps_b: np.ndarray, values_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RMS over channels of ``b - a`` at the steps both runs logged.

    ``values_*`` are ``[steps, channels]``; returns ``(common_steps, distance)``. Runs whose
    layers have different channel counts are not comparable: ``ValueError``.

    Example:
        >>> run_distance(np.array([0, 1]), np.zeros((2, 2)), np.array([1, 2]), np.ones((2, 2)))
        (array([1]), array([1.]))
    """
    a, b = _rows(values_a), _rows(values_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"channel counts differ ({a.shape[1]} vs {b.shape[1]}); the layers are not comparable")
    if np.array_equal(steps_a, steps_b):  # the usual case: the same epochs
        common, index_a, index_b = np.asarray(steps_a), slice(None), slice(None)
    else:
        common, index_a, index_b = np.intersect1d(steps_a, steps_b, return_indices=True)
    if not a.shape[1]:
        return common, np.zeros(len(common))
    difference = b[index_b].astype(np.float64)
    difference -= a[index_a]
    return common, np.sqrt(np.einsum("ij,ij->i", difference, difference) / a.shape[1])
