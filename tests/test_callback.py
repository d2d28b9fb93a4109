"""BatchNormInspector: what it logs equals the model's variables; it never changes training."""

import math
import warnings

import keras
import numpy as np
import pytest
from bn_models import dropout_mlp, make_data, nested_mlp, sequential_mlp, snapshot

from bn_inspect import BatchNormInspector, BatchNormInspectorWarning, load_logdir, schema
from bn_inspect.layers import find_batchnorm_layers


class RecordVariables(keras.callbacks.Callback):
    """Copies every BN layer's variables at train begin and at each epoch end."""

    def __init__(self):
        super().__init__()
        self.by_step: dict[int, dict[str, dict[str, np.ndarray]]] = {}

    def _record(self, step):
        self.by_step[step] = {
            f.path: {
                "moving_mean": f.layer.moving_mean.numpy().copy(),
                "moving_variance": f.layer.moving_variance.numpy().copy(),
                "gamma": f.layer.gamma.numpy().copy(),
                "beta": f.layer.beta.numpy().copy(),
            }
            for f in find_batchnorm_layers(self.model)
        }

    def on_train_begin(self, logs=None):
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        self._record(epoch + 1)


def _compiled(builder, seed=0):
    keras.utils.set_random_seed(seed)
    model = builder()
    model.compile("adam", "mse")
    return model


def test_logged_variables_equal_layer_variables_bitwise(tmp_path):
    model = _compiled(nested_mlp)
    x, y = make_data()
    recorder = RecordVariables()
    model.fit(
        x, y, epochs=3, batch_size=16, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x[:32]), recorder]
    )
    run = load_logdir(tmp_path)["."]
    assert set(run.layers) == {"backbone/bn1", "bn2"}
    for path, quantities in run.layers.items():
        for quantity in schema.VARIABLE_QUANTITIES:
            series = quantities[quantity]
            assert series.steps.tolist() == [0, 1, 2, 3]
            for step in range(4):
                assert series.at(step).tobytes() == recorder.by_step[step][path][quantity].astype(np.float32).tobytes()


def test_config_record_describes_layers_and_run(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(
                name="custom",
                momentum=0.8,
                epsilon=0.01,
                beta_initializer=keras.initializers.Constant(0.5),
                moving_variance_initializer=keras.initializers.Constant(0.5),
            ),
            keras.layers.Dense(1),
        ],
        name="cfg_model",
    )
    model.compile("sgd", "mse")
    x, y = make_data(n=50)
    model.fit(x, y[:, :1], epochs=1, batch_size=10, verbose=0, callbacks=[BatchNormInspector(tmp_path, batch_size=10)])
    config = load_logdir(tmp_path)["."].config
    assert config["model_name"] == "cfg_model"
    assert config["backend"] == keras.backend.backend() and config["keras_version"] == keras.__version__
    assert config["batch_size"] == 10 and config["steps_per_epoch"] == 5
    assert set(config) == set(schema.CONFIG_FIELDS_RUN)  # what the schema lists is what is written
    (layer,) = config["layers"]
    assert set(layer) == set(schema.CONFIG_FIELDS_LAYER)
    assert (layer["path"], layer["momentum"], layer["epsilon"], layer["axis"]) == ("custom", 0.8, 0.01, -1)
    assert layer["beta_initializer"] == {"class_name": "Constant", "config": {"value": 0.5}}
    assert layer["moving_variance_initializer"]["config"] == {"value": 0.5}
    assert layer["gamma_initializer"]["class_name"] == "Ones"
    assert layer["trainable"] is True and layer["channels"] == 4


def test_training_is_bitwise_identical_with_and_without_inspector(tmp_path):
    def train(callbacks):
        model = dropout_mlp(units=16, rate=0.3, outputs=2, seed=7)
        x, y = make_data()
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
        return snapshot(model)

    plain = train([])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchNormInspectorWarning)
        inspected = train([BatchNormInspector(tmp_path, probe_data=make_data()[0][:32], log_every_n_batches=2)])
    assert len(plain) == len(inspected)
    for a, b in zip(plain, inspected):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("batch_size", [16, 25, 96])
def test_residual_weight_is_momentum_to_the_steps(tmp_path, batch_size):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0, callbacks=[BatchNormInspector(tmp_path)])
    run = load_logdir(tmp_path)["."]
    steps_per_epoch = math.ceil(len(x) / batch_size)
    for path, momentum in (("bn1", 0.9), ("bn2", 0.99)):
        series = run.layers[path][schema.RESIDUAL_INIT_WEIGHT]
        expected = [momentum ** (epoch * steps_per_epoch) for epoch in range(3)]
        np.testing.assert_allclose(series.values, expected, rtol=1e-6)
        assert run.layers[path][schema.UPDATES].values.tolist() == [e * steps_per_epoch for e in range(3)]
    mean_residual = [(0.9 ** (e * steps_per_epoch) + 0.99 ** (e * steps_per_epoch)) / 2 for e in range(3)]
    np.testing.assert_allclose(run.scalars[schema.SCALAR_MEAN_RESIDUAL].values, mean_residual, rtol=1e-6)


