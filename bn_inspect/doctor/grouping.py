"""Findings shared by several runs, as one group: the same check, with the same severity, on the
same aligned layer slot (:mod:`bn_inspect.alignment`) or on the whole run. The text report
(``bn-inspect doctor``) prints a group once, the tab's Findings panel shows it as one entry;
both take the groups from :func:`group_findings`, so the rule is defined here only.

A finding on a layer that is in no slot of the alignment stays alone: layers that cannot be
aligned are never taken for the same layer.

Example:
    >>> from bn_inspect.alignment import align_layers
    >>> from bn_inspect.doctor.finding import ERROR, VIEW_COMPARE, Finding
    >>> def dominant(run, layer):
    ...     return Finding("initializer_dominant", ERROR, run, layer, "t", {}, "f", VIEW_COMPARE)
    >>> alignment = align_layers({"a": [("sequential/batch_normalization", 32)],
    ...                           "b": [("sequential_1/batch_normalization_1", 32)],
    ...                           "c": [("other", 8)]})
    >>> groups = group_findings([dominant("a", "sequential/batch_normalization"),
    ...                          dominant("b", "sequential_1/batch_normalization_1"), dominant("c", "other")], alignment)
    >>> [(g.slot, g.runs, g.indices) for g in groups]
    [('sequential/batch_normalization', ['a', 'b'], (0, 1)), ('other', ['c'], (2,))]
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from bn_inspect.alignment import Alignment
from bn_inspect.doctor.finding import Finding


@dataclass(frozen=True)
class FindingGroup:
    """Findings of one check, one severity and one layer slot (``slot`` ``None``: run-level),
    one per run; ``indices`` are their positions in the list given to :func:`group_findings`."""

    id: str
    severity: str
    slot: str | None
    findings: tuple[Finding, ...]
    indices: tuple[int, ...]

    @property
    def runs(self) -> list[str]:
        return [finding.run for finding in self.findings]

    @property
    def shared(self) -> bool:
        """Found in more than one run."""
        return len(self.findings) > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: id, severity, slot, runs, each run's layer path and the findings' indices.

        Example:
            >>> FindingGroup("x", "info", None, (), ()).to_dict()
            {'id': 'x', 'severity': 'info', 'slot': None, 'runs': [], 'layers': {}, 'findings': []}
        """
        return {
            "id": self.id,
            "severity": self.severity,
            "slot": self.slot,
            "runs": self.runs,
            "layers": {finding.run: finding.layer for finding in self.findings},
            "findings": list(self.indices),
        }


def slots_by_layer(alignment: Alignment) -> dict[tuple[str, str], str]:
    """The slot name of each ``(run, layer path)`` of ``alignment``."""
    return {(run, layer.path): slot.name for slot in alignment.slots for run, layer in slot.layers.items()}


def group_key(finding: Finding, slot_of: dict[tuple[str, str], str]) -> Hashable:
    """What findings of different runs must share to be one group: check, severity, and the
    aligned slot of the layer (nothing for run-level findings; the run itself when the layer is
    in no slot, so it stays alone)."""
    if finding.layer is None:
        return (finding.id, finding.severity, "run")
    slot = slot_of.get((finding.run, finding.layer))
    if slot is None:
        return (finding.id, finding.severity, "unaligned", finding.run, finding.layer)
    return (finding.id, finding.severity, "slot", slot)


def group_findings(findings: Sequence[Finding], alignment: Alignment) -> list[FindingGroup]:
    """``findings`` (of the runs ``alignment`` aligned) in groups by :func:`group_key`, in the
    order each group's first finding comes (most severe first when ``findings`` are)."""
    slot_of = slots_by_layer(alignment)
    members: dict[Hashable, list[int]] = {}
    for i, finding in enumerate(findings):
        members.setdefault(group_key(finding, slot_of), []).append(i)
    groups = []
    for indices in members.values():
        first = findings[indices[0]]
        slot = None if first.layer is None else slot_of.get((first.run, first.layer), first.layer)
        groups.append(FindingGroup(first.id, first.severity, slot, tuple(findings[i] for i in indices), tuple(indices)))
    return groups
