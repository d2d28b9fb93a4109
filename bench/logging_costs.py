"""What logging BN statistics costs per logged step and per fit, on TensorFlow and JAX (issue 20).

Each backend runs in its own process (``KERAS_BACKEND``); every ratio is taken within one
process and run:

* logged step: time inside ``on_train_batch_end`` of a ``log_every_n_batches=1`` fit of 20 ×
  (Dense(64) → BatchNormalization → ReLU), i.e. 20 BN layers × 64 channels (median per logged
  step), beside what reading the variables one by one and in one compiled call costs;
* the issue's model, 10 × (Dense(64) → BN → ReLU), 16,000 samples, batch 32, one epoch, fresh
  model per fit, conditions interleaved and shuffled per repetition: no callback, no callback
  again (the A/A control), the inspector with ``probe_data=x[:64]`` at epoch ends only, and
  with ``log_every_n_batches`` 10 and 1; wall clock and hook time as ratios to no callback;
* the probe's one-time trace + compile against its later runs;
* population statistics over 1,024 reference samples on the 20-block CNN of
  :mod:`bench.models`: whole-model passes (as before) against partial passes, after one
  warm-up computation each (which compiles).

Run: ``python -m bench.logging_costs [--quick]`` (prints the section); ``bench.run_all`` adds it
to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench.common import Figure, Section, at_most, median

BACKENDS = ("tensorflow", "jax")
CONDITIONS = ("none", "none-again", "epoch-ends", "every-10", "every-1")
QUICK_CONDITIONS = ("none", "every-10", "every-1")
FULL = {
    "step_blocks": 20,
    "step_samples": 8192,
    "samples": 16000,
    "issue_blocks": 10,
    "reps": 3,
    "cnn_blocks": 20,
    "cnn_input": 32,
    "reference": 1024,
    "population_reps": 3,
    "conditions": CONDITIONS,
}
QUICK = {
    "step_blocks": 20,
    "step_samples": 2560,  # 80 steps: the steady state starts after EAGER_FETCHES
    "samples": 256,
    "issue_blocks": 2,
    "reps": 1,
    "cnn_blocks": 2,
    "cnn_input": 8,
    "reference": 64,
    "population_reps": 1,
    "conditions": QUICK_CONDITIONS,
}
GOALS = {"step_ms": 1.0, "every-1": 1.25, "every-10": 1.05, "population": 0.5}
MARK = "LOGGING-COSTS-JSON "


def _mlp(blocks: int, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    for _ in range(blocks):
        layers += [keras.layers.Dense(64), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    model = keras.Sequential([*layers, keras.layers.Dense(1)])
    model.compile("adam", "mse")
    return model


def _data(samples: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, 64)).astype("float32")
    return x, (x[:, :8].sum(axis=1, keepdims=True) > 0).astype("float32")


def _median_ms(work, reps: int) -> float:
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return 1000 * median(seconds)


def logged_step(sizes: dict) -> dict:
    """Per logged step: hook time in steady state (median, once the transfer is traced), the
    mean over all the fit's hooks, and the variables read one by one / in one call."""
    from bench.overhead import HookTimer
    from bn_inspect import BatchNormInspector
    from bn_inspect.layers import find_batchnorm_layers, variable_values
    from bn_inspect.transfer import EAGER_FETCHES, VariableTransfer

    x, y = _data(sizes["step_samples"])
    model = _mlp(sizes["step_blocks"])
    inspector = BatchNormInspector(tempfile.mkdtemp(prefix="bench-step-"), log_every_n_batches=1)
    hook, seconds = inspector.on_train_batch_begin, []  # within-epoch logging reads there

    def timed(batch, logs=None):
        start = time.perf_counter()
        hook(batch, logs)
        seconds.append(time.perf_counter() - start)

    inspector.on_train_batch_begin = timed
    timer = HookTimer(inspector)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[timer])
    # seconds[b] is batch b's hook: batch 0 logs nothing, step 0's epoch state was fetch 1, so
    # batches 1 .. EAGER_FETCHES - 1 fetch eagerly and batch EAGER_FETCHES traces (TensorFlow).
    steady = seconds[EAGER_FETCHES + 1 :]
    layers = find_batchnorm_layers(model)
    transfer = VariableTransfer(model, layers)
    for _ in range(EAGER_FETCHES + 1):
        transfer.fetch()
    return {
        "layers": len(layers),
        "eager_fetches": EAGER_FETCHES,
        "step_ms": 1000 * median(steady),
        "steady_steps": len(steady),
        "eager_ms": 1000 * median(seconds[1:EAGER_FETCHES]),
        "step_mean_ms": 1000 * timer.seconds / (len(seconds) - 1),
        "logged_steps": len(seconds) - 1,
        "one_by_one_ms": _median_ms(lambda: [variable_values(f.layer) for f in layers], 30),
        "one_call_ms": _median_ms(transfer.fetch, 100),
    }


