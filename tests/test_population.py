"""Population statistics: equal to numpy over each BN layer's inference-time inputs, streamed,
model state untouched; and the callback's "EMA staleness" logging."""

import gc
import re
import tracemalloc
import warnings
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from bn_models import MODEL_BUILDERS, make_data, mlp_weights, snapshot
from population_helpers import assert_population_close, numpy_population, randomise_bn

from bn_inspect import BatchNormInspector, BatchNormInspectorWarning, load_logdir, population_statistics, schema
from bn_inspect import callback as callback_module
from bn_inspect.population import PopulationStatistics
from bn_inspect.probe_data import ProbeDataError
from bn_inspect.stats import interval_for_share, layer_gaps, merge_moments


def test_merge_moments_is_exact_for_ragged_batches_with_a_large_mean():
    rng = np.random.default_rng(0)
    values = 1e6 + rng.normal(size=(1000, 3))  # sum-of-squares formulas lose every digit here
    cuts = np.sort(rng.choice(np.arange(1, 1000), size=40, replace=False))
    total = (np.zeros(3), np.zeros(3), np.zeros(3))  # an empty summary merges as a no-op
    for part in np.split(values, cuts):
        total = merge_moments(total, (np.full(3, len(part)), part.mean(0), ((part - part.mean(0)) ** 2).sum(0)))
    count, mean, m2 = total
    assert count.tolist() == [1000] * 3
    np.testing.assert_allclose(mean, values.mean(0), rtol=1e-15)
    np.testing.assert_allclose(m2 / count, values.var(0), rtol=1e-9)


@pytest.mark.parametrize("form", ["arrays", "xy_tuple", "dataset_ragged"])
@pytest.mark.parametrize("builder", ["sequential", "nested", "subclassed"])
def test_population_equals_numpy_over_concatenated_layer_inputs(builder, form):
    keras.utils.set_random_seed(0)
    model = MODEL_BUILDERS[builder]()
    randomise_bn(model)
    x, y = make_data(101)
    data = {
        "arrays": x,
        "xy_tuple": (x, y),
        "dataset_ragged": tf.data.Dataset.from_tensor_slices((x, y)).batch(16),  # last batch: 5
    }[form]
    got = population_statistics(model, data, batch_size=16)
    expected = numpy_population(mlp_weights(model), x)
    assert [path.split("/")[-1] for path in got] == ["bn1", "bn2"]
    for path, population in got.items():
        assert population.count == 101
        assert population.mean.dtype == np.float64 and population.mean.shape == (8 if "bn1" in path else 5,)
        assert_population_close(population, *expected[path.split("/")[-1]])


def test_dropout_is_off_and_frozen_layers_keep_their_moving_statistics():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, name="dense1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1", momentum=0.9)(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.BatchNormalization(name="bn2", epsilon=1e-2)(keras.layers.Dense(5, name="dense2")(h))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    randomise_bn(model)
    x, _ = make_data(64)
    for frozen in ((), ("bn1",)):
        model.get_layer("bn1").trainable = not frozen
        statistics = PopulationStatistics(model, x, batch_size=20)
        assert statistics.passes == (2 if not frozen else 1)
        got = statistics.compute()
        expected = numpy_population(mlp_weights(model), x, frozen=frozen)
        for name in ("bn1", "bn2"):
            assert_population_close(got[name], *expected[name])


def test_channel_axis_and_masked_positions():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # axis=1 of an image-like input: channels are the rows
    image_in = keras.Input((3, 4, 2))
    image_model = keras.Model(image_in, keras.layers.BatchNormalization(axis=1, name="bn")(image_in))
    images = rng.normal(size=(30, 3, 4, 2)).astype("float32") + np.arange(3)[None, :, None, None]
    got = population_statistics(image_model, images, batch_size=7)["bn"]
    rows = np.moveaxis(images.astype(np.float64), 1, -1).reshape(-1, 3)
    assert got.count == 30 * 4 * 2
    assert_population_close(got, rows.mean(0), rows.var(0))
    # a mask (from Masking) leaves padded time steps out, as Keras' own batch statistics do
    seq_in = keras.Input((5, 3))
    dense = keras.layers.Dense(4, name="dense")
    masked = dense(keras.layers.Masking(0.0)(seq_in))
    seq_model = keras.Model(seq_in, keras.layers.BatchNormalization(name="bn")(masked))
    seqs = rng.normal(size=(12, 5, 3)).astype("float32")
    seqs[:, 3:][rng.random((12, 2)) < 0.5] = 0.0
    kept = seqs[np.any(seqs != 0.0, axis=-1)].astype(np.float64)
    h = kept @ dense.kernel.numpy() + dense.bias.numpy()
    got = population_statistics(seq_model, seqs, batch_size=5)["bn"]
    assert got.count == len(kept) < 12 * 5
    assert_population_close(got, h.mean(0), h.var(0))


def test_num_samples_and_order_independence():
    keras.utils.set_random_seed(0)
    model = MODEL_BUILDERS["functional"]()
    randomise_bn(model)
    x, y = make_data(101)
    first = population_statistics(model, tf.data.Dataset.from_tensor_slices(x).batch(16), num_samples=50)
    expected = numpy_population(mlp_weights(model), x[:50])
    for name in ("bn1", "bn2"):
        assert first[name].count == 50
        assert_population_close(first[name], *expected[name])
    # inference mode: batch size and sample order do not change the statistics
    shuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(101, seed=3).batch(9)
    a, b = population_statistics(model, x, batch_size=101), population_statistics(model, shuffled)
    for name in ("bn1", "bn2"):
        np.testing.assert_allclose(a[name].mean, b[name].mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a[name].variance, b[name].variance, rtol=1e-6)


def test_model_state_is_bitwise_unchanged():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dropout(0.3)(keras.layers.BatchNormalization()(keras.layers.Dense(8)(inputs)))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(3)(h)))
    x, _ = make_data(64)
    before = snapshot(model)
    population_statistics(model, x, batch_size=16)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, snapshot(model)))
    for layer in model._flatten_layers():
        assert "call" not in vars(layer)  # the recording shadow is gone


