"""The doctor's findings as a text report (``bn-inspect doctor``) and counted per severity;
:meth:`Finding.to_dict` gives the JSON form."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bn_inspect.doctor.finding import SEVERITIES, Finding, severity_rank
from bn_inspect.doctor.reading import plural
from bn_inspect.table import format_cell


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


def format_report(findings: Sequence[Finding], run_names: Sequence[str]) -> str:
    """The findings as text, grouped by run (runs with the most severe findings first), each
    run's findings most severe first; runs without findings are listed as such.

    Example:
        >>> print(format_report([], ["a"]))
        run a: no findings
        <BLANKLINE>
        1 run checked: no findings
    """
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
    for name in order:
        group = sorted(by_run[name], key=lambda f: severity_rank(f.severity))
        lines.append(f"run {name}: {_counts_text(group)}")
        for f in group:
            where = f"[{f.layer}] " if f.layer else ""
            lines.append(f"  {f.severity.upper():<7}  {f.id:<{width}}  {where}{f.title}")
            pad = " " * (2 + 7 + 2)
            lines.append(f"{pad}fix:      {f.fix}")
            lines.append(f"{pad}evidence: {_evidence_text(f.evidence)}")
            shown = (
                f"{f.view} view"
                + (f", {f.quantity}" if f.quantity else "")
                + (f", epoch {f.step}" if f.step is not None else "")
            )
            lines.append(f"{pad}see:      {shown}")
        lines.append("")
    lines.append(f"{plural(len(by_run), 'run')} checked: {_counts_text(findings)}")
    return "\n".join(lines)
