"""Example 4 — fine-tuning with a frozen backbone: its BatchNormalization never adapts.

Beyond the article, the most common BatchNormalization trap. A backbone
(``Dense(32) -> BatchNormalization -> ReLU``) is pre-trained on domain A (the article's
inputs, uniform in [0, 1]), then fine-tuned on domain B (the same kind of task on shifted and
scaled inputs) twice, from the same pre-trained weights:

- ``frozen_backbone``: ``backbone.trainable = False``. In Keras 3 a non-trainable BN layer
  runs in inference mode even inside ``fit``: it normalises with the moving statistics of
  domain A, never updates them, and training and inference agree exactly.
- ``trainable_backbone``: everything trains; the BN layer normalises each batch with its own
  statistics and its moving statistics move to domain B.

Freezing is what Keras recommends for fine-tuning on little data (it keeps the pre-trained
features intact, and Keras 2's frozen BN, which still used batch statistics in training, made
training and validation disagree). The trap is what it hides: on shifted data the frozen layer
no longer normalises (its output on B is far from mean beta and scale gamma), nothing in the
loss curve says so, and the tab shows it at once: flat moving statistics, residual weight 1.
A third run, ``frozen_recalibrated``, shows the cheap fix: recompute the frozen layer's
statistics on domain B before fine-tuning.

Run: ``python examples/frozen_backbone.py`` (logs into logs/frozen/<run>).
"""

from __future__ import annotations

import os

import keras
import numpy as np

# common first: it quiets TensorFlow's start-up logging before Keras imports TensorFlow
from common import BATCH_SIZE, LOG_ROOT, PROBE_SAMPLES, SEED, bn_values, fresh_log_dir, population_stats, show

from bn_inspect import BatchNormInspector, load_logdir, schema, stats

PRETRAIN_EPOCHS = 10
FINE_TUNE_EPOCHS = 10
SHIFT, SCALE = 1.5, 3.0  # domain B inputs: SHIFT + SCALE * uniform[0, 1]


