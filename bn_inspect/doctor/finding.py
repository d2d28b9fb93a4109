"""What the doctor reports: :class:`Finding`, its severities, the tab views it points at, and
:func:`finding`, which builds the fields every check's finding repeats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bn_inspect.doctor.thresholds import MAX_LISTED
from bn_inspect.reader import RunData

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)  # most severe first

# The views of the BN Inspect tab a finding points at. The tab learns them from the plugin's
# schema summary (tb_plugin.queries.schema_summary), in this order, with these titles.
VIEW_RUNS = "runs"  # run config, per-layer config (trainable, ...)
VIEW_EPOCHS = "epochs"  # per-layer, per-channel heatmap of one quantity over epochs
VIEW_COMPARE = "compare"  # runs compared, incl. the residual initializer weight momentum**t
VIEW_MODES = "modes"  # training vs inference: output gap; per-layer probe gaps, staleness, replicas
VIEWS = (VIEW_RUNS, VIEW_EPOCHS, VIEW_COMPARE, VIEW_MODES)
VIEW_TITLES = {
    VIEW_RUNS: "Runs & configurations",
    VIEW_EPOCHS: "Epochs",
    VIEW_COMPARE: "Runs compared",
    VIEW_MODES: "Training vs inference",
}


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


def severity_rank(severity: str) -> int:
    """0 for error, 1 for warning, 2 for info (sort key: most severe first).

    Example:
        >>> severity_rank(WARNING)
        1
    """
    return SEVERITIES.index(severity)


def listed(items: Sequence[Any]) -> list[Any]:
    """The first :data:`~bn_inspect.doctor.thresholds.MAX_LISTED` items (channel indices,
    layer paths) named in a finding's evidence."""
    return list(items[:MAX_LISTED])


def finding(
    check: str,
    severity: str,
    run: RunData,
    *,
    title: str,
    evidence: dict[str, Any],
    fix: str,
    view: str,
    layer: str | None = None,
    affected: Sequence[str] | None = None,
    quantity: str | None = None,
    step: int | None = None,
) -> Finding:
    """The finding ``check`` reports in ``run``.

    ``affected``: the paths of every layer the finding covers (``layer`` is the one it names);
    the title then says how many when more than one, and the evidence ends with
    ``layers_affected`` and ``layers`` (the first :data:`MAX_LISTED`).

    Example:
        >>> f = finding("x", WARNING, RunData("r"), title="t", evidence={}, fix="f", view=VIEW_RUNS,
        ...             layer="a", affected=["a", "b"])
        >>> f.title, f.evidence
        ('t (2 layers affected)', {'layers_affected': 2, 'layers': ['a', 'b']})
    """
    if affected is not None:
        title += f" ({len(affected)} layers affected)" if len(affected) > 1 else ""
        evidence = {**evidence, "layers_affected": len(affected), "layers": listed(affected)}
    return Finding(
        id=check,
        severity=severity,
        run=run.name,
        layer=layer,
        title=title,
        evidence=evidence,
        fix=fix,
        view=view,
        quantity=quantity,
        step=step,
    )
