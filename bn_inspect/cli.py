"""``bn-inspect``: read bn-inspect logs from the command line, without TensorFlow.

    bn-inspect summary LOGDIR [--layers]
    bn-inspect compare LOGDIR RUN_A RUN_B [RUN ...] [--epoch N] [--match auto|path|position]
    bn-inspect export LOGDIR [--format csv|parquet] [--output PATH]
    bn-inspect doctor LOGDIR [--run RUN] [--format text|json] [--match auto|path|position]

Errors (missing logdir, unknown run, no bn-inspect data, ...) print one line on stderr saying
what to do instead and exit with code 2. ``doctor`` exits with code 1 when it finds an error.

A subcommand is one function decorated with :func:`command`, which takes the parsed
arguments and returns the exit code:

    @command("name", "one-line help", LOGDIR_ARG, Arg("--flag", action="store_true"))
    def name(args: argparse.Namespace) -> int: ...
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bn_inspect import alignment as alignment_module
from bn_inspect import comparison, doctor, report, schema, storage
from bn_inspect.events import DamagedEventFileWarning
from bn_inspect.reader import RunData, load_logdir, run_directories, to_dataframe
from bn_inspect.table import format_table

EXIT_USAGE = 2
EXIT_FINDINGS = 1  # `doctor` found an error-level finding


class CLIError(Exception):
    """A user-facing error: the message says what to do; ``main`` exits with code 2."""


class Arg:
    """One ``argparse`` argument, as ``add_argument`` takes it: ``Arg("--epoch", type=int)``."""

    def __init__(self, *flags: str, **options: Any) -> None:
        self.flags, self.options = flags, options


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: tuple[Arg, ...]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *arguments: Arg) -> Callable:
    """Register the decorated ``run(args) -> exit code`` function as subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register


LOGDIR_ARG = Arg(
    "logdir",
    help="directory holding the runs (the --logdir you give TensorBoard): a path or an fsspec URL such as s3://bucket/exp",
)
MATCH_ARG = Arg(
    "--match",
    choices=list(alignment_module.MATCH_MODES),
    default="auto",
    help="how layers are matched across runs: auto (path, then name without Keras' numbering, then "
    "position among layers of equal channel count; default), path (identical paths only), position",
)


# --- loading, with the error messages -------------------------------------------------------
def load_runs(logdir: str) -> dict[str, RunData]:
    """All runs with bn-inspect data under ``logdir``; :class:`CLIError` when there are none."""
    try:
        path = storage.locate(logdir)
    except storage.StorageError as exc:
        raise CLIError(str(exc).removeprefix("bn-inspect: ")) from None
    shown = str(path)
    if not storage.exists(path):
        raise CLIError(
            f"logdir {shown!r} does not exist. Pass the parent directory of the BatchNormInspector "
            "log_dir(s), e.g. `bn-inspect summary logs` (`make examples` writes logs/)."
        )
    if not storage.is_directory(path):
        raise CLIError(f"logdir {shown!r} is a file; pass the directory that holds the runs.")
    runs = load_logdir(path)
    if not runs:
        found = sum(1 for _ in run_directories(path))
        what = f"{found} run(s) of event files but none" if found else "no event files, so no run"
        raise CLIError(
            f"logdir {shown!r} holds {what} with bn_inspect data. Train with "
            f"callbacks=[BatchNormInspector('{shown}/<run>')] first, or pass the directory that holds "
            "those runs."
        )
    return runs


