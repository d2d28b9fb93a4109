"""Smoke tests of examples/: each runs at reduced size into a temporary log root; the logs it
wrote and the figures it prints are checked against numpy on the models' own weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bn_inspect import align, load_logdir, schema

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import common
import epochs
import frozen_backbone
import initializers
import modes

STEPS_PER_EPOCH = 32  # 1000 samples, batch 32 (the last batch holds 8)


def _layer(log_root: Path, example: str, run: str, layer: str = "bn") -> dict:
    return load_logdir(log_root / example)[run].layers[layer]


def test_epochs(tmp_path, capsys):
    figures = epochs.main(tmp_path, scale=0.04)  # 1 vs 2 epochs
    assert "Example 1" in capsys.readouterr().out
    assert sorted(load_logdir(tmp_path / "epochs")) == ["1", "2"]
    for run, count in (("1", 1), ("2", 2)):
        bn = _layer(tmp_path, "epochs", run)
        assert bn[schema.MOVING_MEAN].steps.tolist() == list(range(count + 1))
        np.testing.assert_allclose(
            bn[schema.RESIDUAL_INIT_WEIGHT].values[-1], 0.99 ** (STEPS_PER_EPOCH * count), rtol=1e-5
        )
        # the example's population statistics (Keras feature model + numpy) and the inspector's agree
        assert figures[run]["population_logged_vs_local"] < 1e-5
    # same seed: the 2-epoch run passes through the 1-epoch run's state
    np.testing.assert_array_equal(
        _layer(tmp_path, "epochs", "2")[schema.MOVING_MEAN].values[1],
        _layer(tmp_path, "epochs", "1")[schema.MOVING_MEAN].values[1],
    )


def test_initializers(tmp_path, capsys):
    figures = initializers.main(tmp_path, scale=0.1)  # 128 samples (the least it takes): 4 steps
    assert "later batches" in capsys.readouterr().out.lower()
    runs = load_logdir(tmp_path / "initializers")
    assert sorted(runs) == ["constant_0.5", "default", "moving_only_0.5"]
    steps = figures["default"]["steps"]
    assert steps == 4
    # Built as the article builds them: automatic names, one per model, aligned by bn_inspect.align.
    layers = {run: figures[run]["layer"] for run in runs}
    assert len(set(layers.values())) == 3 and all(name.startswith("batch_normalization") for name in layers.values())
    (slot,) = align(runs).slots
    assert {run: slot.path(run) for run in runs} == layers and slot.how == "name"
    residual = runs["default"].batch_layers[layers["default"]][schema.RESIDUAL_INIT_WEIGHT]
    assert residual.steps.tolist() == list(range(1, steps + 1))  # logged after every batch
    np.testing.assert_allclose(residual.values, 0.99**residual.steps, rtol=1e-5)
    # training never reads the moving statistics: moving_only_0.5 = default + (0.5 - init) * m**t
    for quantity, initial in ((schema.MOVING_MEAN, 0.0), (schema.MOVING_VARIANCE, 1.0)):
        delta = (
            runs["moving_only_0.5"].layers[layers["moving_only_0.5"]][quantity].values[-1]
            - runs["default"].layers[layers["default"]][quantity].values[-1]
        )
        np.testing.assert_allclose(delta, (0.5 - initial) * 0.99**steps, atol=2e-6)
    assert figures["moving_only_0.5"]["trained_like_default"]
    weights = initializers.batch_weights(0.99, steps)
    assert weights.sum() == pytest.approx(1.0) and weights[-1] == pytest.approx(0.01)


def test_modes_single_sample_output_is_beta_through_the_head(tmp_path, capsys):
    result = modes.main(tmp_path, scale=0.1)
    out = capsys.readouterr().out
    model = result["model"]
    beta = model.get_layer("bn").beta.numpy().astype(np.float64)
    kernel, bias = (v.numpy().astype(np.float64) for v in model.get_layer("head").weights)
    expected = float(beta @ kernel[:, 0] + bias[0])
    assert result["single_sample_output"] == pytest.approx(expected, rel=1e-5)
    assert result["single_sample_output_other"] == pytest.approx(expected, rel=1e-5)
    logged = load_logdir(tmp_path / "modes")["probe_1"].model[schema.OUTPUT_TRAINING].values[-1]
    assert float(logged[0, 0]) == pytest.approx(expected, rel=1e-5)

    # the single-sample call was a training step: m * old + (1 - m) * that sample's statistics
    dense_kernel, dense_bias = (v.numpy().astype(np.float64) for v in model.get_layer("dense").weights)
    sample_features = common.article_data()[0][:1].astype(np.float64) @ dense_kernel + dense_bias
    before, after = result["moving_stats_before"], result["moving_stats_after"]
    np.testing.assert_allclose(
        after["moving_mean"], 0.99 * before["moving_mean"] + 0.01 * sample_features[0], atol=1e-6
    )
    np.testing.assert_allclose(after["moving_variance"], 0.99 * before["moving_variance"], atol=1e-6)
    # ...which the example undid; the stateless comparison changed nothing
    np.testing.assert_array_equal(model.get_layer("bn").moving_mean.numpy(), before["moving_mean"].astype(np.float32))
    # ...and the stateless comparison changed nothing: the BN variables are still those the
    # inspector logged at the end of training
    run = load_logdir(tmp_path / "modes")["probe_64"]
    for quantity in schema.VARIABLE_QUANTITIES:
        logged_values = run.layers["bn"][quantity].values[-1]
        np.testing.assert_array_equal(getattr(model.get_layer("bn"), quantity).numpy(), logged_values)
    # The output gap on the 64-sample probe, in numpy from the weights: training mode normalises
    # with the probe's batch statistics (biased variance), inference mode with the moving ones.
    layer = model.get_layer("bn")
    probe = common.article_data()[0][: common.PROBE_SAMPLES].astype(np.float64) @ dense_kernel + dense_bias
    gamma, beta, mean, variance = (
        getattr(layer, name).numpy().astype(np.float64) for name in ("gamma", "beta", "moving_mean", "moving_variance")
    )

    def head(normalised: np.ndarray) -> np.ndarray:
        return (gamma * normalised + beta) @ kernel + bias

    training = head((probe - probe.mean(0)) / np.sqrt(probe.var(0) + layer.epsilon))
    inference = head((probe - mean) / np.sqrt(variance + layer.epsilon))
    gap = np.abs(training - inference).mean()
    assert result["output_gap"][0] == pytest.approx(gap, rel=1e-4)
    assert run.model[schema.OUTPUT_GAP].values[-1][0] == pytest.approx(gap, rel=1e-4)
    assert any("1 sample" in w and "equals beta" in w for w in result["warnings"])
    assert "equals beta" in out


def test_frozen_backbone(tmp_path, capsys):
    figures = frozen_backbone.main(tmp_path, scale=0.1)  # 1 epoch each
    assert "Example 4" in capsys.readouterr().out
    runs = load_logdir(tmp_path / "frozen")
    assert sorted(runs) == ["frozen_backbone", "frozen_recalibrated", "pretrain", "trainable_backbone"]
    frozen = runs["frozen_backbone"].layers["backbone/bn"]
    pretrained_end = runs["pretrain"].layers["backbone/bn"][schema.MOVING_MEAN].values[-1]
    np.testing.assert_array_equal(
        frozen[schema.MOVING_MEAN].values, np.broadcast_to(pretrained_end, frozen[schema.MOVING_MEAN].values.shape)
    )
    np.testing.assert_array_equal(frozen[schema.RESIDUAL_INIT_WEIGHT].values, 1.0)
    assert np.isnan(frozen[schema.PROBE_BATCH_MEAN].values).all()  # a frozen layer uses no batch statistics
    np.testing.assert_array_equal(runs["frozen_backbone"].model[schema.OUTPUT_GAP].values, 0.0)
    assert runs["frozen_backbone"].config["layers"][0]["trainable"] is False

    trainable = runs["trainable_backbone"].layers["backbone/bn"]
    assert np.abs(trainable[schema.MOVING_MEAN].values[-1] - pretrained_end).max() > 0.1
    recalibrated = runs["frozen_recalibrated"].layers["backbone/bn"]
    np.testing.assert_allclose(
        recalibrated[schema.MOVING_MEAN].values[0], recalibrated[schema.POPULATION_MEAN].values[0], atol=1e-4
    )
    assert (
        figures["frozen_backbone"]["population_mean_gap"] > 10 * figures["frozen_recalibrated"]["population_mean_gap"]
    )
