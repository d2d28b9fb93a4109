"""Where BatchNormInspector's time goes: its parts timed one by one on the overhead benchmark's CNN.

* probe, first run: building the probe and its first run, i.e. tracing and compiling both
  ``stateless_call`` passes once per fit (``tf.function`` on TensorFlow);
* probe, later runs: one training-mode + inference-mode pass on the probe batch;
* probe run eagerly: the same without ``tf.function`` (what compiling saves per run);
* variables to numpy: every BN layer's moving mean/variance, gamma, beta;
* encode + write: one epoch's summaries encoded and written to an event file;
* epoch: one training epoch of the same model without any callback.

Run: ``python -m bench.callback_costs``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import numpy as np

from bench.common import median
from bench.models import FULL, PROBE_SAMPLES, conv_bn_model


def _median_seconds(work: Callable[[], object], reps: int) -> float:
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return median(seconds)


def measure_costs(
    samples: int = 1024, batch_size: int = 64, blocks: int = 20, input_size: int = 32, reps: int = 5
) -> dict:
    """Seconds of each part (see the module docstring), medians of ``reps`` where repeatable."""
    from bn_inspect import schema
    from bn_inspect.layers import find_batchnorm_layers, variable_values
    from bn_inspect.probe import Probe
    from bn_inspect.writer import SummaryWriter

    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, input_size, input_size, 3)).astype("float32")
    y = rng.integers(0, 10, size=samples)
    model = conv_bn_model(blocks, input_size)
    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)  # traces the training step
    epoch = _median_seconds(lambda: model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0), max(1, reps // 2))
    layers = find_batchnorm_layers(model)
    start = time.perf_counter()
    probe = Probe(model, layers, x[:PROBE_SAMPLES])
    probe.run()
    first_run = time.perf_counter() - start
    probe_run = _median_seconds(probe.run, reps)
    eager = _eager_seconds(Probe(model, layers, x[:PROBE_SAMPLES]), max(1, reps // 2))
    read = _median_seconds(lambda: [variable_values(found.layer) for found in layers], reps)
    values = {found.path: variable_values(found.layer) for found in layers}
    result = probe.run()
    writer = SummaryWriter(tempfile.mkdtemp(prefix="bench-costs-"))

    def write_epoch() -> None:
        for path, named in values.items():
            for quantity, array in named.items():
                writer.add_layer(path, quantity, array)
            writer.add_layer(path, schema.PROBE_BATCH_MEAN, result.batch_mean[path])
            writer.add_layer(path, schema.PROBE_BATCH_VARIANCE, result.batch_variance[path])
            for quantity in (
                schema.UPDATES,
                schema.RESIDUAL_INIT_WEIGHT,
                schema.NONFINITE_CHANNELS,
                schema.PROBE_MEAN_GAP,
                schema.PROBE_VAR_LOG_RATIO,
            ):
                writer.add_layer(path, quantity, np.float32(0.5))
        writer.add_model(schema.OUTPUT_TRAINING, result.outputs_training)
        writer.add_model(schema.OUTPUT_INFERENCE, result.outputs_inference)
        writer.write_step(1)

    write = _median_seconds(write_epoch, reps)
    writer.close()
    return {
        "epoch": epoch,
        "steps_per_epoch": samples // batch_size,
        "probe_first_run": first_run,
        "probe_run": probe_run,
        "probe_eager": eager,
        "variables": read,
        "write": write,
    }


def _eager_seconds(probe, reps: int) -> float:
    """Median seconds of ``probe.run()`` with TensorFlow functions run eagerly."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    try:
        return _median_seconds(probe.run, reps)
    finally:
        tf.config.run_functions_eagerly(False)


def table(costs: dict) -> list[str]:
    """The parts as a markdown table, with their share of one epoch."""
    epoch = costs["epoch"]
    rows = [
        ("probe, first run (trace + compile, once per fit)", costs["probe_first_run"]),
        ("probe, later runs (per logged epoch)", costs["probe_run"]),
        ("probe run eagerly, for comparison", costs["probe_eager"]),
        ("variables to numpy (per logged epoch)", costs["variables"]),
        ("encode + write one epoch's summaries", costs["write"]),
        ("one training epoch, no callback", epoch),
    ]
    lines = ["| part | time | share of one epoch |", "|---|---|---|"]
    lines += [f"| {name} | {1000 * seconds:.1f} ms | {100 * seconds / epoch:.1f}% |" for name, seconds in rows]
    return lines


def main() -> None:
    print("\n".join(table(measure_costs(**{k: v for k, v in FULL.items() if k not in ("reps", "epochs")}))))


if __name__ == "__main__":
    main()
