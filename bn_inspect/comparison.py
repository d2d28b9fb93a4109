"""Figures that compare loaded runs slot by slot (:mod:`bn_inspect.alignment`): what the
``compare`` command prints; no printing here.

Example:
    >>> from bn_inspect import align, load_logdir
    >>> runs = [load_logdir("logs")[name] for name in ("initializers/default", "initializers/constant_0.5")]  # doctest: +SKIP
    >>> alignment = align(runs)                                          # doctest: +SKIP
    >>> config_diff(runs, alignment)[0]                                  # doctest: +SKIP
    ['bn', 'beta_initializer', 'Zeros', 'Constant(value=0.5)']
    >>> moving_stats_distances(runs, alignment, 1)["bn"]["initializers/constant_0.5"]["mean_rms"]  # doctest: +SKIP
    0.36
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bn_inspect import schema, stats
from bn_inspect.alignment import DESCRIPTIONS, Alignment, strip_numbering
from bn_inspect.reader import RunData
from bn_inspect.report import describe, layer_configs
from bn_inspect.run_config import RunConfig

RUN_SCOPE = "run"  # the scope of run-level configuration fields
ABSENT = "-"
SKIPPED_RUN_FIELDS = {"layers", "schema_version"}
SKIPPED_LAYER_FIELDS = {"path"}  # the alignment table shows the paths
# Names Keras gives automatically (`sequential`, `sequential_1`, ...): equal when they differ
# only by that number, so models built one after another in one process show no difference.
AUTO_NAMED_FIELDS = {"model_name"}


def _compared(key: str, value: Any) -> Any:
    """A field's value as compared: names Keras numbers automatically without that number."""
    return strip_numbering(value) if key in AUTO_NAMED_FIELDS and isinstance(value, str) else value


def _differing_rows(scope: str, records: list[dict | None], skip: set[str]) -> list[list[str]]:
    """``[scope, field, value per record]`` for each field whose values are not all equal
    among the records present (``None``: that run has no such record; shown as ``-``)."""
    present = [record for record in records if record is not None]
    fields = list(dict.fromkeys(key for record in present for key in record if key not in skip))
    rows = []
    for key in fields:
        values = [_compared(key, record.get(key, ABSENT)) for record in present]
        if any(value != values[0] for value in values[1:]):
            texts = [ABSENT if record is None else describe(record.get(key, ABSENT)) for record in records]
            rows.append([scope, key, *texts])
    return rows


def config_diff(runs: Sequence[RunData], alignment: Alignment) -> list[list[str]]:
    """Configuration fields that differ between ``runs``.

    Rows ``[scope, field, value in each run]``: scope ``"run"`` for run-level fields (sorted by
    name), else a slot's name, its layers' fields compared across the runs that hold it (a run
    without a layer in that slot shows ``-``). Values are text (:func:`report.describe`).

    Example:
        >>> from bn_inspect import align
        >>> a = RunData("a", config={"epochs": 1, "layers": [{"path": "bn", "channels": 2, "momentum": 0.99}]})
        >>> b = RunData("b", config={"epochs": 1, "layers": [{"path": "bn_1", "channels": 2, "momentum": 0.9}]})
        >>> config_diff([a, b], align([a, b]))
        [['bn', 'momentum', '0.99', '0.9']]
    """
    configs = [run.config or {} for run in runs]
    keys = sorted({key for config in configs for key in config} - SKIPPED_RUN_FIELDS)
    rows = _differing_rows(RUN_SCOPE, [{key: c[key] for key in keys if key in c} for c in configs], set())
    rows.sort(key=lambda row: row[1])
    per_run = [layer_configs(run) for run in runs]
    for slot in alignment.slots:
        records = [
            None if slot.path(run.name) is None else configs_.get(slot.path(run.name), {})
            for run, configs_ in zip(runs, per_run)
        ]
        rows += _differing_rows(slot.name, records, SKIPPED_LAYER_FIELDS)
    return rows


def common_epochs(runs: Sequence[RunData]) -> list[int]:
    """Epoch steps logged by every run, ascending."""
    if not runs:
        return []
    common = runs[0].epochs
    for run in runs[1:]:
        common = np.intersect1d(common, run.epochs)
    return [int(step) for step in common]


def _moving_stats(run: RunData, path: str, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    quantities = run.layers.get(path, {})
    if schema.MOVING_MEAN not in quantities or schema.MOVING_VARIANCE not in quantities:
        raise KeyError(f"no moving statistics logged for '{path}'")
    return quantities[schema.MOVING_MEAN].at(epoch), quantities[schema.MOVING_VARIANCE].at(epoch)


def moving_stats_distances(
    runs: Sequence[RunData], alignment: Alignment, epoch: int
) -> dict[str, dict[str, dict[str, float] | str]]:
    """``{slot name: {run: distance}}``: for every slot of two or more runs,
    :func:`bn_inspect.stats.moving_stats_distance` at ``epoch`` between the slot's first run
    (its reference) and each other run, or a reason text when they cannot be compared (not
    logged at that epoch, channel counts differ). Epsilon: the mean of both layers'."""
    by_name = {run.name: run for run in runs}
    configs = {run.name: run.run_config or RunConfig() for run in runs}
    out: dict[str, dict[str, dict[str, float] | str]] = {}
    for slot in alignment.matched:
        reference, *others = slot.runs
        path_a = slot.path(reference)
        distances: dict[str, dict[str, float] | str] = {}
        for other in others:
            path_b = slot.path(other)
            try:
                mean_a, var_a = _moving_stats(by_name[reference], path_a, epoch)
                mean_b, var_b = _moving_stats(by_name[other], path_b, epoch)
            except KeyError:
                distances[other] = f"not logged at epoch {epoch}"
                continue
            if np.size(mean_a) != np.size(mean_b):
                distances[other] = f"channels differ ({np.size(mean_a)} vs {np.size(mean_b)})"
                continue
            epsilon = np.mean([configs[reference].layer(path_a).epsilon, configs[other].layer(path_b).epsilon])
            distances[other] = stats.moving_stats_distance(mean_a, var_a, mean_b, var_b, float(epsilon))
        out[slot.name] = distances
    return out


def alignment_rows(alignment: Alignment) -> list[list[Any]]:
    """``[slot, path in each run ('-' when none), how it was matched]`` per slot."""
    return [
        [slot.name, *(slot.path(run) or ABSENT for run in alignment.runs), DESCRIPTIONS[slot.how]]
        for slot in alignment.slots
    ]
