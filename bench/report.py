"""Write the benchmark results as markdown (bench/RESULTS.md) and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import OUT_DIR, Section

QUIET_LOAD = 1.5
QUIET_OTHER_CORES = 0.5


def _figure_rows(sections: list[Section]) -> list[str]:
    lines = ["| figure | value | goal | verdict | note |", "|---|---|---|---|---|"]
    for section in sections:
        for f in section.figures:
            lines.append(f"| {f.name} | {f.formatted()} | {f.goal or '—'} | {f.verdict or '—'} | {f.note} |")
    return lines


def markdown(sections: list[Section], meta: dict) -> str:
    """RESULTS.md: machine, versions, load, a summary of every figure, then each benchmark."""
    load_start, load_end = meta["load_start"], meta["load_end"]
    lines = [
        "# bn-inspect benchmarks",
        "",
        f"Measured {meta['date']} with `{meta['command']}` ({meta['seconds'] / 60:.0f} min). Every ratio is "
        "measured side by side in the same run; wall-clock figures are medians of interleaved repetitions.",
        "",
        f"- Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores, {meta['machine']['memory']} RAM, "
        f"{meta['machine']['os']}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in meta["versions"].items()),
        f"- Load average (1/5/15 min): {' / '.join(f'{v:.2f}' for v in load_start)} at start, "
        f"{' / '.join(f'{v:.2f}' for v in load_end)} at end (the benchmarks' own work included); other processes "
        f"used {meta['other_cores']:.2f} cores on average during the run",
    ]
    if load_start[0] > QUIET_LOAD or meta["other_cores"] > QUIET_OTHER_CORES:
        lines.append(
            f"- **The machine was not quiet** (1-minute load above {QUIET_LOAD} at start, or other processes using "
            f"more than {QUIET_OTHER_CORES} core): other work shared the CPU, so absolute times are inflated and "
            "ratios noisier than on an idle machine."
        )
    lines += ["", "## Summary", "", *_figure_rows(sections)]
    for section in sections:
        lines += ["", f"## {section.title}", "", section.setup, "", *_figure_rows([section]), ""]
        lines += section.details
        if section.limits:
            lines += ["", "### What limits it", ""]
            for paragraph in section.limits:
                lines += [paragraph, ""]
    return "\n".join(lines).rstrip() + "\n"


def write(sections: list[Section], meta: dict, path: Path) -> Path:
    """Write ``path`` (markdown) and the same as JSON under ``bench/out``; returns the latter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(sections, meta))
    data = {"meta": meta, "sections": [s.to_json() for s in sections]}
    json_path = OUT_DIR / f"{path.stem}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1))
    return json_path
