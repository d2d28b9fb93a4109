"""Pure helpers that shape time series for the plugin's routes: no I/O, no TensorBoard.

Example:
    >>> s = dedupe_last([(0, 1.0, np.zeros(2)), (1, 2.0, np.ones(2)), (0, 3.0, np.full(2, 5.0))])
    >>> s.steps.tolist(), s.values.tolist()
    ([0, 1], [[5.0, 5.0], [1.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from bn_inspect.reader import Series


def dedupe_last(points: Iterable[tuple[int, float, Any]]) -> Series:
    """Build a :class:`~bn_inspect.reader.Series` from ``(step, wall_time, value)`` points in
    the order they were written: a repeated step keeps the last one written, as
    :func:`bn_inspect.load_logdir` does. When the value shape changed between fits (a rebuilt
    model), only the points with the newest shape are kept, so the values stack.
    """
    latest: dict[int, tuple[float, np.ndarray]] = {}
    for step, wall_time, value in points:
        latest[int(step)] = (float(wall_time), np.asarray(value, dtype=np.float32))
    steps = sorted(latest)
    if steps:
        newest_shape = latest[steps[-1]][1].shape
        steps = [s for s in steps if latest[s][1].shape == newest_shape]
    return Series(
        steps=np.asarray(steps, dtype=np.int64),
        values=np.stack([latest[s][1] for s in steps]) if steps else np.zeros(0, np.float32),
        wall_times=np.asarray([latest[s][0] for s in steps], dtype=np.float64),
    )


def steps_to_epochs(steps: np.ndarray, timeline_is_batch: bool, steps_per_epoch: int | None) -> np.ndarray | None:
    """Positions of logged steps on an epoch axis.

    Epoch-timeline steps already are epochs. Batch-timeline steps are global optimizer steps:
    step ``s`` sits at epoch ``s / steps_per_epoch`` (``None`` when that is unknown).
    """
    if not timeline_is_batch:
        return np.asarray(steps, dtype=np.float64)
    if not steps_per_epoch:
        return None
    return np.asarray(steps, dtype=np.float64) / float(steps_per_epoch)


def merge_timelines(epoch: Series, batch: Series | None, steps_per_epoch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One curve over fractional epochs from epoch-end points and within-epoch points.

    Returns ``(x, values)`` sorted by ``x``; where both timelines hit the same ``x`` the epoch
    point wins. Without within-epoch data (or a known ``steps_per_epoch``) it is the epoch
    series alone.

    Example:
        >>> e = Series(np.array([0, 1]), np.array([0.0, 1.0]), np.zeros(2))
        >>> b = Series(np.array([2, 4]), np.array([0.4, 0.9]), np.zeros(2))
        >>> [v.tolist() for v in merge_timelines(e, b, 4)]
        [[0.0, 0.5, 1.0], [0.0, 0.4, 1.0]]
    """
    x_epoch = np.asarray(epoch.steps, dtype=np.float64)
    x_batch = steps_to_epochs(batch.steps, True, steps_per_epoch) if batch is not None and len(batch.steps) else None
    if x_batch is None or np.shape(batch.values)[1:] != np.shape(epoch.values)[1:]:
        return x_epoch, np.asarray(epoch.values)
    keep = ~np.isin(x_batch, x_epoch)
    x = np.concatenate([x_epoch, x_batch[keep]])
    values = np.concatenate([np.asarray(epoch.values), np.asarray(batch.values)[keep]])
    order = np.argsort(x, kind="stable")
    return x[order], values[order]


def align_rows(series: Sequence[Series | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack per-step scalar series on the union of their steps, NaN where one is missing.

    Returns ``(steps, matrix, logged)`` with ``matrix[i, j]`` = value of ``series[i]`` at
    ``steps[j]`` and ``logged[i, j]`` = 1.0 where it was logged, else 0.0 (so a logged NaN
    stays distinguishable from a missing value).

    Example:
        >>> a = Series(np.array([0, 1]), np.array([1.0, np.nan]), np.zeros(2))
        >>> b = Series(np.array([1]), np.array([5.0]), np.zeros(1))
        >>> steps, m, logged = align_rows([a, None, b])
        >>> steps.tolist(), m.tolist(), logged.tolist()
        ([0, 1], [[1.0, nan], [nan, nan], [nan, 5.0]], [[1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    """
    present = [s.steps for s in series if s is not None]
    steps = np.unique(np.concatenate(present)) if present else np.zeros(0, dtype=np.int64)
    matrix = np.full((len(series), len(steps)), np.nan, dtype=np.float32)
    logged = np.zeros((len(series), len(steps)), dtype=np.float32)
    for row, item in enumerate(series):
        if item is not None and len(item.steps):
            columns = np.searchsorted(steps, item.steps)
            matrix[row, columns] = np.asarray(item.values, dtype=np.float32).reshape(-1)
            logged[row, columns] = 1.0
    return steps, matrix, logged


def count_summary(series: Series | None) -> dict | None:
    """Summary of a per-step count (e.g. non-finite channels): ``{"max", "first_step",
    "last"}`` — the largest count, the first step it was above 0, the count at the last
    step — or ``None`` when it never was above 0 (or nothing was logged).

    Example:
        >>> count_summary(Series(np.array([0, 1, 2, 3]), np.array([0.0, 2.0, 3.0, 1.0]), np.zeros(4)))
        {'max': 3, 'first_step': 1, 'last': 1}
    """
    if series is None or not len(series.steps) or not np.any(np.asarray(series.values) > 0):
        return None
    counts = np.array(series.values, dtype=np.float64).reshape(-1)
    counts[~np.isfinite(counts)] = 0.0  # a count is never NaN or infinite: treat such a value as none
    positive = np.flatnonzero(counts > 0)
    if not positive.size:
        return None
    return {"max": int(counts.max()), "first_step": int(series.steps[positive[0]]), "last": int(counts[-1])}
