"""Rich notebook displays (``_repr_html_``) of loaded runs and of the doctor's findings.

Every string from the logs (run names, layer paths, config values) is escaped: it shows as
text, never as markup.

Example:
    >>> "No findings" in findings_table([], ["a"])
    True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from bn_inspect import doctor, report
from bn_inspect.reader import RunData
from bn_inspect.table import format_cell

MAX_LAYERS_SHOWN = 12
SEVERITY_COLORS = {doctor.ERROR: "#c62828", doctor.WARNING: "#ef6c00", doctor.INFO: "#1565c0"}
CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #e0e0e0"
RUN_FIELDS = ("model_name", "backend", "keras_version", "batch_size", "steps_per_epoch")


def _text(value: Any) -> str:
    return html.escape(format_cell(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_class: str) -> str:
    """A table of cells already escaped."""
    head = "".join(f'<th style="{CELL}">{html.escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{CELL}">{cell}</td>' for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}" style="border-collapse:collapse;font-size:12px"><tr>{head}</tr>{body}</table>'


def _counts(findings: Sequence[doctor.Finding]) -> str:
    parts = [
        f'<span style="color:{SEVERITY_COLORS[severity]};font-weight:600">{count} {severity}</span>'
        for severity, count in doctor.counts(findings).items()
        if count
    ]
    return " · ".join(parts)


def _evidence(evidence: dict[str, Any]) -> str:
    parts = []
    for key, value in evidence.items():
        shown = ", ".join(format_cell(v) for v in value) if isinstance(value, (list, tuple)) else format_cell(value)
        parts.append(f"{html.escape(key)}={html.escape(shown)}")
    return '<br><span style="color:#616161">' + " ".join(parts) + "</span>" if parts else ""


def findings_table(findings: Sequence[doctor.Finding], run_names: Sequence[str]) -> str:
    """The findings, most severe first: severity, run, layer, what was found (with its
    evidence), the fix."""
    checked = f"{len(run_names)} run{'s' if len(run_names) != 1 else ''} checked"
    if not findings:
        return f'<div class="bn-inspect-findings"><b>No findings</b> ({checked}).</div>'
    rows = [
        (
            f'<span style="color:{SEVERITY_COLORS.get(f.severity, "#000")};font-weight:600">{_text(f.severity)}</span>',
            _text(f.run),
            _text(f.layer),
            f"{_text(f.title)}{_evidence(f.evidence)}",
            _text(f.fix),
        )
        for f in findings
    ]
    table = _table(("severity", "run", "layer", "what", "fix"), rows, "bn-inspect-findings-table")
    return f'<div class="bn-inspect-findings"><p>{_counts(findings)} ({checked})</p>{table}</div>'


def run_summary(run: RunData) -> str:
    """One run at a glance: its configuration, last epoch, output gap and, per BN layer, the
    last logged state (:func:`bn_inspect.report.summarize_run`)."""
    summary = report.summarize_run(run)
    config = run.config or {}
    facts = [f"last epoch {_text(summary.last_epoch)}", f"{len(summary.layers)} BN layers"]
    facts += [f"{html.escape(name)} {_text(config[name])}" for name in RUN_FIELDS if config.get(name) is not None]
    if summary.output_gap is not None:
        facts.append(
            f"train/inference output gap {_text(summary.output_gap)} ({_text(summary.output_gap_relative)} relative)"
        )
    rows = [
        (
            _text(layer.path),
            _text(layer.channels),
            _text(layer.momentum),
            "frozen" if layer.frozen else "trainable",
            _text(layer.updates),
            _text(layer.residual_init_weight),
            _text(layer.probe_mean_gap),
            _text(layer.nonfinite_channels),
        )
        for layer in summary.layers[:MAX_LAYERS_SHOWN]
    ]
    headers = ("layer", "channels", "momentum", "mode", "updates", "initializer weight", "probe mean gap", "non-finite")
    more = len(summary.layers) - MAX_LAYERS_SHOWN
    tail = f"<p>… and {more} more layers</p>" if more > 0 else ""
    return (
        f'<div class="bn-inspect-run"><p><b>run {_text(run.name)}</b>: {" · ".join(facts)}</p>'
        f"{_table(headers, rows, 'bn-inspect-run-table')}{tail}</div>"
    )
