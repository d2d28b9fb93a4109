"""recalibrate: only the moving statistics change, and inference then computes what a numpy
re-implementation of the network with those statistics computes."""

import importlib.util
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from bn_models import MODEL_BUILDERS, make_data, mlp_weights, numpy_mlp_forward, snapshot
from import_blocker import check, run_python
from population_helpers import assert_population_close, numpy_population, randomise_bn

from bn_inspect import population_statistics, recalibrate


def _trained(builder: str, seed: int = 0) -> tuple[keras.Model, np.ndarray]:
    """A model with non-default BN variables and built optimizer state (cheaper than a fit)."""
    keras.utils.set_random_seed(seed)
    model = MODEL_BUILDERS[builder]()
    randomise_bn(model, seed + 1)
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)
    return model, make_data(96, seed=seed)[0]


def _moving_stat_positions(model: keras.Model) -> set[int]:
    names = {"moving_mean", "moving_variance"}
    return {i for i, v in enumerate(model.variables) if v.path.split("/")[-1] in names}


@pytest.mark.parametrize("builder", ["sequential", "nested", "subclassed"])
def test_only_moving_statistics_change_and_inference_matches_numpy(builder):
    model, x = _trained(builder)
    before = snapshot(model)
    report = recalibrate(model, x, batch_size=40, progress=False)
    after = snapshot(model)
    moving = _moving_stat_positions(model)
    assert len(moving) == 4 and len(before) == len(after) > len(model.variables)  # optimizer state included
    for i, (a, b) in enumerate(zip(before, after)):
        assert (a.tobytes() != b.tobytes()) == (i in moving), model.variables[i].path if i < len(model.variables) else i
    weights = mlp_weights(model)
    expected = numpy_population(weights, x)  # the convention, computed in numpy
    for path, layer in report.items():
        name = path.split("/")[-1]
        assert layer.updated and layer.count == len(x)
        np.testing.assert_array_equal(weights[name]["moving_mean"], layer.new_mean)
        np.testing.assert_array_equal(weights[name]["moving_variance"], layer.new_variance)
        mean, variance = expected[name]
        np.testing.assert_allclose(layer.new_variance, variance, rtol=1e-5)
        np.testing.assert_allclose(layer.new_mean, mean, rtol=1e-5, atol=1e-5 * np.sqrt(variance).max())
    outputs, bn_inputs = numpy_mlp_forward(weights, x, training=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), outputs, rtol=1e-5, atol=1e-5)
    for name, h in bn_inputs.items():  # the fixed point: each layer's inference input has its statistics
        np.testing.assert_allclose(h.var(0), weights[name]["moving_variance"], rtol=1e-5)


def test_report_and_frozen_layer():
    model, x = _trained("functional")
    model.get_layer("bn1").trainable = False
    old = {name: model.get_layer(name).moving_mean.numpy().copy() for name in ("bn1", "bn2")}
    old_var2 = model.get_layer("bn2").moving_variance.numpy().copy()
    report = recalibrate(model, x, progress=False)
    assert list(report) == ["bn1", "bn2"]
    assert not report["bn1"].updated and report["bn2"].updated
    np.testing.assert_array_equal(model.get_layer("bn1").moving_mean.numpy(), old["bn1"])  # frozen: kept
    expected = numpy_population(mlp_weights(model), x, frozen=("bn1",))
    assert_population_close(population_statistics(model, x)["bn2"], *expected["bn2"])
    second = report["bn2"]
    np.testing.assert_array_equal(second.old_mean, old["bn2"])
    np.testing.assert_array_equal(second.new_mean, model.get_layer("bn2").moving_mean.numpy())
    gap = np.mean(np.abs(second.new_mean.astype(np.float64) - old["bn2"]) / np.sqrt(old_var2.astype(np.float64) + 1e-2))
    assert second.mean_gap == pytest.approx(gap, rel=1e-5)
    # afterwards the population statistics ARE the moving ones: nothing left to recalibrate
    again = recalibrate(model, x, progress=False)
    assert again["bn2"].mean_gap < 1e-5 and again["bn2"].variance_log_ratio < 1e-5


def test_dataset_input_progress_bar_and_renorm(capsys):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.BatchNormalization(renorm=True, name="bn")(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    x, y = make_data(50)
    recalibrate(model, tf.data.Dataset.from_tensor_slices((x, y[:, :1])).batch(16))
    assert "4/4" in capsys.readouterr().out  # one pass of 4 batches, the last one ragged
    layer = model.get_layer("bn")
    stddev, variance = layer.moving_stddev.numpy(), layer.moving_variance.numpy()
    np.testing.assert_allclose(stddev**2, variance + layer.epsilon, rtol=1e-6)
    recalibrate(model, x, progress=False)
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_backend_without_tensorflow():
    out = check(
        run_python(
            """
        import json
        import keras
        import numpy as np
        from bn_models import make_data, mlp_weights, numpy_mlp_forward, subclassed_mlp
        from population_helpers import numpy_population, randomise_bn
        from bn_inspect import recalibrate

        keras.utils.set_random_seed(0)
        model = subclassed_mlp()
        randomise_bn(model)
        x = make_data(101)[0]
        expected = numpy_population(mlp_weights(model), x)  # before: the convention itself
        report = recalibrate(model, x, batch_size=16, progress=False)
        errors = []
        for path, layer in report.items():
            mean, variance = expected[path.split("/")[-1]]
            errors.append(float(np.max(np.abs(layer.new_variance / variance - 1))))
            errors.append(float(np.max(np.abs(layer.new_mean - mean) / np.sqrt(variance))))
        outputs, _ = numpy_mlp_forward(mlp_weights(model), x, training=False)
        errors.append(float(np.max(np.abs(keras.ops.convert_to_numpy(model(x, training=False)) - outputs))))
        print(json.dumps({"backend": keras.backend.backend(), "tf": loaded(["tensorflow"]), "errors": errors}))
    """,
            blocked=["tensorflow"],
            env={"KERAS_BACKEND": "jax"},
        )
    )
    result = json.loads(out.splitlines()[-1])
    assert result["backend"] == "jax" and result["tf"] == []
    assert max(result["errors"]) < 1e-5, result["errors"]