class CountingBatches(keras.utils.PyDataset):
    """Many batches made on demand; records reads and how many earlier batches are still alive."""

    def __init__(self, batches: int, size: int, features: int):
        super().__init__()
        self.batches, self.size, self.features = batches, size, features
        self.reads = 0
        self.most_alive = 0
        self._refs: list = []

    def __len__(self):
        return self.batches

    def __getitem__(self, index):
        gc.collect() if index % 50 == 0 else None
        self.most_alive = max(self.most_alive, sum(ref() is not None for ref in self._refs))
        self.reads += 1
        x = np.random.default_rng(index).normal(size=(self.size, self.features)).astype("float32") + 3.0
        self._refs = [ref for ref in self._refs if ref() is not None] + [weakref.ref(x)]
        return x


def test_large_reference_data_streams_batch_by_batch():
    keras.utils.set_random_seed(0)
    channels, size, batches = 64, 256, 60
    inputs = keras.Input((16,))
    dense = keras.layers.Dense(channels)
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(dense(inputs)))
    data = CountingBatches(batches, size, 16)
    statistics = PopulationStatistics(model, data)  # reads one batch to check the model runs
    activation_bytes = batches * size * channels * 4  # what materialising the layer inputs would hold
    tracemalloc.start()
    try:
        got = statistics.compute()["bn"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.reads == 1 + batches  # one pass: every batch read exactly once, in turn
    assert data.most_alive <= 2  # the batch being read and the previous one at most
    assert peak < activation_bytes / 8, (peak, activation_bytes)
    assert got.count == batches * size and got.mean.shape == (channels,)
    # the float64 merge over all batches equals numpy over their concatenation
    x = np.concatenate([data[i] for i in range(batches)]).astype(np.float64)
    h = x @ dense.kernel.numpy() + dense.bias.numpy()
    assert_population_close(got, h.mean(0), h.var(0))


def test_unusable_reference_data_fails_clearly():
    keras.utils.set_random_seed(0)
    model = MODEL_BUILDERS["sequential"]()
    x, _ = make_data(20)
    with pytest.raises(ProbeDataError, match="one-shot iterator"):
        population_statistics(model, (x[i : i + 4] for i in range(0, 20, 4)))
    with pytest.raises(ProbeDataError, match="infinite dataset; pass num_samples"):
        population_statistics(model, tf.data.Dataset.from_tensor_slices(x).batch(4).repeat())
    with pytest.raises(ProbeDataError, match=r"expects \(None, 6\)"):
        population_statistics(model, np.zeros((8, 5), "float32"))
    with pytest.raises(ProbeDataError, match="empty dataset"):
        population_statistics(model, tf.data.Dataset.from_tensor_slices(x).batch(4).take(0))
    with pytest.raises(ValueError, match="not built"):
        population_statistics(keras.Sequential([keras.layers.BatchNormalization()]), x)


# --- the callback: population statistics and "EMA staleness" --------------------------------
def x_ref():
    return make_data(80, seed=1)[0]


def _fit(tmp_path, seed=7, epochs=2, told=None, **inspector):
    """Fit a small two-BN model with a BatchNormInspector(**inspector); its warnings' messages
    go to ``told``."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    h = keras.layers.BatchNormalization(name="bn1")(keras.layers.Dense(16)(inputs))
    h = keras.layers.Dropout(0.3)(keras.layers.Activation("relu")(h))
    h = keras.layers.BatchNormalization(name="bn2")(keras.layers.Dense(4)(h))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile("adam", "mse")
    x, y = make_data()
    callbacks = [BatchNormInspector(tmp_path, **inspector)] if inspector else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BatchNormInspectorWarning)
        model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks)
    if told is not None:
        told.extend(str(w.message) for w in caught if issubclass(w.category, BatchNormInspectorWarning))
    return model, x


def test_callback_logs_population_statistics_and_staleness(tmp_path):
    model, _x = _fit(tmp_path, epochs=2, reference_data=x_ref(), reference_batch_size=32)
    run = load_logdir(tmp_path)["."]
    expected = population_statistics(model, x_ref())
    gaps = []
    for path in ("bn1", "bn2"):
        layer = run.layers[path]
        for quantity in (
            schema.POPULATION_MEAN,
            schema.POPULATION_VARIANCE,
            schema.POPULATION_MEAN_GAP,
            schema.POPULATION_VAR_LOG_RATIO,
        ):
            assert layer[quantity].steps.tolist() == [0, 1, 2]
        np.testing.assert_allclose(layer[schema.POPULATION_MEAN].at(2), expected[path].mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer[schema.POPULATION_VARIANCE].at(2), expected[path].variance, rtol=1e-5)
        mean_gap, var_ratio = layer_gaps(
            expected[path].mean,
            expected[path].variance,
            layer["moving_mean"].at(2),
            layer["moving_variance"].at(2),
            model.get_layer(path).epsilon,
        )
        np.testing.assert_allclose(layer[schema.POPULATION_MEAN_GAP].at(2), mean_gap, rtol=1e-4)
        np.testing.assert_allclose(layer[schema.POPULATION_VAR_LOG_RATIO].at(2), var_ratio, rtol=1e-4)
        gaps.append(layer[schema.POPULATION_MEAN_GAP].values)
    staleness = run.scalars[schema.SCALAR_MAX_STALENESS]
    assert staleness.steps.tolist() == [0, 1, 2]
    np.testing.assert_allclose(staleness.values, np.max(gaps, axis=0), rtol=1e-6)


def test_callback_reference_every_and_identical_training(tmp_path):
    plain, _ = _fit(tmp_path / "plain")
    inspected, _ = _fit(
        tmp_path / "ref", reference_data=tf.data.Dataset.from_tensor_slices(x_ref()).batch(24), reference_every=2
    )
    for a, b in zip(snapshot(plain), snapshot(inspected)):
        assert a.tobytes() == b.tobytes()
    run = load_logdir(tmp_path / "ref")["."]
    assert run.layers["bn2"][schema.POPULATION_MEAN].steps.tolist() == [0, 2]
    assert run.layers["bn2"]["moving_mean"].steps.tolist() == [0, 1, 2]


def test_callback_rejects_bad_reference_arguments(tmp_path):
    with pytest.raises(ValueError, match="reference_every must be a positive int"):
        BatchNormInspector(tmp_path, reference_data=x_ref(), reference_every=0)
    with pytest.raises(ValueError, match="reference_batch_size must be a positive int"):
        BatchNormInspector(tmp_path, reference_data=x_ref(), reference_batch_size=0)
    keras.utils.set_random_seed(0)
    model = MODEL_BUILDERS["sequential"]()
    model.compile("adam", "mse")
    x, y = make_data()
    with pytest.raises(ValueError, match=r"cannot run on reference_data.*expects \(None, 6\)"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[BatchNormInspector(tmp_path, reference_data=np.zeros((8, 5), "float32"))],
        )
    assert int(model.optimizer.iterations.numpy()) == 0


# --- the callback says what population statistics cost ----------------------------------------
COST_MESSAGE = re.compile(
    r"took ([0-9.]+) s \(2 inference pass\(es\).*\), ([0-9]+)% of a ([0-9.]+) s training epoch, "
    r"every 1 epoch\(s\)\. Pass reference_every=([0-9]+)"
)


def test_callback_names_the_reference_every_that_keeps_population_statistics_cheap(tmp_path, monkeypatch):
    monkeypatch.setattr(callback_module, "POPULATION_COST_FLOOR_SECONDS", 0.0)  # tiny model: no 1 s floor
    told: list[str] = []
    # 6 training steps of 16 samples per epoch against 2 passes over 12000 reference samples
    _fit(tmp_path, epochs=3, told=told, reference_data=make_data(12000, seed=1)[0])
    said = [m for m in told if "reference_every=" in m]
    assert len(said) == 1, told  # once per fit
    match = COST_MESSAGE.search(said[0])
    assert match, said[0]
    cost, epoch = float(match[1]), float(match[3])
    assert int(match[4]) >= 2
    if epoch >= 0.2:  # the figures are printed to 0.1 s: the advice must fit them within that rounding
        share = callback_module.POPULATION_COST_SHARE
        lowest = interval_for_share(max(cost - 0.05, 0.0), epoch + 0.05, share)
        highest = interval_for_share(cost + 0.05, epoch - 0.05, share)
        assert lowest <= int(match[4]) <= highest, (said[0], lowest, highest)
    run = load_logdir(tmp_path)["."]
    assert run.layers["bn1"][schema.POPULATION_MEAN].steps.tolist() == [0, 1, 2, 3]  # advice only


@pytest.mark.parametrize("setting", ["cheap", "already_sparse"])
def test_no_cost_advice_when_population_statistics_are_cheap_or_already_sparse(tmp_path, monkeypatch, setting):
    if setting == "already_sparse":
        monkeypatch.setattr(callback_module, "POPULATION_COST_FLOOR_SECONDS", 0.0)
    told: list[str] = []
    reference_every = 10**6 if setting == "already_sparse" else 1
    _fit(tmp_path, epochs=2, told=told, reference_data=x_ref(), reference_every=reference_every)
    assert not [m for m in told if "reference_every=" in m], told


def test_interval_for_share_is_the_fewest_periods_meeting_the_share():
    for cost, period, share in [
        (25.0, 20.0, 0.1),
        (1.0, 20.0, 0.1),
        (2.0, 10.0, 0.1),
        (0.0, 5.0, 0.1),
        (7.3, 0.9, 0.25),
    ]:
        every = interval_for_share(cost, period, share)
        assert cost / (every * period) <= share + 1e-12
        assert every == 1 or cost / ((every - 1) * period) > share
    with pytest.raises(ValueError, match="period_seconds"):
        interval_for_share(1.0, 0.0, 0.1)


# --- partial passes: the part of the model that feeds the layers a pass fixes ----------------
def _count_calls(layer: keras.layers.Layer, counts: dict) -> None:
    """Shadow ``layer.call`` so each call (traced or eager) counts in ``counts[layer.name]``."""
    original = layer.call

    def call(*args, **kwargs):
        counts[layer.name] = counts.get(layer.name, 0) + 1
        return original(*args, **kwargs)

    object.__setattr__(layer, "call", call)


@pytest.mark.parametrize("builder", sorted(MODEL_BUILDERS))
def test_partial_passes_give_exactly_the_whole_model_passes_statistics(builder):
    keras.utils.set_random_seed(0)
    model = MODEL_BUILDERS[builder]()
    randomise_bn(model)
    x, _ = make_data(101)
    whole = PopulationStatistics(model, x, batch_size=16, partial_passes=False).compute()
    statistics = PopulationStatistics(model, x, batch_size=16)  # built: the whole model ran once
    head = next(layer for layer in model._flatten_layers() if layer.name == "out")
    counts: dict = {}
    _count_calls(head, counts)
    try:
        partial = statistics.compute()
    finally:
        object.__delattr__(head, "call")
    assert list(partial) == list(whole)
    for path in whole:
        np.testing.assert_array_equal(partial[path].mean, whole[path].mean)
        np.testing.assert_array_equal(partial[path].variance, whole[path].variance)
        assert partial[path].count == whole[path].count == 101
    expected = numpy_population(mlp_weights(model), x)
    for path, population in partial.items():
        assert_population_close(population, *expected[path.split("/")[-1]])
    # The layer after the last BN feeds none: functional and Sequential passes never run it;
    # the subclassed model, and the nested model's pass for the BN inside its inner model, do.
    ran_head = counts.get("out", 0) > 0
    assert ran_head == (builder in ("nested", "subclassed")), (builder, counts)