def make_domains(samples: int = 1000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inputs and targets of domain A (uniform [0, 1]) and domain B (shifted and scaled).

    Targets: the same smooth function of the inputs in both domains, plus noise.
    """
    rng = np.random.RandomState(SEED)
    direction = rng.normal(size=(10, 1)) / np.sqrt(10)
    domains = {}
    for name, (shift, scale) in {"A": (0.0, 1.0), "B": (SHIFT, SCALE)}.items():
        x = shift + scale * rng.rand(samples, 10)
        y = np.sin(2 * (x - x.mean(axis=0)) @ direction) + 0.1 * rng.normal(size=(samples, 1))
        domains[name] = (x.astype("float32"), y.astype("float32"))
    return domains


def build_model() -> tuple[keras.Model, keras.Model]:
    """``(model, backbone)``: backbone ``Dense(32) -> BN -> ReLU`` with a ``Dense(1)`` head."""
    keras.utils.set_random_seed(SEED)
    backbone = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(32, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
        ],
        name="backbone",
    )
    model = keras.Sequential([keras.Input((10,)), backbone, keras.layers.Dense(1, name="head")], name="finetune")
    return model, backbone


def _bn_output_spread(backbone: keras.Model, x: np.ndarray) -> tuple[float, float]:
    """Mean over channels of |mean| and of std of the BN layer's inference-mode output on ``x``
    (a normalising layer gives about |beta| and gamma)."""
    bn_out = keras.Model(backbone.inputs[0], backbone.get_layer("bn").output)
    out = np.asarray(bn_out(x, training=False), dtype=np.float64)
    return float(np.abs(out.mean(axis=0)).mean()), float(out.std(axis=0).mean())


def main(log_root: str | os.PathLike = LOG_ROOT, scale: float = 1.0) -> dict:
    """Pre-train once, fine-tune frozen and trainable, print the figures, return them by run.

    ``scale`` multiplies the epoch counts (tests use a small one).
    """
    domains = make_domains()
    (x_a, y_a), (x_b, y_b) = domains["A"], domains["B"]
    root = fresh_log_dir(log_root, "frozen")
    pretrain_epochs, fine_tune_epochs = (max(1, round(e * scale)) for e in (PRETRAIN_EPOCHS, FINE_TUNE_EPOCHS))

    model, backbone = build_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(
        x_a,
        y_a,
        epochs=pretrain_epochs,
        batch_size=BATCH_SIZE,
        verbose=0,
        callbacks=[
            BatchNormInspector(
                root / "pretrain", probe_data=x_a[:PROBE_SAMPLES], reference_data=x_a, batch_size=BATCH_SIZE
            )
        ],
    )
    pretrained = model.get_weights()

    figures = {}
    variants = {
        "frozen_backbone": (True, False),
        "frozen_recalibrated": (True, True),
        "trainable_backbone": (False, False),
    }
    for name, (frozen, recalibrate) in variants.items():
        model, backbone = build_model()
        model.set_weights(pretrained)
        backbone.trainable = not frozen
        if recalibrate:  # exact statistics of B, with the backbone's layers in inference mode
            for variable, value in zip(("moving_mean", "moving_variance"), population_stats(backbone, "bn", x_b)):
                getattr(backbone.get_layer("bn"), variable).assign(value.astype("float32"))
        model.compile(optimizer="adam", loss="mse")  # trainable changes take effect at compile
        start = bn_values(backbone, "bn")
        model.fit(
            x_b,
            y_b,
            epochs=fine_tune_epochs,
            batch_size=BATCH_SIZE,
            verbose=0,
            callbacks=[
                BatchNormInspector(
                    root / name, probe_data=x_b[:PROBE_SAMPLES], reference_data=x_b, batch_size=BATCH_SIZE
                )
            ],
        )
        end = bn_values(backbone, "bn")
        epsilon = backbone.get_layer("bn").epsilon
        pop_mean, pop_var = population_stats(backbone, "bn", x_b)
        mean_gap, _ = stats.layer_gaps(pop_mean, pop_var, end["moving_mean"], end["moving_variance"], epsilon)
        bn_mean, bn_std = _bn_output_spread(backbone, x_b)
        figures[name] = {
            "bn_mode_in_fit": "inference" if frozen else "training",
            "moving_mean_change": float(np.sqrt(np.mean(np.square(end["moving_mean"] - start["moving_mean"])))),
            "population_mean_gap": mean_gap,
            "variance_ratio": float(np.mean((end["moving_variance"] + epsilon) / (pop_var + epsilon))),
            "bn_output_abs_mean": bn_mean,
            "bn_output_std": bn_std,
            "loss_b": float(model.evaluate(x_b, y_b, verbose=0)),
        }

    logged = load_logdir(root)
    for name, f in figures.items():
        run = logged[name]
        f["residual_init_weight"] = float(run.layers["backbone/bn"][schema.RESIDUAL_INIT_WEIGHT].values[-1])
        f["output_gap"] = float(run.model[schema.OUTPUT_GAP].values[-1][0])

    show(
        f"Example 4: fine-tuning {fine_tune_epochs} epochs on domain B, backbone pre-trained on domain A",
        [
            "run",
            "BN mode",
            "moving mean moved",
            "residual",
            "mean off B (sd)",
            "var / B var",
            "BN out on B |mean|",
            "std",
            "train/infer gap",
            "loss on B",
        ],
        [
            [
                name,
                f["bn_mode_in_fit"],
                f"{f['moving_mean_change']:.3f}",
                f"{f['residual_init_weight']:.3f}",
                f"{f['population_mean_gap']:.2f}",
                f"{f['variance_ratio']:.2f}",
                f"{f['bn_output_abs_mean']:.2f}",
                f"{f['bn_output_std']:.2f}",
                f"{f['output_gap']:.4f}",
                f"{f['loss_b']:.4f}",
            ]
            for name, f in figures.items()
        ],
    )
    frozen, fixed, trainable = figures.values()
    print(
        "(moving mean moved: rms change during the fit; residual: logged weight of the statistics the fit started\n"
        "with, momentum**updates; mean off / var: moving statistics vs the exact statistics of B.)\n"
        "\nfrozen_backbone kept domain A's statistics: they never moved (residual 1: no update in this fit),\n"
        "training and inference agree (gap 0), and on B the layer no longer normalises: its output has\n"
        f"|mean| {frozen['bn_output_abs_mean']:.2f} and std {frozen['bn_output_std']:.2f} per channel instead of "
        f"about |beta| and gamma.\nNothing in the loss curve says why the loss stays at {frozen['loss_b']:.3f}.\n"
        "frozen_recalibrated: the same frozen backbone with its BN statistics recomputed on B first (exact mean\n"
        f"and variance of the BN input, inference mode): loss {fixed['loss_b']:.3f}, as good as training the "
        f"whole backbone ({trainable['loss_b']:.3f})."
    )
    return figures


if __name__ == "__main__":
    main()
