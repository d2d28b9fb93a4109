"""Run every bn-inspect benchmark and write bench/RESULTS.md (``make bench``).

Benchmarks: training overhead (bench.overhead), bytes on disk (bench.disk_bytes), plugin
latency (bench.plugin_latency), front end (bench.frontend), ResNet50 on CPU (bench.resnet), logging costs per
step on TensorFlow and JAX (bench.logging_costs). ``--quick`` runs each at tiny
sizes (seconds; checks that the scripts work, the figures mean nothing) and writes
bench/out/RESULTS-quick.md instead. Generated logdirs are kept in bench/out for reruns.

Run: ``python -m bench.run_all [--quick] [--only overhead,bytes] [--wait-for-load 1.5]``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import report
from bench.common import OUT_DIR, Section, cpu_seconds, load_average, machine, versions

BENCHMARKS = {
    "overhead": "bench.overhead",
    "bytes": "bench.disk_bytes",
    "plugin": "bench.plugin_latency",
    "frontend": "bench.frontend",
    "resnet": "bench.resnet",
    "logging": "bench.logging_costs",
}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def wait_for_quiet(max_load: float, timeout: float) -> None:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while load_average()[0] >= max_load and time.monotonic() < deadline:
        print(f"load {load_average()[0]:.2f} >= {max_load}: waiting", file=sys.stderr, flush=True)
        time.sleep(60)


def run(names: list[str], quick: bool, output: Path) -> Path:
    """Run the benchmarks ``names``; write ``output`` and its JSON twin; return the JSON path."""
    started = time.perf_counter()
    meta = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": "python -m bench.run_all" + (" --quick" if quick else ""),
        "machine": machine(),
        "versions": versions(),
        "load_start": load_average(),
    }
    machine_cpu, own_cpu = cpu_seconds()
    sections: list[Section] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        section = importlib.import_module(BENCHMARKS[name]).run(quick=quick)
        section.seconds = time.perf_counter() - begin
        sections.append(section)
    meta["load_end"] = load_average()
    meta["seconds"] = time.perf_counter() - started
    machine_end, own_end = cpu_seconds()
    meta["other_cores"] = max(0.0, (machine_end - machine_cpu) - (own_end - own_cpu)) / meta["seconds"]
    return report.write(sections, meta, output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the scripts, not the figures")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown file to write (default: bench/RESULTS.md, bench/out/RESULTS-quick.md with --quick)",
    )
    parser.add_argument(
        "--wait-for-load",
        type=float,
        metavar="LOAD",
        help="first wait (up to 40 min) until the 1-minute load average is below LOAD",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.wait_for_load:
        wait_for_quiet(args.wait_for_load, 40 * 60)
    output = args.output or (OUT_DIR / "RESULTS-quick.md" if args.quick else RESULTS)
    run(names, args.quick, output)
    print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
