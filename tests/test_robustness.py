"""Whatever real Keras training runs, the inspector never breaks it, never changes it, and
never loses logged epochs: real architectures, mixed precision, MirroredStrategy, frozen
backbones, resumed runs, killed processes, NaN statistics, failing probes and bad input."""

import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from bn_models import make_data, mlp_weights, nested_mlp, sequential_mlp, snapshot

from bn_inspect import BatchNormInspector, BatchNormInspectorWarning, load_logdir, schema
from bn_inspect.layers import find_batchnorm_layers
from bn_inspect.probe import Probe
from bn_inspect.probe_data import ProbeDataError

SCRIPTS = Path(__file__).parent / "scripts"
READABLE_PATH = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def _bn_layers(model) -> list:
    """Every BatchNormalization instance inside ``model``, found by Keras' own traversal."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _variables(layer) -> dict[str, np.ndarray]:
    """Copies of the BN variables the layer has (no gamma without scale, no beta without center)."""
    named = {
        "moving_mean": layer.moving_mean,
        "moving_variance": layer.moving_variance,
        "gamma": layer.gamma,
        "beta": layer.beta,
    }
    return {name: np.array(v.numpy(), copy=True) for name, v in named.items() if v is not None}


class RecordVariables(keras.callbacks.Callback):
    """Copies of every BN layer's variables at train begin (step 0) and each epoch end."""

    def __init__(self, initial_step=0):
        super().__init__()
        self.initial_step = initial_step
        self.by_step: dict[int, dict[str, dict[str, np.ndarray]]] = {}

    def _record(self, step):
        self.by_step[step] = {f.path: _variables(f.layer) for f in find_batchnorm_layers(self.model)}

    def on_train_begin(self, logs=None):
        self._record(self.initial_step)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)


def _assert_logged_bitwise(run, recorder):
    """Every logged BN variable equals the recorded layer variable bit for bit, at every step."""
    for step, layers in recorder.by_step.items():
        for path, variables in layers.items():
            assert {q for q in schema.VARIABLE_QUANTITIES if q in run.layers[path]} == set(variables), path
            for quantity, value in variables.items():
                logged = run.layers[path][quantity].at(step)
                assert logged.dtype == np.float32
                assert logged.tobytes() == value.astype(np.float32).reshape(-1).tobytes(), (path, quantity, step)


def _quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchNormInspectorWarning)
        return model.fit(*args, **kwargs)


def _restoring(model, fn):
    """Run ``fn()`` (which may change model state) and put every variable back afterwards."""
    before = snapshot(model)
    try:
        return fn()
    finally:
        for variable, value in zip(model.variables, before):
            variable.assign(value)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


# --- 1. real architectures -----------------------------------------------------------------


def test_resnet50_every_bn_found_once_and_logged_bitwise(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=3)
    # Eager steps: the traced ResNet50 train step alone costs ~35 s on two cores; what the
    # inspector sees (variables between steps) is the same either way.
    model.compile("sgd", "sparse_categorical_crossentropy", run_eagerly=True)
    found = find_batchnorm_layers(model)
    assert len(found) == len(_bn_layers(model)) == 53
    assert {id(f.layer) for f in found} == {id(layer) for layer in _bn_layers(model)}
    paths = [f.path for f in found]
    assert len(set(paths)) == len(paths)
    assert all(READABLE_PATH.match(p) and p.split("/")[-1] == f.layer.name for p, f in zip(paths, found))

    recorder = RecordVariables()
    x = _images(4, (32, 32, 3))
    _quiet_fit(
        model,
        x,
        np.arange(4) % 3,
        batch_size=2,
        epochs=1,
        verbose=0,
        callbacks=[BatchNormInspector(tmp_path), recorder],
    )
    run = load_logdir(tmp_path)["."]
    assert list(run.layers) == paths
    assert [entry["path"] for entry in run.config["layers"]] == paths
    _assert_logged_bitwise(run, recorder)
    assert run.layers[paths[0]][schema.UPDATES].values.tolist() == [0, 2]