def _issue_fit(condition: str, x, y, blocks: int) -> tuple[float, float]:
    """Wall seconds of one fit under ``condition`` and seconds inside the inspector's hooks."""
    from bench.overhead import HookTimer
    from bn_inspect import BatchNormInspector

    model = _mlp(blocks)
    timer = None
    if condition not in ("none", "none-again"):
        every = {"epoch-ends": None, "every-10": 10, "every-1": 1}[condition]
        inspector = BatchNormInspector(
            tempfile.mkdtemp(prefix=f"bench-{condition}-"), probe_data=x[:64], log_every_n_batches=every
        )
        timer = HookTimer(inspector)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[timer] if timer else [])
        return time.perf_counter() - start, timer.seconds if timer else 0.0


def issue_model(sizes: dict) -> dict:
    """Per condition: median wall ratio and hook ratio to the no-callback fit of the same repetition."""
    x, y = _data(sizes["samples"])
    _issue_fit("none", x, y, sizes["issue_blocks"])  # warms the process (imports, first trace)
    conditions = sizes["conditions"]
    order, ratios = list(conditions), {c: {"wall": [], "hooks": [], "seconds": []} for c in conditions}
    for rep in range(sizes["reps"]):
        random.Random(rep).shuffle(order)
        fits = {c: _issue_fit(c, x, y, sizes["issue_blocks"]) for c in order}
        base = fits["none"][0]
        for condition, (wall, hooks) in fits.items():
            ratios[condition]["wall"].append(wall / base)
            ratios[condition]["hooks"].append(1 + hooks / base)
            ratios[condition]["seconds"].append(wall)
    return {c: {k: median(v) for k, v in r.items()} for c, r in ratios.items()}


def probe_compile(sizes: dict) -> dict:
    """The probe on the issue's model: an eager run, its one trace + compile (the first run after
    the eager ones), and a compiled run (after one probe in this process warmed the op caches)."""
    from bn_inspect.layers import find_batchnorm_layers
    from bn_inspect.probe import EAGER_RUNS, Probe

    x, y = _data(2048)
    model = _mlp(sizes["issue_blocks"])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    layers = find_batchnorm_layers(model)
    Probe(model, layers, x[:64]).run()  # warms this process's op caches, as an earlier fit would
    probe = Probe(model, layers, x[:64])
    gamma = model.get_layer(layers[0].path).gamma

    def run_on_a_new_state() -> None:  # same values, new arrays: JAX would reuse an unchanged state's run
        gamma.assign(gamma * 1.0)
        probe.run()

    eager = [_median_ms(run_on_a_new_state, 1) for _ in range(EAGER_RUNS)]
    first = _median_ms(run_on_a_new_state, 1)
    return {
        "eager_runs": EAGER_RUNS,
        "eager_ms": median(eager),
        "first_ms": first,
        "later_ms": _median_ms(run_on_a_new_state, 20),
    }


def population(sizes: dict) -> dict:
    """Seconds of one population-statistics computation, whole-model and partial passes: after a
    warm-up computation each (which compiles), ``population_reps`` computations of each,
    alternating, so a change in the machine's load reaches both."""
    import numpy as np

    from bench.models import conv_bn_model
    from bn_inspect.population import PopulationStatistics

    model = conv_bn_model(sizes["cnn_blocks"], sizes["cnn_input"])
    x = np.random.default_rng(0).normal(size=(sizes["reference"], sizes["cnn_input"], sizes["cnn_input"], 3))
    result, statistics, seconds = {}, {}, {"whole": [], "partial": []}
    for name, partial in (("whole", False), ("partial", True)):
        statistics[name] = PopulationStatistics(model, x.astype("float32"), batch_size=256, partial_passes=partial)
        start = time.perf_counter()
        statistics[name].compute()
        result[f"{name}_first_s"] = time.perf_counter() - start
        result["passes"] = statistics[name].passes
    for rep in range(sizes["population_reps"]):
        for name in ("whole", "partial") if rep % 2 == 0 else ("partial", "whole"):
            start = time.perf_counter()
            statistics[name].compute()
            seconds[name].append(time.perf_counter() - start)
    result.update({f"{name}_s": median(values) for name, values in seconds.items()})
    return result


def worker(quick: bool, reps: int | None = None) -> dict:
    """Every measurement on the backend of this process."""
    sizes = dict(QUICK if quick else FULL, **({"reps": reps} if reps else {}))
    return {
        "step": logged_step(sizes),
        "issue": issue_model(sizes),
        "probe": probe_compile(sizes),
        "population": population(sizes),
    }


def measure(quick: bool, reps: int | None = None) -> dict:
    """Run :func:`worker` once per backend, each in its own process."""
    results = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, "-m", "bench.logging_costs", "--worker"] + (["--quick"] if quick else [])
        command += ["--reps", str(reps)] if reps else []
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
        if done.returncode != 0:
            raise RuntimeError(f"{backend} worker failed:\n{done.stderr[-3000:]}")
        line = next(line for line in done.stdout.splitlines() if line.startswith(MARK))
        results[backend] = json.loads(line[len(MARK) :])
    return results


