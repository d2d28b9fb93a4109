"""The doctor's findings as a text report (``bn-inspect doctor``; a finding shared by several
runs printed once) and counted per severity;
:meth:`Finding.to_dict` gives the JSON form."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bn_inspect.doctor.finding import SEVERITIES, Finding, severity_rank
from bn_inspect.doctor.grouping import FindingGroup
from bn_inspect.doctor.reading import plural
from bn_inspect.table import format_cell

RUNS_NAMED = 5  # runs a shared finding names before "(+K more)"


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Number of findings per severity, every severity present.

    Example:
        >>> counts([])
        {'error': 0, 'warning': 0, 'info': 0}
    """
    tally = {severity: 0 for severity in SEVERITIES}
    for finding in findings:
        tally[finding.severity] += 1
    return tally


def _evidence_text(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        parts.append(f"{key}={format_cell(value)}")
    return "  ".join(parts)


def _counts_text(findings: Sequence[Finding]) -> str:
    return ", ".join(plural(n, severity) for severity, n in counts(findings).items() if n) or "no findings"


def _shared_header(group: FindingGroup, f: Finding) -> str:
    runs = group.runs
    named = ", ".join(runs[:RUNS_NAMED]) + (f" (+{len(runs) - RUNS_NAMED} more)" if len(runs) > RUNS_NAMED else "")
    return f"{f.title} in {len(runs)} runs: {named}"


def _finding_lines(f: Finding, width: int, group: FindingGroup | None = None) -> list[str]:
    """A finding as the report prints it; ``group``: the shared group it stands for."""
    where = f"[{group.slot if group else f.layer}] " if f.layer else ""
    title = _shared_header(group, f) if group else f.title
    pad = " " * (2 + 7 + 2)
    lines = [f"  {f.severity.upper():<7}  {f.id:<{width}}  {where}{title}"]
    if group:
        paths = [(x.run, x.layer) for x in group.findings[:RUNS_NAMED] if x.layer and x.layer != group.slot]
        if paths:
            lines.append(f"{pad}layers:   " + ", ".join(f"{run}: {path}" for run, path in paths))
    lines.append(f"{pad}fix:      {f.fix}")
    lines.append(f"{pad}evidence: {_evidence_text(f.evidence)}")
    if group and not _same_figures(group.findings):
        lines.append(f"{pad}          (figures of run {f.run}; they differ by run: --format json lists each)")
    shown = (
        f"{f.view} view"
        + (f", {f.quantity}" if f.quantity else "")
        + (f", epoch {f.step}" if f.step is not None else "")
    )
    lines.append(f"{pad}see:      {shown}")
    return lines


def _same_figures(findings: Sequence[Finding]) -> bool:
    """Same title, fix and evidence (apart from the layer paths it lists) in every finding."""

    def figures(f: Finding) -> tuple:
        return (f.title, f.fix, {k: v for k, v in f.to_dict()["evidence"].items() if k != "layers"})

    return all(figures(f) == figures(findings[0]) for f in findings[1:])


def _run_header(name: str, own: Sequence[Finding], shared: Sequence[Finding]) -> str:
    parts = [_counts_text(own)] if own or not shared else []
    if shared:
        parts.append(f"shared with other runs (above): {_counts_text(shared)}")
    return f"run {name}: " + "; ".join(parts)


def format_report(findings: Sequence[Finding], run_names: Sequence[str], groups: Sequence[FindingGroup] = ()) -> str:
    """The findings as text: first each finding that ``groups`` (:func:`~bn_inspect.doctor.grouping.group_findings`)
    shares between runs, once, most severe first; then by run (runs with the most severe
    findings first), each run's own findings most severe first; runs without findings are
    listed as such.

    Example:
        >>> print(format_report([], ["a"]))
        run a: no findings
        <BLANKLINE>
        1 run checked: no findings
    """
    shared_groups = sorted((g for g in groups if g.shared), key=lambda g: severity_rank(g.severity))
    shared_ids = {id(f) for g in shared_groups for f in g.findings}
    by_run: dict[str, list[Finding]] = {name: [] for name in run_names}
    for finding in findings:
        by_run.setdefault(finding.run, []).append(finding)
    order = sorted(
        by_run,
        key=lambda name: (
            min((severity_rank(f.severity) for f in by_run[name]), default=len(SEVERITIES)),
            list(by_run).index(name),
        ),
    )
    width = max((len(f.id) for f in findings), default=0)
    lines = []
    if shared_groups:
        lines.append(f"in several runs: {_counts_text([g.findings[0] for g in shared_groups])}")
        for group in shared_groups:
            lines += _finding_lines(group.findings[0], width, group)
        lines.append("")
    for name in order:
        own = sorted((f for f in by_run[name] if id(f) not in shared_ids), key=lambda f: severity_rank(f.severity))
        lines.append(_run_header(name, own, [f for f in by_run[name] if id(f) in shared_ids]))
        for f in own:
            lines += _finding_lines(f, width)
        lines.append("")
    lines.append(f"{plural(len(by_run), 'run')} checked: {_counts_text(findings)}")
    return "\n".join(lines)