class DenseBN(keras.layers.Layer):
    """A custom layer holding a BatchNormalization."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units, name="dense")
        self.bn = keras.layers.BatchNormalization(name="bn")

    def call(self, x, training=None):
        return self.bn(self.dense(x), training=training)


def test_mobilenetv2_nested_with_custom_layer_probe_exact(tmp_path):
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False, pooling="avg")
    inputs = keras.Input((32, 32, 3))
    head = DenseBN(5, name="head")
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(head(backbone(inputs))), name="outer")
    model.compile("sgd", "mse", run_eagerly=True)
    found = find_batchnorm_layers(model)
    assert {id(f.layer) for f in found} == {id(layer) for layer in _bn_layers(model)}
    assert len(found) == len(_bn_layers(backbone)) + 1 == 53
    paths = [f.path for f in found]
    assert len(set(paths)) == len(paths) and all(READABLE_PATH.match(p) for p in paths)
    assert paths[0] == f"{backbone.name}/bn_Conv1" and paths[-1] == "head/bn"

    x = _images(10, (32, 32, 3))
    probe = x[2:]
    recorder = RecordVariables()
    _quiet_fit(
        model,
        x[:2],
        _images(2, (3,), seed=1),
        batch_size=2,
        epochs=1,
        verbose=0,
        callbacks=[BatchNormInspector(tmp_path, probe_data=probe), recorder],
    )
    run = load_logdir(tmp_path)["."]
    _assert_logged_bitwise(run, recorder)

    # bn_Conv1's input is the first convolution's output: the same in both modes.
    conv = np.asarray(keras.Model(backbone.input, backbone.get_layer("Conv1").output)(probe), np.float64)
    np.testing.assert_allclose(
        run.layers[paths[0]][schema.PROBE_BATCH_MEAN].at(1), conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        run.layers[paths[0]][schema.PROBE_BATCH_VARIANCE].at(1), conv.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5
    )
    # head/bn's input in training mode, from plain Keras calls (moving stats restored after).
    features = _restoring(model, lambda: np.asarray(head.dense(backbone(probe, training=True)), np.float64))
    np.testing.assert_allclose(
        run.layers["head/bn"][schema.PROBE_BATCH_MEAN].at(1), features.mean(axis=0), rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(
        run.layers["head/bn"][schema.PROBE_BATCH_VARIANCE].at(1), features.var(axis=0), rtol=1e-3, atol=1e-4
    )


def test_channels_first_2d_input_and_no_center_no_scale(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 5, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    conv = keras.layers.Permute((3, 1, 2), name="to_channels_first")(conv)  # TF's CPU conv is NHWC only
    h = keras.layers.BatchNormalization(axis=1, center=False, scale=False, name="bn_cf")(conv)
    h = keras.layers.Dense(6, name="dense")(keras.layers.Flatten()(h))
    h = keras.layers.BatchNormalization(scale=False, name="bn_2d")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(h))
    model.compile("adam", "mse")
    x = _images(24, (5, 5, 3))
    probe = x[:12]
    recorder = RecordVariables()
    model.fit(
        x,
        x[:, 0, 0, :1] * 2,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[BatchNormInspector(tmp_path, probe_data=probe), recorder],
    )
    run = load_logdir(tmp_path)["."]
    _assert_logged_bitwise(run, recorder)
    assert "gamma" not in run.layers["bn_cf"] and "beta" not in run.layers["bn_cf"]
    assert "gamma" not in run.layers["bn_2d"] and "beta" in run.layers["bn_2d"]
    entries = {e["path"]: e for e in run.config["layers"]}
    assert (entries["bn_cf"]["axis"], entries["bn_cf"]["center"], entries["bn_cf"]["scale"]) == (1, False, False)
    assert entries["bn_cf"]["channels"] == 4 and entries["bn_2d"]["channels"] == 6

    # numpy forward pass in training mode with the final weights
    features = np.asarray(keras.Model(inputs, conv)(probe), np.float64)  # [n, 4, 5, 5]
    mean, var = features.mean(axis=(0, 2, 3)), features.var(axis=(0, 2, 3))
    normalized = (features - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3)
    dense = model.get_layer("dense")
    hidden = normalized.reshape(len(probe), -1) @ np.asarray(dense.kernel, np.float64) + np.asarray(dense.bias)
    np.testing.assert_allclose(run.layers["bn_cf"][schema.PROBE_BATCH_MEAN].at(2), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.layers["bn_cf"][schema.PROBE_BATCH_VARIANCE].at(2), var, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        run.layers["bn_2d"][schema.PROBE_BATCH_MEAN].at(2), hidden.mean(axis=0), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        run.layers["bn_2d"][schema.PROBE_BATCH_VARIANCE].at(2), hidden.var(axis=0), rtol=1e-4, atol=1e-5
    )


# --- 2. mixed precision --------------------------------------------------------------------


def test_mixed_float16_logs_float32_probe_matches_and_counts_skipped_steps(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
        h = keras.layers.BatchNormalization(name="bn")(conv)
        outputs = keras.layers.Dense(1, dtype="float32", name="out")(keras.layers.GlobalAveragePooling2D()(h))
        model = keras.Model(inputs, outputs)
        model.compile("adam", "mse")  # wrapped in a LossScaleOptimizer
        layer = model.get_layer("bn")
        assert layer.compute_dtype == "float16" and layer.moving_mean.dtype == "float32"
        x = _images(16, (8, 8, 3))
        y = np.full((16, 1), 1e4, "float32")  # float16 gradients overflow: the optimizer skips steps
        recorder = RecordVariables()
        with warnings.catch_warnings():
            warnings.simplefilter("error", BatchNormInspectorWarning)
            model.fit(
                x,
                y,
                batch_size=4,
                epochs=2,
                verbose=0,
                callbacks=[BatchNormInspector(tmp_path, probe_data=x[:8], log_every_n_batches=2), recorder],
            )
        assert int(model.optimizer.iterations.numpy()) < 8  # skipped steps did happen...
        run = load_logdir(tmp_path)["."]
        _assert_logged_bitwise(run, recorder)
        # ...and still updated the moving statistics, so they count
        assert run.layers["bn"][schema.UPDATES].values.tolist() == [0, 4, 8]
        np.testing.assert_allclose(run.layers["bn"][schema.RESIDUAL_INIT_WEIGHT].values, 0.99 ** np.array([0, 4, 8]))
        assert run.batch_layers["bn"]["moving_mean"].steps.tolist() == [2, 4, 6, 8]
        features = np.asarray(keras.Model(inputs, conv)(x[:8]))
        assert features.dtype == np.float16
        features = features.astype(np.float64)
        mean, var = run.layers["bn"][schema.PROBE_BATCH_MEAN], run.layers["bn"][schema.PROBE_BATCH_VARIANCE]
        assert mean.values.dtype == np.float32
        np.testing.assert_allclose(mean.at(2), features.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(var.at(2), features.var(axis=(0, 1, 2)), rtol=1e-3, atol=1e-3)
        assert np.isfinite(run.model[schema.OUTPUT_GAP].values).all()
    finally:
        keras.config.set_dtype_policy("float32")


def test_updates_count_the_steps_run_with_steps_per_execution_and_early_stop(tmp_path):
    class StopInEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1:
                self.model.stop_training = True

    x, y = make_data()  # 96 samples, 3 steps of 32 per epoch
    for name, steps_per_execution, extra in (("spe2", 2, []), ("stopped", 1, [StopInEpoch2()])):
        keras.utils.set_random_seed(0)
        model = sequential_mlp()
        model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
        _quiet_fit(model, x, y, epochs=2, verbose=0, callbacks=[BatchNormInspector(tmp_path / name), *extra])
        updates = load_logdir(tmp_path / name)["."].layers["bn1"][schema.UPDATES].values
        assert updates[-1] == int(model.optimizer.iterations.numpy()) == (6 if name == "spe2" else 4)
    # counting steps in on_train_batch_begin keeps Keras' async batch dispatch (JAX, torch)
    plain = keras.callbacks.CallbackList([keras.callbacks.Callback()], model=model)
    inspected = keras.callbacks.CallbackList([BatchNormInspector(tmp_path / "async")], model=model)
    assert inspected._async_train == plain._async_train


# --- 3. tf.distribute.MirroredStrategy -----------------------------------------------------


def test_mirrored_strategy_chief_writes_once_and_replica_divergence_is_recorded(tmp_path):
    out = tmp_path / "expected.npz"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "mirrored_fit.py"), str(tmp_path / "logs"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = np.load(out)
    assert expected["unchanged_by_inspector"]  # training under the strategy is bitwise the same
    runs = load_logdir(tmp_path / "logs")
    assert set(runs) == {"unsync", "sync"}
    for name in ("unsync", "sync"):
        files = os.listdir(tmp_path / "logs" / name)
        assert len(files) == 1, files  # one writer: the chief's
        run = runs[name]
        assert run.config["replicas"] == 2 and run.config["replica_probe_shards"] == [8, 8]
        for layer in ("bn1", "bn2"):
            for quantity in schema.VARIABLE_QUANTITIES:
                copies = expected[f"{name}/{layer}/{quantity}"]  # [replicas, channels]
                # the logged value is the first replica's copy, the one reading and saving give
                assert run.layers[layer][quantity].at(2).tobytes() == copies[0].tobytes()
            for quantity, variable in (
                (schema.REPLICA_MOVING_MEAN_SPREAD, "moving_mean"),
                (schema.REPLICA_MOVING_VARIANCE_SPREAD, "moving_variance"),
            ):
                copies = expected[f"{name}/{layer}/{variable}"].astype(np.float64)
                np.testing.assert_allclose(run.layers[layer][quantity].at(2), np.ptp(copies, axis=0), rtol=1e-6)

    unsync, sync = runs["unsync"].layers, runs["sync"].layers
    # synchronized=False: each replica normalises with its own shard's statistics
    shard_mean, shard_var = expected["unsync/bn1/shard_mean"], expected["unsync/bn1/shard_variance"]
    mean_spread = np.ptp(shard_mean, axis=0)
    np.testing.assert_allclose(unsync["bn1"][schema.REPLICA_BATCH_MEAN_SPREAD].at(2), mean_spread, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        unsync["bn1"][schema.REPLICA_BATCH_VARIANCE_SPREAD].at(2), np.ptp(shard_var, axis=0), rtol=1e-4, atol=1e-5
    )
    gap = np.mean(mean_spread / np.sqrt(expected["unsync/bn1/probe_variance"] + 1e-3))
    np.testing.assert_allclose(unsync["bn1"][schema.REPLICA_MEAN_SPREAD_GAP].at(2), gap, rtol=1e-4)
    assert gap > 0.1
    assert (runs["unsync"].scalars[schema.SCALAR_MAX_REPLICA_SPREAD].values > 0.1).all()
    for layer in ("bn1", "bn2"):
        assert (unsync[layer][schema.REPLICA_MEAN_SPREAD_GAP].values > 0.01).all()
        assert (unsync[layer][schema.REPLICA_MOVING_MEAN_SPREAD].at(2) > 0).any()
    # synchronized=True: moments are all-reduced, every replica sees the same statistics
    for layer in ("bn1", "bn2"):
        for quantity in (
            schema.REPLICA_BATCH_MEAN_SPREAD,
            schema.REPLICA_BATCH_VARIANCE_SPREAD,
            schema.REPLICA_MOVING_MEAN_SPREAD,
            schema.REPLICA_MOVING_VARIANCE_SPREAD,
        ):
            np.testing.assert_allclose(sync[layer][quantity].values, 0.0, atol=1e-5)
    np.testing.assert_allclose(runs["sync"].scalars[schema.SCALAR_MAX_REPLICA_SPREAD].values, 0.0, atol=1e-5)


# --- 4. frozen backbone --------------------------------------------------------------------


def test_backbone_frozen_through_its_parent_runs_in_inference_mode(tmp_path):
    keras.utils.set_random_seed(0)
    model = nested_mlp()
    model.get_layer("backbone").trainable = False  # freezes backbone/bn1 through its parent
    model.compile("adam", "mse")
    initial = _variables(model.get_layer("backbone").get_layer("bn1"))
    x, y = make_data()
    _quiet_fit(
        model, x, y, epochs=2, batch_size=32, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x[:16])]
    )
    run = load_logdir(tmp_path)["."]
    entries = {e["path"]: e for e in run.config["layers"]}
    assert entries["backbone/bn1"]["trainable"] is False
    assert entries["backbone/bn1"]["inference_mode_in_training"] is True
    assert entries["bn2"]["inference_mode_in_training"] is False
    frozen = run.layers["backbone/bn1"]
    np.testing.assert_array_equal(frozen[schema.RESIDUAL_INIT_WEIGHT].values, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(frozen[schema.UPDATES].values, [0, 0, 0])
    for quantity, value in initial.items():  # nothing in a frozen layer moves
        assert (frozen[quantity].values == value).all()
    assert np.isnan(frozen[schema.PROBE_BATCH_MEAN].values).all()  # it measures no batch statistics
    np.testing.assert_allclose(run.layers["bn2"][schema.RESIDUAL_INIT_WEIGHT].values, 0.99 ** np.array([0, 3, 6]))


# --- 5. resume -----------------------------------------------------------------------------


def test_resumed_run_has_one_value_per_epoch(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("adam", "mse")
    x, y = make_data()
    first, second = RecordVariables(), RecordVariables(initial_step=2)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[BatchNormInspector(tmp_path), first])
    model.fit(x, y, initial_epoch=2, epochs=4, verbose=0, callbacks=[BatchNormInspector(tmp_path), second])
    run = load_logdir(tmp_path)["."]
    assert run.epochs.tolist() == [0, 1, 2, 3, 4]
    assert [step for step, _ in run.configs] == [0, 2]
    _assert_logged_bitwise(run, first)
    _assert_logged_bitwise(run, second)
    # Step 2 is written twice (end of the first fit, start of the second) with the same values;
    # TensorBoard's loader returns both, so the tab must keep one value per step.
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    events = accumulator.Tensors(schema.group_tag(schema.KIND_LAYER, schema.VARIABLE_QUANTITIES, "bn1"))
    by_step = {}
    for event in events:
        by_step.setdefault(event.step, []).append(tensor_util.make_ndarray(event.tensor_proto).tobytes())
    assert sorted(by_step) == [0, 1, 2, 3, 4]
    assert all(len(set(values)) == 1 for values in by_step.values())


# --- 6. faults -----------------------------------------------------------------------------


def test_sigkill_in_epoch_3_leaves_epochs_readable(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "killed_fit.py"), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    (event_file,) = [p for p in tmp_path.iterdir() if "tfevents" in p.name]
    run = load_logdir(tmp_path)["."]
    assert run.epochs.tolist() == [0, 1, 2]
    for quantity in (schema.MOVING_MEAN, schema.PROBE_BATCH_MEAN, schema.RESIDUAL_INIT_WEIGHT):
        assert run.layers["bn"][quantity].steps.tolist() == [0, 1, 2]
    assert run.model[schema.OUTPUT_GAP].steps.tolist() == [0, 1, 2]
    np.testing.assert_allclose(run.layers["bn"][schema.RESIDUAL_INIT_WEIGHT].values, 0.99 ** np.array([0, 4, 8]))
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    tag = schema.group_tag(schema.KIND_LAYER, schema.VARIABLE_QUANTITIES, "bn")
    assert [e.step for e in accumulator.Tensors(tag)] == [0, 1, 2]
    assert "bn_inspect/partial" not in accumulator.Tags()["scalars"]  # the truncated record
    assert event_file.stat().st_size > 0


def test_nonfinite_moving_statistics_are_flagged_and_training_goes_on(tmp_path):
    class Corrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                layer = self.model.get_layer("bn1")
                variance = layer.moving_variance.numpy()
                variance[:3] = [np.nan, np.inf, -100.0]
                layer.moving_variance.assign(variance)
                mean = layer.moving_mean.numpy()
                mean[4] = np.nan
                layer.moving_mean.assign(mean)

    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("adam", "mse")
    x, y = make_data()
    recorder = RecordVariables()
    with pytest.warns(BatchNormInspectorWarning) as caught:
        history = model.fit(
            x, y, epochs=3, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x[:16]), Corrupt(), recorder]
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, BatchNormInspectorWarning)]
    assert any("'bn1'" in m and "NaN/inf" in m for m in messages), messages
    assert np.isfinite(history.history["loss"]).all()  # training mode never reads moving stats
    run = load_logdir(tmp_path)["."]
    bad = run.layers["bn1"][schema.NONFINITE_CHANNELS]
    expected = []
    for step in range(4):
        mean, variance = recorder.by_step[step]["bn1"]["moving_mean"], recorder.by_step[step]["bn1"]["moving_variance"]
        expected.append(int(np.sum(~np.isfinite(mean) | ~np.isfinite(variance) | (variance < 0))))
    assert bad.values.tolist() == expected and expected[0] == 0 and expected[-1] == 4
    assert run.layers["bn2"][schema.NONFINITE_CHANNELS].values.tolist() == [0, 0, 0, 0]
    assert run.model[schema.OUTPUT_GAP].steps.tolist() == [0, 1, 2, 3]  # the probe kept running
    _assert_logged_bitwise(run, recorder)


def test_probe_failure_at_one_epoch_is_reported_and_skipped(tmp_path, monkeypatch):
    calls = []
    original = Probe.run

    def failing_once(self):
        calls.append(1)
        if len(calls) == 3:  # 1: checked at train begin, 2: step 0, 3: step 1
            raise RuntimeError("probe exploded")
        return original(self)

    monkeypatch.setattr(Probe, "run", failing_once)
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("adam", "mse")
    x, y = make_data()
    recorder = RecordVariables()
    with pytest.warns(BatchNormInspectorWarning, match="probe skipped at step 1: RuntimeError: probe exploded"):
        model.fit(x, y, epochs=3, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x[:16]), recorder])
    assert int(model.optimizer.iterations.numpy()) == 3 * 3
    run = load_logdir(tmp_path)["."]
    assert run.layers["bn1"][schema.MOVING_MEAN].steps.tolist() == [0, 1, 2, 3]  # variables of step 1 kept
    _assert_logged_bitwise(run, recorder)
    assert run.layers["bn1"][schema.PROBE_BATCH_MEAN].steps.tolist() == [0, 2, 3]
    assert run.model[schema.OUTPUT_GAP].steps.tolist() == [0, 2, 3]


# --- 7. bad input --------------------------------------------------------------------------


def _junk_batches():
    yield "not a batch"


def _failing_batches():
    raise RuntimeError("disk gone")
    yield


BAD_PROBES = {
    "string": ("hello", "of type str is not supported"),
    "dict_of_strings": ({"x": "text"}, r"must hold numbers .*got dtype <U4"),
    "list_of_none": ([None], "must hold numbers .*got dtype object"),
    "generator_of_junk": (_junk_batches, "must hold numbers"),
    "failing_generator": (_failing_batches, "reading its batches failed .*RuntimeError: disk gone"),
    "complex": (np.ones((8, 6), complex), "must hold numbers .*complex128"),
    "datetime": (np.zeros((8, 6), "datetime64[D]"), "must hold numbers .*datetime64"),
    "empty": (np.zeros((0, 6), "float32"), "has no samples"),
    "python_scalar": (3.0, "of type float is not supported"),
    "ragged_list": ([[1.0, 2.0], [3.0]], "batch dimension"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROBES))
def test_unsupported_probe_data_fails_clearly_before_training(tmp_path, case):
    data, message = BAD_PROBES[case]
    if callable(data):
        data = data()
    model = sequential_mlp()
    model.compile("sgd", "mse")
    x, y = make_data()
    with pytest.raises(ProbeDataError, match=message):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=data)])
    assert int(model.optimizer.iterations.numpy()) == 0


def test_integer_and_float64_probes_are_used_as_fit_would(tmp_path):
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("sgd", "mse")
    x, y = make_data()
    integers = np.round(x[:16] * 3).astype("int32")
    for name, probe in (("int", integers), ("float64", integers.astype("float64"))):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path / name, probe_data=probe)])
        weights = mlp_weights(model)
        hidden = integers.astype(np.float64) @ weights["dense1"]["kernel"] + weights["dense1"]["bias"]
        logged = load_logdir(tmp_path / name)["."].layers["bn1"][schema.PROBE_BATCH_MEAN]
        np.testing.assert_allclose(logged.values[-1], hidden.mean(axis=0), rtol=1e-5, atol=1e-5)
