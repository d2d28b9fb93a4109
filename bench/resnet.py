"""A model users train: ResNet50 at 224×224×3 (weights=None), batch 16, on CPU. Time and peak
memory of the inspector's probe (64 samples) and of population statistics on 256 reference
samples, next to one training step.

Each phase runs in this process after the previous one; its peak memory is the rise of the
process's resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) over
the resident memory before the phase. "First call" includes compiling (``tf.function`` /
``jax.jit``); the steady figure is the median of the calls after it.

Run: ``python -m bench.resnet [--quick]`` (``--quick``: the benchmarks' tiny CNN instead, to
check the script; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from bench.common import Figure, Section, median
from bench.models import conv_bn_model

# full_population: time the whole compute (every pass); otherwise one whole-model pass, times the
# passes (an upper bound; the whole compute takes hours on a shared 2-core CPU).
FULL = {
    "input": 224,
    "batch": 16,
    "probe": 64,
    "reference": 256,
    "reference_batch": 256,
    "steps": 3,
    "full_population": False,
}
QUICK = {"input": 8, "batch": 4, "probe": 8, "reference": 16, "reference_batch": 8, "steps": 2, "full_population": True}


def _progress(text: str) -> None:
    print(f"resnet: {text}", file=sys.stderr, flush=True)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(first: Callable[[], object], then: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """``(seconds of first(), median seconds of ``repeats`` calls of then(), peak memory rise MiB)``."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    first()
    first_seconds = time.perf_counter() - start
    steady = []
    for _ in range(repeats):
        start = time.perf_counter()
        then()
        steady.append(time.perf_counter() - start)
    return first_seconds, median(steady), (_status_kib("VmHWM") - before) / 1024


def build_model(quick: bool) -> keras.Model:
    if quick:
        return conv_bn_model(blocks=2, input_size=QUICK["input"])
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classes=1000)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy())
    return model