def test_frozen_layer_keeps_full_initializer_weight(tmp_path):
    model = _compiled(sequential_mlp)
    model.get_layer("bn1").trainable = False
    model.compile("adam", "mse")
    x, y = make_data()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[BatchNormInspector(tmp_path)])
    run = load_logdir(tmp_path)["."]
    np.testing.assert_array_equal(run.layers["bn1"][schema.RESIDUAL_INIT_WEIGHT].values, [1.0, 1.0, 1.0])
    moving = run.layers["bn1"]["moving_mean"].values
    assert np.array_equal(moving[0], moving[-1])  # frozen: moving stats never update
    entry = {e["path"]: e for e in run.config["layers"]}["bn1"]
    assert entry["trainable"] is False and entry["inference_mode_in_training"] is True
    assert run.layers["bn2"][schema.RESIDUAL_INIT_WEIGHT].values[-1] < 1.0


def test_probe_quantities_logged_at_every_step(tmp_path):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    model.fit(
        x, y, epochs=2, batch_size=16, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=(x[:24], y[:24]))]
    )
    run = load_logdir(tmp_path)["."]
    for quantity in (
        schema.PROBE_BATCH_MEAN,
        schema.PROBE_BATCH_VARIANCE,
        schema.PROBE_MEAN_GAP,
        schema.PROBE_VAR_LOG_RATIO,
    ):
        assert run.layers["bn1"][quantity].steps.tolist() == [0, 1, 2]
    assert run.model[schema.OUTPUT_TRAINING].values.shape == (3, 24, 2)
    gap = run.model[schema.OUTPUT_GAP].values
    diff = np.abs(
        run.model[schema.OUTPUT_TRAINING].values.astype(np.float64) - run.model[schema.OUTPUT_INFERENCE].values
    )
    np.testing.assert_allclose(gap[:, 0], diff.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(run.scalars[schema.SCALAR_OUTPUT_GAP].values, gap[:, 0], rtol=1e-6)


def test_within_epoch_curves_on_the_global_step(tmp_path):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    recorder = []

    class AtBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            recorder.append(self.model.get_layer("bn1").moving_mean.numpy().copy())

    model.fit(
        x,
        y,
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[BatchNormInspector(tmp_path, log_every_n_batches=2), AtBatch()],
    )
    series = load_logdir(tmp_path)["."].batch_layers["bn1"]["moving_mean"]
    assert series.steps.tolist() == [2, 4, 6, 8, 10, 12]
    for step, values in zip(series.steps, series.values):
        assert values.tobytes() == recorder[step - 1].tobytes()


def test_within_epoch_logging_leaves_batch_end_hooks_to_keras(tmp_path):
    """Keras runs on_train_batch_end asynchronously, without turning each step's logs into
    floats, only while no callback overrides it (it marks its no-op hooks ``_is_default``)."""
    for every in (None, 1, 10):
        inspector = BatchNormInspector(tmp_path, log_every_n_batches=every)
        assert getattr(inspector.on_train_batch_end, "_is_default", False), every
        assert getattr(inspector.on_batch_end, "_is_default", False), every


def test_resume_and_repeated_fit_continue_the_steps(tmp_path):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[BatchNormInspector(tmp_path)])
    model.fit(x, y, initial_epoch=2, epochs=4, verbose=0, callbacks=[BatchNormInspector(tmp_path)])
    inspector = BatchNormInspector(tmp_path)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[inspector])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[inspector])
    run = load_logdir(tmp_path)["."]
    series = run.layers["bn1"]["moving_mean"]
    assert series.steps.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert series.at(6).tobytes() == model.get_layer("bn1").moving_mean.numpy().tobytes()
    steps_per_epoch = math.ceil(len(x) / 32)
    np.testing.assert_allclose(
        run.layers["bn1"][schema.RESIDUAL_INIT_WEIGHT].values,
        [0.9 ** (e * steps_per_epoch) for e in range(7)],
        rtol=1e-6,
    )


def test_wrong_probe_shape_fails_before_training(tmp_path):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 6\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=np.zeros((8, 5)))])
    assert int(model.optimizer.iterations.numpy()) == 0


def test_probe_larger_than_cap_and_non_numeric_probe_fail_clearly(tmp_path):
    model = _compiled(sequential_mlp)
    x, y = make_data()
    with pytest.raises(ValueError, match="max_probe_samples"):
        model.fit(
            x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x, max_probe_samples=10)]
        )
    with pytest.raises(ValueError, match="must hold numbers"):
        model.fit(
            x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=np.array([["a"] * 6] * 4))]
        )


def test_unwritable_log_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    model = _compiled(sequential_mlp)
    x, y = make_data()
    with pytest.raises(ValueError, match="log_dir"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(blocker / "run")])
    with pytest.raises(ValueError, match="is a file"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormInspector(blocker)])
    assert int(model.optimizer.iterations.numpy()) == 0


def test_model_without_batchnorm_warns_once_and_trains(tmp_path):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x, y = make_data()
    with pytest.warns(BatchNormInspectorWarning, match="no BatchNormalization") as caught:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[BatchNormInspector(tmp_path)])
    assert len([w for w in caught if issubclass(w.category, BatchNormInspectorWarning)]) == 1
    assert int(model.optimizer.iterations.numpy()) == 2 * 3