def pick_run(runs: dict[str, RunData], name: str) -> RunData:
    """``runs[name]``, or a :class:`CLIError` listing the known runs."""
    if name in runs:
        return runs[name]
    close = difflib.get_close_matches(name, list(runs), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise CLIError(f"unknown run {name!r}.{hint} Known runs: {', '.join(sorted(runs))}.")


# --- summary -------------------------------------------------------------------------------
def _residual_text(summary: report.RunSummary) -> str | None:
    low, high = summary.residual_min, summary.residual_max
    if low is None or high is None:
        return None
    low_text, high_text = f"{low:#.3g}", f"{high:#.3g}"
    return low_text if low_text == high_text else f"{low_text}-{high_text}"


def _gap_text(summary: report.RunSummary) -> str | None:
    if summary.output_gap is None:
        return None
    relative = summary.output_gap_relative
    percent = f" ({100 * relative:.3g}%)" if relative is not None and math.isfinite(relative) else ""
    return f"{summary.output_gap:.4g}{percent}"


@command(
    "summary",
    "one line per run: layers, epochs, residual initializer weight, train/inference gap, frozen layers",
    LOGDIR_ARG,
    Arg("--layers", action="store_true", help="one line per layer instead of per run"),
)
def summary(args: argparse.Namespace) -> int:
    runs = load_runs(args.logdir)
    summaries = [report.summarize_run(run) for run in runs.values()]
    if args.layers:
        headers = ["run", "layer", "channels", "momentum", "updates", "residual init", "probe mean gap", "frozen"]
        rows = [
            [
                s.name,
                x.path,
                x.channels,
                x.momentum,
                x.updates,
                x.residual_init_weight,
                x.probe_mean_gap,
                "FROZEN" if x.frozen else "",
            ]
            for s in summaries
            for x in s.layers
        ]
    else:
        headers = ["run", "layers", "epochs", "residual init", "train/infer gap", "frozen layers"]
        rows = [
            [
                s.name,
                len(s.layers),
                s.last_epoch,
                _residual_text(s),
                _gap_text(s),
                f"FROZEN: {', '.join(s.frozen)}" if s.frozen else "",
            ]
            for s in summaries
        ]
    print(format_table(headers, rows))
    print(
        "\nresidual init = momentum**updates: the initializer's weight left in the moving statistics"
        + (";" if args.layers else " (min-max over layers);")
    )
    if args.layers:
        print("probe mean gap = mean |probe batch mean - moving mean| / sqrt(moving variance + eps).")
    else:
        print(
            "train/infer gap = mean |training - inference output| on the probe at the last epoch "
            "(relative to mean |inference output|)."
        )
    return 0


# --- compare -------------------------------------------------------------------------------
DISTANCE_FIELDS = ("mean_rms", "variance_rms", "mean_gap", "variance_log_ratio")


def _print_alignment(alignment: alignment_module.Alignment) -> None:
    matched = len(alignment.matched)
    print(
        f"layer alignment (--match {alignment.match}): {matched} slot(s) matched, {len(alignment.unmatched)} unmatched"
    )
    rows = comparison.alignment_rows(alignment)
    print(format_table(["slot", *alignment.runs, "matched by"], rows) if rows else "(no BatchNormalization layer)")
    for slot in alignment.unmatched:
        (run,) = slot.runs
        print(f"  unmatched: '{slot.path(run)}' of {run}: {slot.why}")


def _print_distances(runs: list[RunData], alignment: alignment_module.Alignment, epoch: int, last: int) -> None:
    print(f"\nmoving statistics at epoch {epoch} (last common: {last}), each run vs the slot's first run")
    rows = []
    for slot, distances in comparison.moving_stats_distances(runs, alignment, epoch).items():
        for run, distance in distances.items():
            if isinstance(distance, str):
                rows.append([slot, run, None, None, None, None, distance])
            else:
                rows.append([slot, run, *(distance[key] for key in DISTANCE_FIELDS), ""])
    headers = ["slot", "run", "mean rms diff", "variance rms diff", "mean gap (sd)", "variance log ratio", "note"]
    if rows:
        print(format_table(headers, rows))
    else:
        hint = " (try --match auto)" if alignment.match == "path" else ""
        print(f"(no slot holds layers of two runs{hint})")
    print(
        "\nmean gap = mean |mean_b - mean_a| / sqrt(pooled variance + eps); "
        "variance log ratio = mean |log(var_b / var_a)| (0 = same scale)."
    )


@command(
    "compare",
    "align the BN layers of runs, then their configuration diff and distance of the moving statistics per layer",
    LOGDIR_ARG,
    Arg("runs", nargs="+", metavar="RUN", help="two or more run names, as `summary` lists them"),
    Arg("--epoch", type=int, help="epoch step to compare (0 = initial state); default: last common one"),
    MATCH_ARG,
)
def compare(args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        raise CLIError(f"compare needs two or more runs; got {len(args.runs)}: pass RUN_A RUN_B [RUN ...].")
    loaded = load_runs(args.logdir)
    runs = [pick_run(loaded, name) for name in dict.fromkeys(args.runs)]
    names = [run.name for run in runs]
    common = comparison.common_epochs(runs)
    if not common:
        raise CLIError(f"runs {', '.join(names)} share no logged epoch; nothing to compare.")
    epoch = common[-1] if args.epoch is None else args.epoch
    if epoch not in common:
        raise CLIError(f"epoch {epoch} is not logged by every run; pass --epoch with one of {common}.")
    alignment = alignment_module.align(runs, args.match)

    _print_alignment(alignment)
    print(f"\nconfiguration: {' vs '.join(names)}")
    diff = comparison.config_diff(runs, alignment)
    print(format_table(["scope", "field", *names], diff) if diff else "(identical)")
    _print_distances(runs, alignment, epoch, common[-1])
    return 0


# --- export --------------------------------------------------------------------------------
def _require(module: str, purpose: str, fix: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise CLIError(f"{purpose} needs {module}, which cannot be imported ({exc}): {fix}") from exc


@command(
    "export",
    "write every per-layer, per-epoch value as a long table (run, layer, quantity, step, channel, value)",
    LOGDIR_ARG,
    Arg("--format", choices=["csv", "parquet"], default="csv", help="output format (default: csv)"),
    Arg("--output", "-o", help="output file; default: standard output for csv, bn_inspect.parquet for parquet"),
)
def export(args: argparse.Namespace) -> int:
    output = args.output or ("-" if args.format == "csv" else "bn_inspect.parquet")
    if args.format == "parquet" and output == "-":
        raise CLIError("parquet is binary, not for standard output: pass --output FILE.parquet.")
    runs = load_runs(args.logdir)
    _require("pandas", "export", "pip install pandas (or pip install 'bn-inspect[pandas]').")
    if args.format == "parquet":
        _require("pyarrow", "--format parquet", "pip install pyarrow, or use --format csv.")
    frame = to_dataframe(runs)
    try:
        if args.format == "csv":
            frame.to_csv(sys.stdout if output == "-" else output, index=False)
        else:
            frame.to_parquet(output, index=False)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CLIError(f"cannot write {output!r} ({exc.strerror or exc}); pass a writable --output path.") from exc
    if output != "-":
        print(f"wrote {len(frame)} rows ({len(runs)} runs) to {output}", file=sys.stderr)
    return 0


# --- doctor --------------------------------------------------------------------------------
@command(
    "doctor",
    "what is wrong with each run's BN layers and the fix, most severe first; exit code 1 on any error",
    LOGDIR_ARG,
    Arg(
        "--run",
        action="append",
        dest="runs",
        metavar="RUN",
        help="check only this run (repeatable); default: every run",
    ),
    Arg("--format", choices=["text", "json"], default="text", help="output format (default: text)"),
    MATCH_ARG,
)
def diagnose(args: argparse.Namespace) -> int:
    runs = load_runs(args.logdir)
    if args.runs:
        runs = {name: pick_run(runs, name) for name in args.runs}
    findings = doctor.diagnose(runs)
    groups = doctor.group_findings(findings, alignment_module.align(runs, args.match))
    code = EXIT_FINDINGS if any(f.severity == doctor.ERROR for f in findings) else 0
    if args.format == "json":
        answer = {
            "runs": list(runs),
            "counts": doctor.counts(findings),
            "exit_code": code,
            "findings": [finding.to_dict() for finding in findings],
            "groups": [group.to_dict() for group in groups],
        }
        print(json.dumps(answer, indent=2, allow_nan=False))
    else:
        print(doctor.format_report(findings, list(runs), groups))
    return code


# --- entry point ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``bn-inspect`` parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="bn-inspect",
        description=f"Read {schema.PLUGIN_NAME} logs written by BatchNormInspector (no TensorFlow needed).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for cmd in COMMANDS.values():
        sub = subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for arg in cmd.arguments:
            sub.add_argument(*arg.flags, **arg.options)
        sub.set_defaults(run=cmd.run)
    return parser


def _show_warning(show: Callable) -> Callable:
    """``warnings.showwarning`` that prints damaged-file warnings as one plain stderr line."""

    def shown(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DamagedEventFileWarning):
            print(f"bn-inspect: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return shown


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bn-inspect`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Example:
        >>> main(["summary", "no/such/dir"])  # doctest: +SKIP
        bn-inspect: error: logdir 'no/such/dir' does not exist. ...
        2
    """
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(warnings.showwarning)
            return args.run(args)
    except CLIError as exc:
        print(f"bn-inspect: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `bn-inspect export logs | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
