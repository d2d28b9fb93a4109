"""Example 3 — training=True vs training=False, the article's way and the right way.

The article calls ``model(sample, training=True)`` on ONE sample, then ``model.predict``.
That call is degenerate twice over: the batch variance of one sample is 0, so every BN
output equals beta (the output is the same for any input), and a training-mode call
updates the moving statistics, so the ``predict`` after it no longer sees the trained model.

The right way compares both modes on a proper batch without changing any state:
``model.stateless_call`` (which is what BatchNormInspector's probe does every epoch).

Run: ``python examples/modes.py`` (logs into logs/modes/probe_64 and logs/modes/probe_1: the
same training seen through a 64-sample probe and through the article's 1-sample one).
"""

from __future__ import annotations

import os
import warnings

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

from bn_inspect import BatchNormInspector, BatchNormInspectorWarning, load_logdir, schema, stats

EPOCHS = 10


def _norm(values: np.ndarray) -> str:
    return f"{np.linalg.norm(values):.6f}"


def main(log_root: str | os.PathLike = LOG_ROOT, scale: float = 1.0) -> dict:
    """Train the article's model, show both ways of comparing the modes, return the figures.

    ``scale`` multiplies the epoch count (tests use a small one).
    """
    data, targets = article_data()
    root = fresh_log_dir(log_root, "modes")
    model = article_model()
    layer, head = model.get_layer("bn"), model.get_layer("head")
    probe = data[:PROBE_SAMPLES]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchNormInspectorWarning)
        model.fit(
            data,
            targets,
            epochs=max(1, round(EPOCHS * scale)),
            batch_size=BATCH_SIZE,
            verbose=0,
            callbacks=[
                BatchNormInspector(root / "probe_64", probe_data=probe, batch_size=BATCH_SIZE),
                BatchNormInspector(root / "probe_1", probe_data=data[:1], batch_size=BATCH_SIZE),
            ],
        )
    inspector_warnings = [str(w.message) for w in caught if issubclass(w.category, BatchNormInspectorWarning)]

    # --- the article's way: one sample in training mode, then predict ------------------------
    before = bn_values(model, "bn")
    prediction_before = predict_one(model, data[0])
    single = float(np.asarray(model(data[:1], training=True))[0, 0])  # updates the moving stats
    after = bn_values(model, "bn")
    prediction_after = predict_one(model, data[0])  # what the article prints as inference output
    single_other = float(np.asarray(model(data[1:2], training=True))[0, 0])
    beta_through_head = float(before["beta"] @ head.kernel.numpy()[:, 0] + head.bias.numpy()[0])
    features = data[:1] @ model.get_layer("dense").kernel.numpy() + model.get_layer("dense").bias.numpy()
    expected_mean = layer.momentum * before["moving_mean"] + (1 - layer.momentum) * features[0]
    expected_variance = layer.momentum * before["moving_variance"]  # + (1 - m) * 0
    for name in ("moving_mean", "moving_variance"):  # undo both calls
        getattr(layer, name).assign(before[name].astype("float32"))

    show(
        "Example 3a: the article's call model(data[:1], training=True), then predict(data[:1])",
        ["what", "output"],
        [
            ["model(data[:1], training=True)", f"{single:.6f}"],
            ["beta through the head: head(beta)", f"{beta_through_head:.6f}"],
            ["model(data[1:2], training=True)", f"{single_other:.6f}"],
            ["predict(data[:1]) before that call", f"{prediction_before:.6f}"],
            ["predict(data[:1]) after that call", f"{prediction_after:.6f}"],
        ],
    )
    show(
        "The training-mode call changed the moving statistics (a training step on that one sample):",
        ["variable", "norm before", "norm after", "max |after - (m*before + (1-m)*sample stat)|"],
        [
            [
                "moving_mean",
                _norm(before["moving_mean"]),
                _norm(after["moving_mean"]),
                f"{np.abs(after['moving_mean'] - expected_mean).max():.1e}",
            ],
            [
                "moving_variance",
                _norm(before["moving_variance"]),
                _norm(after["moving_variance"]),
                f"{np.abs(after['moving_variance'] - expected_variance).max():.1e}",
            ],
        ],
    )
    print("One sample has variance 0: BN outputs gamma * 0 / sqrt(0 + eps) + beta = beta for ANY input.")

    # --- the right way: both modes on a 64-sample batch, nothing changes -----------------------
    snapshot = [v.numpy().copy() for v in model.variables]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    training_out, _ = model.stateless_call(trainable, non_trainable, probe, training=True)
    inference_out, _ = model.stateless_call(trainable, non_trainable, probe, training=False)
    training_out, inference_out = np.asarray(training_out), np.asarray(inference_out)
    unchanged = all(np.array_equal(v.numpy(), s) for v, s in zip(model.variables, snapshot))
    gap = stats.output_gap(training_out, inference_out)
    logged = load_logdir(root)
    logged_gap = float(logged["probe_64"].model[schema.OUTPUT_GAP].values[-1][0])
    logged_single = float(logged["probe_1"].model[schema.OUTPUT_TRAINING].values[-1][0, 0])

    show(
        f"Example 3b: both modes on the same {PROBE_SAMPLES}-sample batch with model.stateless_call",
        ["sample", "training mode", "inference mode"],
        [[i, f"{training_out[i, 0]:.4f}", f"{inference_out[i, 0]:.4f}"] for i in range(3)],
    )
    print(
        f"mean |training - inference| = {gap[0]:.4f} ({gap[2]:.1%} of mean |inference|), max {gap[1]:.4f}\n"
        f"variables unchanged (bitwise): {unchanged}\n"
        f"BatchNormInspector logged the same gap at the last epoch (logs/modes/probe_64): {logged_gap:.4f}\n"
        "\nThe 1-sample probe (logs/modes/probe_1) made the inspector warn:\n  "
        + "\n  ".join(m for m in inspector_warnings if "1 sample" in m)
        + f"\nand its logged training-mode output is {logged_single:.6f}, head(beta) again."
    )
    return {
        "single_sample_output": single,
        "single_sample_output_other": single_other,
        "moving_stats_before": before,
        "moving_stats_after": after,
        "sample_features": features[0],
        "output_gap": gap,
        "logged_output_gap": logged_gap,
        "unchanged": unchanged,
        "warnings": inspector_warnings,
        "model": model,
    }


if __name__ == "__main__":
    main()