def test_warnings_for_tiny_probe_dropout_and_no_probe(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dropout(0.2, name="dropout")(h))  # fixed name: uids grow per process
    model.compile("sgd", "mse")
    x, y = make_data()
    with pytest.warns(BatchNormInspectorWarning) as caught:
        model.fit(
            x,
            y[:, :1].repeat(4, 1),
            epochs=1,
            verbose=0,
            callbacks=[BatchNormInspector(tmp_path / "a", probe_data=x[:1])],
        )
    messages = " ".join(str(w.message) for w in caught)
    assert "equals beta" in messages
    assert "['dropout']" in messages and "noise" in messages
    with pytest.warns(BatchNormInspectorWarning, match="probe off"):
        model.fit(x, y[:, :1].repeat(4, 1), epochs=1, verbose=0, callbacks=[BatchNormInspector(tmp_path / "b")])


def test_event_files_readable_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    model = _compiled(sequential_mlp)
    x, y = make_data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[BatchNormInspector(tmp_path, probe_data=x[:16])])
    accumulator = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    tag = schema.group_tag(schema.KIND_LAYER, schema.VARIABLE_QUANTITIES, "bn2")
    events = accumulator.Tensors(tag)
    assert [e.step for e in events] == [0, 1, 2]
    from tensorboard.util import tensor_util

    np.testing.assert_array_equal(
        tensor_util.make_ndarray(events[-1].tensor_proto)[0], model.get_layer("bn2").moving_mean.numpy()
    )
    assert accumulator.SummaryMetadata(tag).plugin_data.plugin_name == schema.PLUGIN_NAME
    assert [e.step for e in accumulator.Scalars(schema.SCALAR_OUTPUT_GAP)] == [0, 1, 2]


# --- the inspector says when within-epoch logging costs too much ---------------------------
BATCH_COST_MESSAGE = (
    r"within-epoch logging took ([0-9.]+) s \(([0-9]+) logged step\(s\), ([0-9.]+) ms each\), [0-9]+% of a "
    r"([0-9.]+) s training epoch of ([0-9]+) steps, every ([0-9]+) batch\(es\)\. Pass log_every_n_batches=([0-9]+) "
    r"to keep it under 10% of training time\."
)


def _fit_logging_batches(tmp_path, every, monkeypatch, write_seconds):
    """Two epochs of 16 steps with log_every_n_batches=``every``, each write taking ``write_seconds``
    longer (a slow disk); the inspector's warnings."""
    import re
    import time

    from bn_inspect.writer import SummaryWriter

    original = SummaryWriter.write_step

    def slow_write_step(self, step, **options):
        time.sleep(write_seconds)
        return original(self, step, **options)

    monkeypatch.setattr(SummaryWriter, "write_step", slow_write_step)
    keras.utils.set_random_seed(0)
    model = sequential_mlp()
    model.compile("sgd", "mse")
    x, y = make_data(64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchNormInspectorWarning)
        model.fit(
            x, y, epochs=2, batch_size=4, verbose=0, callbacks=[BatchNormInspector(tmp_path, log_every_n_batches=every)]
        )
    told = [str(w.message) for w in caught if issubclass(w.category, BatchNormInspectorWarning)]
    return [re.search(BATCH_COST_MESSAGE, m) for m in told if "log_every_n_batches=" in m], told


def test_costly_within_epoch_logging_names_the_log_every_n_batches_that_keeps_it_under_10_percent(
    tmp_path, monkeypatch
):
    from bn_inspect.stats import interval_for_share

    said, told = _fit_logging_batches(tmp_path, 1, monkeypatch, write_seconds=0.02)
    assert len(said) == 1 and said[0], told  # once per fit, in the documented form
    seconds, logs, per_log_ms, training, steps, every, advised = (float(g) for g in said[0].groups())
    assert (logs, steps, every) == (16, 16, 1)
    assert per_log_ms >= 20 and abs(seconds - logs * per_log_ms / 1000) < 0.01
    # The advice is the fewest batches between logs that keep the logging under 10 % of the
    # training time, from the figures it prints (rounded to 0.01 s / 0.01 ms).
    lowest = interval_for_share((per_log_ms - 0.005) / 1000 * steps, training + 0.005, 0.1)
    highest = interval_for_share((per_log_ms + 0.005) / 1000 * steps, max(training - 0.005, 1e-3), 0.1)
    assert 1 < lowest <= advised <= highest, (said[0][0], lowest, highest)
    series = load_logdir(tmp_path)["."].batch_layers["bn1"][schema.MOVING_MEAN]
    assert series.steps.tolist() == list(range(1, 33))  # advice only: every batch still logged


def test_no_logging_advice_when_logging_is_already_sparse(tmp_path, monkeypatch):
    said, told = _fit_logging_batches(tmp_path, 16, monkeypatch, write_seconds=0.02)
    assert said == [], told  # one log per epoch: under the 0.1 s floor, and already every 16 steps