def section(results: dict, quick: bool, reps: int | None = None) -> Section:
    """The measurements as a RESULTS.md section."""
    figures: list[Figure] = []
    details = ["| backend | condition | fit wall s | wall ratio | from hook time |", "|---|---|---|---|---|"]
    for backend, r in results.items():
        step, issue, pop = r["step"], r["issue"], r["population"]
        figures.append(
            at_most(
                f"{backend}: logged step, {step['layers']} BN × 64 channels (hook time)",
                step["step_ms"],
                GOALS["step_ms"],
                "ms",
                f"median of {step['steady_steps']} steps once traced; the first {step['eager_fetches']} "
                f"{step['eager_ms']:.2f} ms; all hooks of the fit / logged steps {step['step_mean_ms']:.2f} ms",
            )
        )
        for condition in ("every-1", "every-10"):
            c = issue[condition]
            figures.append(
                at_most(
                    f"{backend}: issue model, log_every_n_batches={condition[6:]} / no callback",
                    c["wall"],
                    GOALS[condition],
                    note=f"from hook time: {c['hooks']:.3f}",
                )
            )
        if "epoch-ends" in issue:
            added = issue["every-10"]["hooks"] - issue["epoch-ends"]["hooks"]
            figures.append(
                Figure(
                    f"{backend}: what log_every_n_batches=10 adds to epoch-end logging (hook time / no-callback fit)",
                    added,
                    "Δ",
                    note=f"epoch ends alone (the probe's runs, the transfers): {issue['epoch-ends']['hooks'] - 1:.3f}",
                )
            )
        figures.append(
            at_most(
                f"{backend}: population statistics, partial / whole-model passes",
                pop["partial_s"] / pop["whole_s"],
                GOALS["population"],
                note=f"{pop['partial_s']:.2f} s vs {pop['whole_s']:.2f} s, {pop['passes']} passes",
            )
        )
        figures.append(
            Figure(
                f"{backend}: probe trace + compile (once per fit, after {r['probe']['eager_runs']} eager runs)",
                r["probe"]["first_ms"],
                "ms",
                note=f"an eager run {r['probe']['eager_ms']:.1f} ms, a compiled run {r['probe']['later_ms']:.1f} ms",
            )
        )
        for condition in issue:
            c = issue[condition]
            details.append(f"| {backend} | {condition} | {c['seconds']:.2f} | {c['wall']:.3f} | {c['hooks']:.3f} |")
    details += [
        "",
        "| backend | variables one by one | in one compiled call | population first (compile) whole / partial |",
        "|---|---|---|---|",
    ]
    for backend, r in results.items():
        s, p = r["step"], r["population"]
        details.append(
            f"| {backend} | {s['one_by_one_ms']:.2f} ms | {s['one_call_ms']:.2f} ms | "
            f"{p['whole_first_s']:.2f} s / {p['partial_first_s']:.2f} s |"
        )
    sizes = dict(QUICK if quick else FULL, **({"reps": reps} if reps else {}))
    setup = (
        f"`python -m bench.logging_costs{' --quick' if quick else ''}`, TensorFlow and JAX each in its own "
        f"process. Issue model: {sizes['issue_blocks']} × (Dense(64) → BN → ReLU), {sizes['samples']} samples, batch 32, one epoch, "
        f"{sizes['reps']} interleaved repetition(s), the inspector with probe_data=x[:64]; ratios are medians of "
        'fit / the no-callback fit of the same repetition, "from hook time" 1 + time inside the inspector\'s '
        f"hooks / that fit. Population statistics: {sizes['reference']} reference samples on the "
        f"{sizes['cnn_blocks']}-block CNN of bench/models.py, median of {sizes['population_reps']} computations of each "
        "(alternating) after a warm-up one."
    )
    return Section("Logging costs per step (issue 20)", setup, figures, details)


def run(quick: bool = False, reps: int | None = None) -> Section:
    """This benchmark as a RESULTS.md section (used by :mod:`bench.run_all`)."""
    return section(measure(quick, reps), quick, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the figures")
    parser.add_argument("--worker", action="store_true", help="measure on this process's backend, print JSON")
    parser.add_argument("--reps", type=int, help="repetitions of the issue model's fits (default 3, quick 1)")
    args = parser.parse_args()
    if args.worker:
        print(MARK + json.dumps(worker(args.quick, args.reps)), flush=True)
        return
    from bench.report import _figure_rows

    result = run(args.quick, args.reps)
    print("\n".join([f"## {result.title}", "", result.setup, "", *_figure_rows([result]), "", *result.details]))


if __name__ == "__main__":
    main()
