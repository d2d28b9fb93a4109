"""Example 2 — initializers: default (zeros/ones) vs Constant(0.5), after one epoch.

Reproduces the article's second experiment (beta, gamma, moving_mean and moving_variance all
``Constant(0.5)``) and adds a third run that changes only the two moving-statistics
initializers. Training mode never reads the moving statistics, so that run trains exactly
like the default one, and its moving statistics differ from the default run's by exactly
``(0.5 - initial value) * 0.99**32``: after one epoch the initializer still weighs 72%.

The article says later batches contribute less. They do not: every batch enters the moving
average with weight ``1 - momentum``; what fades is the weight of everything already in it,
the initializer included (``momentum**steps``).

The models are built as the article builds them: one after another in one process, with
Keras' automatic names and no ``keras.backend.clear_session()``, so the three runs' layers are
called ``batch_normalization``, ``batch_normalization_1``, ``batch_normalization_2`` (or further
along, after other models). bn-inspect matches them across runs (:func:`bn_inspect.align`: the
path without Keras' numbering), so ``bn-inspect compare`` and the tab compare them as one layer.

Run: ``python examples/initializers.py`` (logs into logs/initializers/<run>, with
within-epoch curves: the variables are logged after every batch).
"""

from __future__ import annotations

import os

import keras
import numpy as np

# common first: it quiets TensorFlow's start-up logging before Keras imports TensorFlow
from common import (
    BATCH_SIZE,
    LOG_ROOT,
    PROBE_SAMPLES,
    article_data,
    article_model,
    bn_values,
    fresh_log_dir,
    predict_one,
    show,
)

from bn_inspect import BatchNormInspector, stats

HALF = keras.initializers.Constant(0.5)
RUNS = {
    "default": {},
    "constant_0.5": dict(
        beta_initializer=HALF, gamma_initializer=HALF, moving_mean_initializer=HALF, moving_variance_initializer=HALF
    ),
    "moving_only_0.5": dict(moving_mean_initializer=HALF, moving_variance_initializer=HALF),
}
INITIAL = {  # run -> (beta, gamma, moving_mean, moving_variance) initial values
    "default": (0.0, 1.0, 0.0, 1.0),
    "constant_0.5": (0.5, 0.5, 0.5, 0.5),
    "moving_only_0.5": (0.0, 1.0, 0.5, 0.5),
}


def batch_weights(momentum: float, steps: int) -> np.ndarray:
    """Weight of the initializer and of batches 1..steps in the moving average after ``steps``
    updates: ``[m**t, (1-m) m**(t-1), ..., (1-m) m, (1-m)]`` (they sum to 1)."""
    k = np.arange(1, steps + 1)
    return np.concatenate([[momentum**steps], (1 - momentum) * momentum ** (steps - k)])


def main(log_root: str | os.PathLike = LOG_ROOT, scale: float = 1.0) -> dict:
    """Train each initializer variant for one epoch, print the figures, return them by run.

    ``scale`` below 1 trains on fewer samples (tests use a small one).
    """
    data, targets = article_data()
    samples = max(2 * PROBE_SAMPLES, round(len(data) * scale))
    data, targets = data[:samples], targets[:samples]
    root = fresh_log_dir(log_root, "initializers")
    figures, variables, trained = {}, {}, {}
    for name, options in RUNS.items():
        model = article_model(auto_names=True, **options)
        inspector = BatchNormInspector(
            root / name, probe_data=data[:PROBE_SAMPLES], log_every_n_batches=1, batch_size=BATCH_SIZE
        )
        model.fit(data, targets, epochs=1, batch_size=BATCH_SIZE, verbose=0, callbacks=[inspector])
        steps = int(model.optimizer.iterations.numpy())
        (bn,) = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        momentum = bn.momentum
        variables[name] = bn_values(model, bn.name)
        trained[name] = [w.numpy() for w in model.trainable_weights]
        figures[name] = {
            "steps": steps,
            "momentum": momentum,
            "prediction": predict_one(model, data[0]),
            "residual_init_weight": float(stats.residual_init_weight(momentum, steps)),
            "layer": bn.name,
        }

    show(
        f"Example 2: initializers, 1 epoch ({figures['default']['steps']} steps), prediction on data[0]",
        [
            "run",
            "BN layer",
            "beta",
            "gamma",
            "moving_mean",
            "moving_variance",
            "predict(data[0])",
            "initializer weight",
        ],
        [
            [name, f["layer"], *INITIAL[name], f"{f['prediction']:.4f}", f"{f['residual_init_weight']:.3f}"]
            for name, f in figures.items()
        ],
    )

    steps, momentum = figures["default"]["steps"], figures["default"]["momentum"]
    residual = figures["default"]["residual_init_weight"]
    rows = []
    for quantity, index in (("moving_mean", 2), ("moving_variance", 3)):
        delta = variables["moving_only_0.5"][quantity] - variables["default"][quantity]
        expected = (INITIAL["moving_only_0.5"][index] - INITIAL["default"][index]) * residual
        rows.append([quantity, f"{delta.min():+.5f}", f"{delta.max():+.5f}", f"{expected:+.5f}"])
        figures["moving_only_0.5"][f"{quantity}_delta"] = delta
    show(
        "moving_only_0.5 minus default, per channel (both trained identically: training mode never reads the moving stats)",
        ["variable", "min", "max", f"(0.5 - initial) * {momentum}**{steps}"],
        rows,
    )

    same = all(np.array_equal(a, b) for a, b in zip(trained["default"], trained["moving_only_0.5"]))
    figures["moving_only_0.5"]["trained_like_default"] = same
    gap = figures["moving_only_0.5"]["prediction"] - figures["default"]["prediction"]
    print(
        f"\nTrainable weights of moving_only_0.5 and default bitwise equal: {same}. Their predictions differ by "
        f"{gap:+.4f}\nonly because the moving statistics still hold {residual:.1%} of their initializer."
    )

    weights = batch_weights(momentum, steps)
    terms = [
        ("initializer", f"m**{steps}", weights[0]),
        ("first batch", f"(1-m) m**{steps - 1}", weights[1]),
        ("last batch", "(1-m)", weights[-1]),
    ]
    print(f"\nWhat the moving average holds after {steps} steps (momentum m = {momentum}):")
    for what, formula, value in terms:
        print(f"  {what:<12} {formula:<14} = {value:.4f}")
    print(
        f"Every batch enters with weight 1-m = {1 - momentum:.2f}; the most recent batch weighs the most.\n"
        "Later batches do not contribute less (the article's claim). What fades is everything already in\n"
        f"the average, the initializer first: half of it is gone after {stats.steps_until_residual(momentum, 0.5)} "
        f"steps, 99% after {stats.steps_until_residual(momentum, 0.01)}.\n"
        "Updates do get smaller later, but only because the moving statistics get closer to the batch "
        "statistics:\neach update is (1-m) * (batch - moving)."
    )
    return figures


if __name__ == "__main__":
    main()