def run(quick: bool = False) -> Section:
    from bn_inspect.layers import find_batchnorm_layers
    from bn_inspect.population import PopulationStatistics
    from bn_inspect.probe import Probe

    sizes = QUICK if quick else FULL
    model = build_model(quick)
    classes = model.output_shape[-1]
    rng = np.random.default_rng(0)
    shape = (sizes["input"], sizes["input"], 3)
    x = rng.normal(size=(max(sizes["probe"], sizes["reference"], sizes["batch"]), *shape)).astype("float32")
    y = rng.integers(0, classes, size=len(x))
    layers = find_batchnorm_layers(model)
    xb, yb = x[: sizes["batch"]], y[: sizes["batch"]]

    train_step = lambda: model.train_on_batch(xb, yb)  # noqa: E731
    train = measure(train_step, train_step, sizes["steps"])
    _progress(f"training step: first {train[0]:.1f} s, steady {train[1]:.2f} s, peak +{train[2]:.0f} MiB")
    built: dict[str, object] = {}

    def build_probe() -> None:  # as on_train_begin does: build (compile) and run once
        built["probe"] = Probe(model, layers, x[: sizes["probe"]])
        built["probe"].run()

    probe = measure(build_probe, lambda: built["probe"].run(), sizes["steps"])
    _progress(f"probe: first {probe[0]:.1f} s, steady {probe[1]:.2f} s, peak +{probe[2]:.0f} MiB")

    reference = x[: sizes["reference"]]

    def build_population() -> None:  # as on_train_begin does: compile, run on the first batch
        built["population"] = PopulationStatistics(model, reference, layers=layers, batch_size=sizes["reference_batch"])

    def one_pass_over_the_data() -> None:  # the whole model's recording pass over every batch
        population = built["population"]
        variables = population._variables()
        for batch in population._data:
            population._whole.run(*variables, batch)

    passes_measured = sizes["full_population"]
    population = measure(
        build_population,
        (lambda: built["population"].compute()) if passes_measured else one_pass_over_the_data,
        1,
    )
    passes = built["population"].passes
    one_pass = population[1] if not passes_measured else population[1] / passes
    compute_seconds = population[1] if passes_measured else one_pass * passes
    _progress(
        f"population: build {population[0]:.1f} s, {'all' if passes_measured else 'one'} pass(es) {population[1]:.1f} s"
    )
    step = train[1]
    figures = [
        Figure("training step (steady)", step * 1000, "ms"),
        Figure("probe, steady (training + inference pass)", probe[1] * 1000, "ms"),
        Figure("probe / training step", probe[1] / step),
        Figure("population statistics: one pass", one_pass, "s"),
        Figure(
            "population statistics: one compute" + ("" if passes_measured else ", upper bound"),
            compute_seconds,
            "s",
            note="" if passes_measured else f"{passes} × one pass",
        ),
        Figure("population statistics / training step", compute_seconds / step),
        Figure("peak memory rise: training step", train[2], "MiB"),
        Figure("peak memory rise: probe", probe[2], "MiB"),
        Figure("peak memory rise: population statistics", population[2], "MiB"),
    ]
    model_name = "the benchmarks' 2-block CNN at 8×8 (quick)" if quick else "ResNet50, 224×224×3, weights=None"
    setup = (
        f"{model_name}, {len(layers)} BatchNormalization layers, Keras backend {keras.backend.backend()}, CPU. "
        f"Training step: `train_on_batch` on {sizes['batch']} samples (SGD), median of {sizes['steps']} after "
        f"the first. Probe: {sizes['probe']} samples, built and run once as on_train_begin does (first call, "
        f"compiling), then median of {sizes['steps']} runs as at each epoch end. Population statistics: "
        f"{sizes['reference']} reference samples in batches of {sizes['reference_batch']}, built once "
        f"(compiling, one batch) as on_train_begin does; a compute, as at each logged epoch, makes {passes} "
        "inference passes over the samples (one per trainable BN layer), each through the layers feeding "
        "the layer it fixes, so at most through the whole model: "
        + (
            "the whole compute is timed."
            if passes_measured
            else "one pass is timed (the compiled pass of compute() over every batch, run once more "
            "after the build) through the whole model, and the compute is at most that times the passes "
            "(an upper bound: the passes for early layers run only the start of the model)."
        )
        + " The callback's default reference_batch_size is 256."
    )
    details = [
        "| phase | first call | steady | peak memory rise |",
        "| --- | --- | --- | --- |",
        f"| training step (batch {sizes['batch']}) | {train[0]:.2f} s | {train[1]:.2f} s | {train[2]:.0f} MiB |",
        f"| probe ({sizes['probe']} samples) | {probe[0]:.2f} s | {probe[1]:.2f} s | {probe[2]:.0f} MiB |",
        f"| population statistics: build (compile + first batch) | {population[0]:.2f} s | | {population[2]:.0f} MiB |",
        f"| population statistics: one pass over {sizes['reference']} samples | | {one_pass:.2f} s | |",
        f"| population statistics: one compute ({passes} passes) | | {compute_seconds:.2f} s"
        f"{'' if passes_measured else ' (' + str(passes) + ' × one pass)'} | |",
    ]
    limits = [
        f"Population statistics make one inference pass over the reference data per trainable BN layer "
        f"({passes} here), each through the layers feeding the layer it fixes: up to {passes} × the inference "
        f"over {sizes['reference']} samples. With reference_every=N they run every N epochs; the callback warns "
        "once when they exceed 10% of training time, naming the N that keeps them under it."
    ]
    return Section("ResNet50 on CPU", setup, figures, details, limits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny CNN: checks the script, not the figures")
    args = parser.parse_args()
    section = run(quick=args.quick)
    print(section.setup)
    print("\n".join(section.details))
    for figure in section.figures:
        print(f"{figure.name}: {figure.formatted()}")


if __name__ == "__main__":
    main()
