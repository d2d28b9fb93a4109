"""The dual-mode probe: exact batch statistics, exact outputs, no state change."""

import keras
import numpy as np
import pytest
from bn_models import MODEL_BUILDERS, dropout_mlp, make_data, mlp_weights, numpy_mlp_forward, snapshot

from bn_inspect import stats
from bn_inspect.layers import find_batchnorm_layers
from bn_inspect.probe import Probe


def _trained(builder):
    keras.utils.set_random_seed(1)
    model = builder()
    model.compile("adam", "mse")
    x, y = make_data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model, x


@pytest.mark.parametrize("kind", sorted(MODEL_BUILDERS))
def test_batch_stats_and_outputs_match_numpy(kind):
    model, x = _trained(MODEL_BUILDERS[kind])
    probe_x = x[:40]
    found = find_batchnorm_layers(model)
    assert sorted(f.layer.name for f in found) == ["bn1", "bn2"]
    result = Probe(model, found, probe_x).run()

    weights = mlp_weights(model)
    train_out, train_inputs = numpy_mlp_forward(weights, probe_x, training=True)
    infer_out, _ = numpy_mlp_forward(weights, probe_x, training=False)
    for f in found:
        layer_input = train_inputs[f.layer.name]
        np.testing.assert_allclose(result.batch_mean[f.path], layer_input.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.batch_variance[f.path], layer_input.var(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.outputs_training, train_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.outputs_inference, infer_out, rtol=1e-4, atol=1e-5)


def test_output_gap_equals_numpy_of_keras_calls():
    model, x = _trained(MODEL_BUILDERS["functional"])
    probe_x = x[:32]
    result = Probe(model, find_batchnorm_layers(model), probe_x).run()
    before = snapshot(model)
    trained_mode = keras.ops.convert_to_numpy(model(probe_x, training=True))  # mutates moving stats...
    for variable, value in zip(list(model.variables), before):  # ...so put them back
        variable.assign(value)
    inference_mode = keras.ops.convert_to_numpy(model(probe_x, training=False))
    gap = stats.output_gap(result.outputs_training, result.outputs_inference)
    diff = np.abs(trained_mode.astype(np.float64) - inference_mode)
    np.testing.assert_allclose(gap[0], diff.mean(), rtol=1e-4)
    np.testing.assert_allclose(gap[1], diff.max(), rtol=1e-4)
    np.testing.assert_allclose(gap[2], diff.mean() / np.abs(inference_mode).mean(), rtol=1e-4)


def test_probe_changes_no_variable_bitwise():
    model = dropout_mlp(units=8, rate=0.5, outputs=1, seed=2)
    x, y = make_data()
    model.fit(x, y[:, :1], epochs=1, verbose=0)
    before = snapshot(model)
    probe = Probe(model, find_batchnorm_layers(model), x[:16])
    probe.run()
    probe.run()
    after = snapshot(model)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert a.tobytes() == b.tobytes()


def test_conv_layer_stats_match_feature_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(bn))
    x = np.random.default_rng(0).normal(size=(10, 8, 8, 3)).astype("float32")
    found = find_batchnorm_layers(model)
    result = Probe(model, found, x).run()
    feature = keras.ops.convert_to_numpy(keras.Model(inputs, conv)(x)).astype(np.float64)  # no BN upstream: mode-free
    np.testing.assert_allclose(result.batch_mean["bn"], feature.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.batch_variance["bn"], feature.var(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)


def test_frozen_layer_runs_in_inference_mode_and_measures_nothing():
    model, x = _trained(MODEL_BUILDERS["sequential"])
    model.get_layer("bn1").trainable = False  # Keras 3: inference mode even when training=True
    probe_x = x[:32]
    result = Probe(model, find_batchnorm_layers(model), probe_x).run()

    w = mlp_weights(model)
    bn1, bn2 = w["bn1"], w["bn2"]
    h = np.asarray(probe_x, np.float64) @ w["dense1"]["kernel"] + w["dense1"]["bias"]
    h = bn1["gamma"] * (h - bn1["moving_mean"]) / np.sqrt(bn1["moving_variance"] + 1e-3) + bn1["beta"]
    h = np.maximum(h, 0) @ w["dense2"]["kernel"] + w["dense2"]["bias"]
    np.testing.assert_allclose(result.batch_mean["bn2"], h.mean(axis=0), rtol=1e-5, atol=1e-6)
    h = bn2["gamma"] * (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-2) + bn2["beta"]
    train_out = h @ w["out"]["kernel"] + w["out"]["bias"]
    np.testing.assert_allclose(result.outputs_training, train_out, rtol=1e-4, atol=1e-5)
    assert np.isnan(result.batch_mean["bn1"]).all() and np.isnan(result.batch_variance["bn1"]).all()


def test_every_run_sees_the_current_state_however_it_was_changed():
    """A run right after another gives the same values; after any variable changed between runs
    (as another callback might change it) the values are those of the changed model."""
    model, x = _trained(MODEL_BUILDERS["sequential"])
    probe = Probe(model, find_batchnorm_layers(model), x[:40])
    first = probe.run()
    again = probe.run()
    np.testing.assert_array_equal(again.outputs_training, first.outputs_training)
    np.testing.assert_array_equal(again.batch_mean["bn1"], first.batch_mean["bn1"])
    for variable, scale in ((model.get_layer("dense1").kernel, 2.0), (model.get_layer("bn2").moving_mean, 0.5)):
        variable.assign(variable * scale)
        changed = probe.run()
        weights = mlp_weights(model)
        train_out, train_inputs = numpy_mlp_forward(weights, x[:40], training=True)
        infer_out, _ = numpy_mlp_forward(weights, x[:40], training=False)
        np.testing.assert_allclose(changed.outputs_inference, infer_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(changed.outputs_training, train_out, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(changed.batch_mean["bn1"], train_inputs["bn1"].mean(axis=0), rtol=1e-5, atol=1e-6)
