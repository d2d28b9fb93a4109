"""Routes of the BN Inspect plugin over a logdir written by the real callback, under the Python
loader and the Rust data server. Expected values come from bn_inspect.load_logdir (a separate,
TensorBoard-free reader) and from numpy, never from the plugin's own code."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
from plugin_client import LOADERS, get_json, get_payload, tensorboard_client, wait_until
from plugin_logdirs import CALLBACK_RUNS, FROZEN_LAYER, FROZEN_RUN, NONFINITE_LAYER, REPLICA_RUN, RUNS, STEPS_PER_EPOCH

from bn_inspect import doctor, load_logdir, schema


@pytest.fixture(scope="module")
def logged(plugin_logdir):
    return load_logdir(plugin_logdir)


@pytest.fixture(scope="module", params=LOADERS)
def client(request, plugin_logdir, logged):
    with tensorboard_client(request.param, "--logdir", str(plugin_logdir)) as client:

        def loaded() -> bool:
            runs = get_json(client, "runs")["runs"]
            return [(r["run"], len(r["epochs"])) for r in runs] == [(n, len(logged[n].epochs)) for n in RUNS]

        wait_until(loaded)
        yield client


def query(**params) -> str:
    return urllib.parse.urlencode(params, doseq=True)


def test_plugin_is_listed_and_active(client):
    listing = client.get("/data/plugins_listing").get_json()
    entry = listing[schema.PLUGIN_NAME]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "BN Inspect"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/bn_inspect/index.js"}


def test_runs_overview_matches_the_logs(client, logged):
    answer = get_json(client, "runs")
    assert [run["run"] for run in answer["runs"]] == list(RUNS)
    for run in answer["runs"]:
        if run["run"] not in CALLBACK_RUNS:
            continue
        expected = logged[run["run"]]
        assert run["epochs"] == expected.epochs.tolist() == list(range(7))
        assert [layer["path"] for layer in run["layers"]] == ["bn_1", "bn_2"]
        assert run["config"]["steps_per_epoch"] == STEPS_PER_EPOCH
        gap = expected.model[schema.OUTPUT_GAP].values[-1]
        assert run["output_gap"]["mean_abs"] == pytest.approx(float(gap[0]), rel=1e-6)
        for layer in run["layers"]:
            config = next(c for c in expected.config["layers"] if c["path"] == layer["path"])
            assert layer["config"] == config
            residual = expected.layers[layer["path"]][schema.RESIDUAL_INIT_WEIGHT].values[-1]
            assert layer["last_residual_init_weight"] == pytest.approx(float(residual), rel=1e-6)
            # 6 epochs x 8 steps of momentum 0.99 updates leave 0.99**48 of the initializer.
            assert layer["last_residual_init_weight"] == pytest.approx(0.99**48, rel=1e-5)
    constant = answer["runs"][0]["layers"][0]["config"]
    assert constant["gamma_initializer"] == {"class_name": "Constant", "config": {"value": 0.5}}
    assert answer["runs"][1]["layers"][0]["config"]["gamma_initializer"]["class_name"] == "Ones"


@pytest.mark.parametrize("run", CALLBACK_RUNS)
@pytest.mark.parametrize("layer", ["bn_1", "bn_2"])
def test_series_equal_logged_values_with_numpy_drift(client, logged, run, layer):
    for quantity, series in logged[run].layers[layer].items():
        meta, arrays = get_payload(client, "series?" + query(run=run, layer=layer, quantity=quantity))
        assert meta["steps"] == series.steps.tolist()
        np.testing.assert_array_equal(arrays["values"], series.values)
        np.testing.assert_array_equal(arrays["epochs"], series.steps)
        if series.values.ndim == 2:
            assert meta["channels"] == series.values.shape[1]
            rms_change = np.sqrt(np.mean(np.diff(series.values.astype(np.float64), axis=0) ** 2, axis=1))
            np.testing.assert_allclose(arrays["drift"], np.concatenate([[0.0], rms_change]), rtol=1e-5)


def test_step_zero_holds_the_initializers(client):
    for quantity in schema.VARIABLE_QUANTITIES:
        _, constant = get_payload(client, "series?" + query(run="constant_init", layer="bn_1", quantity=quantity))
        np.testing.assert_array_equal(constant["values"][0], np.full(24, 0.5, np.float32))
    _, default = get_payload(client, "series?" + query(run="default", layer="bn_2", quantity=schema.MOVING_VARIANCE))
    np.testing.assert_array_equal(default["values"][0], np.ones(12, np.float32))


def test_within_epoch_series_on_an_epoch_axis(client, logged):
    expected = logged["default"].batch_layers["bn_1"][schema.MOVING_MEAN]
    route = "series?" + query(run="default", layer="bn_1", quantity=schema.MOVING_MEAN, timeline=schema.TIMELINE_BATCH)
    meta, arrays = get_payload(client, route)
    assert meta["steps"] == expected.steps.tolist() == list(range(4, 49, 4))
    np.testing.assert_array_equal(arrays["values"], expected.values)
    np.testing.assert_allclose(arrays["epochs"], expected.steps / STEPS_PER_EPOCH)


def expected_curve(run, layer: str, quantity: str) -> tuple[list[float], np.ndarray]:
    """Epoch points, plus within-epoch points at global step / steps per epoch where the run
    logged them (an epoch point wins where both exist)."""
    epoch = run.layers[layer][quantity]
    points = {float(s): v for s, v in zip(epoch.steps, epoch.values)}
    batch = run.batch_layers.get(layer, {}).get(quantity)
    if batch is not None:
        for s, v in zip(batch.steps, batch.values):
            points.setdefault(s / STEPS_PER_EPOCH, v)
    x = sorted(points)
    return x, np.stack([points[k] for k in x]).astype(np.float64)


def test_compare_runs_summaries_and_distance(client, logged):
    meta, arrays = get_payload(client, "compare?" + query(run=["default", "constant_init"], layer="bn_1"))
    assert [r["run"] for r in meta["runs"]] == ["default", "constant_init"]
    assert meta["reference"] == "default"
    assert meta["runs"][0]["within_epoch"] and not meta["runs"][1]["within_epoch"]
    for position, name in enumerate(["default", "constant_init"]):
        for quantity in schema.VARIABLE_QUANTITIES:
            x, values = expected_curve(logged[name], "bn_1", quantity)
            prefix = f"{position}/{quantity}"
            np.testing.assert_allclose(arrays[f"{prefix}/x"], x)
            np.testing.assert_allclose(arrays[f"{prefix}/mean"], values.mean(axis=1), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(arrays[f"{prefix}/low"], np.percentile(values, 10, axis=1), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(
                arrays[f"{prefix}/high"], np.percentile(values, 90, axis=1), rtol=1e-5, atol=1e-7
            )
        x, residual = expected_curve(logged[name], "bn_1", schema.RESIDUAL_INIT_WEIGHT)
        np.testing.assert_allclose(arrays[f"{position}/{schema.RESIDUAL_INIT_WEIGHT}/x"], x)
        np.testing.assert_allclose(arrays[f"{position}/{schema.RESIDUAL_INIT_WEIGHT}/y"], residual, rtol=1e-6)
        np.testing.assert_allclose(residual, 0.99 ** (np.array(x) * STEPS_PER_EPOCH), rtol=1e-5)
    assert len(arrays[f"0/{schema.MOVING_MEAN}/x"]) == 13  # 7 epoch ends + 6 mid-epoch points
    for quantity in schema.VARIABLE_QUANTITIES:
        a = logged["default"].layers["bn_1"][quantity].values.astype(np.float64)
        b = logged["constant_init"].layers["bn_1"][quantity].values.astype(np.float64)
        np.testing.assert_allclose(arrays[f"1/{quantity}/distance"], np.sqrt(np.mean((b - a) ** 2, axis=1)), rtol=1e-5)
        np.testing.assert_array_equal(arrays[f"1/{quantity}/distance_x"], np.arange(7))
    # Step 0: default init moving mean 0 vs Constant(0.5): every channel 0.5 apart.
    assert arrays[f"1/{schema.MOVING_MEAN}/distance"][0] == pytest.approx(0.5)


def test_train_vs_inference_modes(client, logged):
    for name in CALLBACK_RUNS:
        meta, arrays = get_payload(client, "modes?" + query(run=name))
        run = logged[name]
        assert meta["layers"] == ["bn_1", "bn_2"]
        assert meta["output_gap_steps"] == run.model[schema.OUTPUT_GAP].steps.tolist()
        np.testing.assert_array_equal(arrays["output_gap"], run.model[schema.OUTPUT_GAP].values)
        outputs = run.model[schema.OUTPUT_TRAINING].values - run.model[schema.OUTPUT_INFERENCE].values
        np.testing.assert_allclose(arrays["output_gap"][:, 0], np.abs(outputs).mean(axis=(1, 2)), rtol=1e-5)
        for quantity in (schema.PROBE_MEAN_GAP, schema.PROBE_VAR_LOG_RATIO):
            assert meta["gap_steps"][quantity] == list(range(7))
            expected = np.stack([run.layers[layer][quantity].values for layer in meta["layers"]])
            np.testing.assert_array_equal(arrays[quantity], expected)


def test_frozen_and_nonfinite_layers_in_runs_overview(client, logged):
    for run in get_json(client, "runs")["runs"]:
        for layer in run["layers"]:
            config = next(c for c in logged[run["run"]].config["layers"] if c["path"] == layer["path"])
            assert layer["frozen"] is (config["trainable"] is False)
            counts = logged[run["run"]].layers[layer["path"]][schema.NONFINITE_CHANNELS]
            steps, values = counts.steps, counts.values.astype(int)
            if values.max() == 0:
                assert layer["nonfinite"] is None
            else:
                expected = {"max": values.max(), "first_step": steps[values > 0][0], "last": values[-1]}
                assert layer["nonfinite"] == expected
    by_run = {run["run"]: {layer["path"]: layer for layer in run["layers"]} for run in get_json(client, "runs")["runs"]}
    assert [path for path, layer in by_run[FROZEN_RUN].items() if layer["frozen"]] == [FROZEN_LAYER]
    assert not any(layer["frozen"] for name in CALLBACK_RUNS for layer in by_run[name].values())
    # The replica run's moving variance: channel 3 NaN from epoch 4, channel 7 negative from 5.
    variance = logged[REPLICA_RUN].layers[NONFINITE_LAYER][schema.MOVING_VARIANCE].values
    bad = np.count_nonzero(~np.isfinite(variance) | (np.nan_to_num(variance) < 0), axis=1)
    assert bad.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert by_run[REPLICA_RUN][NONFINITE_LAYER]["nonfinite"] == {"max": 2, "first_step": 4, "last": 2}


def test_schema_block_names_the_new_quantities(client):
    block = get_json(client, "runs")["schema"]
    assert block["staleness_gaps"] == [schema.POPULATION_MEAN_GAP, schema.POPULATION_VAR_LOG_RATIO]
    assert block["replica_gaps"] == [schema.REPLICA_MEAN_SPREAD_GAP]
    assert block["population_pairs"] == {
        schema.MOVING_MEAN: schema.POPULATION_MEAN,
        schema.MOVING_VARIANCE: schema.POPULATION_VARIANCE,
    }
    assert set(block["replica_spreads"]["mean"]) == {
        schema.REPLICA_BATCH_MEAN_SPREAD,
        schema.REPLICA_MOVING_MEAN_SPREAD,
    }
    assert (block["staleness_scalar"], block["replica_scalar"]) == (
        schema.SCALAR_MAX_STALENESS,
        schema.SCALAR_MAX_REPLICA_SPREAD,
    )


def layer_gap_rows(run, layers: list[str], quantity: str) -> np.ndarray:
    return np.stack([run.layers[layer][quantity].values for layer in layers])


def test_ema_staleness_per_layer_and_epoch(client, logged):
    """Population mean gap of the run trained with reference_data, against the logged values and
    against numpy on the logged population and moving statistics."""
    meta, arrays = get_payload(client, "modes?" + query(run=FROZEN_RUN))
    run = logged[FROZEN_RUN]
    assert meta["frozen"] == [layer == FROZEN_LAYER for layer in meta["layers"]] == [True, False]
    assert meta["replicas"] == 1
    for quantity in (schema.POPULATION_MEAN_GAP, schema.POPULATION_VAR_LOG_RATIO):
        assert meta["gap_steps"][quantity] == run.layers["bn_1"][quantity].steps.tolist() == list(range(7))
        np.testing.assert_array_equal(arrays[quantity], layer_gap_rows(run, meta["layers"], quantity))
        np.testing.assert_array_equal(arrays[f"{quantity}/logged"], np.ones((2, 7)))
    for row, layer in enumerate(meta["layers"]):
        stats_of = run.layers[layer]
        epsilon = next(c["epsilon"] for c in run.config["layers"] if c["path"] == layer)
        population = stats_of[schema.POPULATION_MEAN].values.astype(np.float64)
        moving_mean = stats_of[schema.MOVING_MEAN].values.astype(np.float64)
        moving_variance = stats_of[schema.MOVING_VARIANCE].values.astype(np.float64)
        gap = np.mean(np.abs(population - moving_mean) / np.sqrt(moving_variance + epsilon), axis=1)
        np.testing.assert_allclose(arrays[schema.POPULATION_MEAN_GAP][row], gap, rtol=1e-5)
    # The frozen layer keeps its initializers (0, 1): its staleness is the data's own offset.
    assert arrays[schema.POPULATION_MEAN_GAP][0].min() > 0.5
    scalar = run.scalars[schema.SCALAR_MAX_STALENESS]
    assert meta["scalar_steps"][schema.SCALAR_MAX_STALENESS] == scalar.steps.tolist()
    np.testing.assert_array_equal(arrays[schema.SCALAR_MAX_STALENESS], scalar.values)
    np.testing.assert_allclose(
        arrays[schema.SCALAR_MAX_STALENESS], arrays[schema.POPULATION_MEAN_GAP].max(axis=0), rtol=1e-6
    )
    # The frozen layer measures no probe batch statistics: its probe gaps are logged NaN.
    assert np.isnan(arrays[schema.PROBE_MEAN_GAP][0]).all() and arrays[f"{schema.PROBE_MEAN_GAP}/logged"][0].all()


def test_moving_vs_population_per_channel_at_one_epoch(client, logged):
    meta, arrays = get_payload(client, "layer_step?" + query(run=FROZEN_RUN, layer="bn_2", step=4))
    layer = logged[FROZEN_RUN].layers["bn_2"]
    assert meta["quantity_steps"][schema.POPULATION_MEAN] == layer[schema.POPULATION_MEAN].steps.tolist()
    for quantity in (schema.MOVING_MEAN, schema.MOVING_VARIANCE, schema.POPULATION_MEAN, schema.POPULATION_VARIANCE):
        np.testing.assert_array_equal(arrays[quantity], layer[quantity].at(4))


def test_replica_divergence_per_layer_and_channel(client, logged):
    """Synthetic replica data (see plugin_logdirs.write_replica_run): the routes serve what was
    logged, and the logged spread gap is what numpy computes from the per-channel spreads."""
    meta, arrays = get_payload(client, "modes?" + query(run=REPLICA_RUN))
    run = logged[REPLICA_RUN]
    assert meta["replicas"] == 2 and meta["frozen"] == [False, False]
    np.testing.assert_array_equal(
        arrays[schema.REPLICA_MEAN_SPREAD_GAP], layer_gap_rows(run, meta["layers"], schema.REPLICA_MEAN_SPREAD_GAP)
    )
    for row, layer in enumerate(meta["layers"]):
        spread = run.layers[layer][schema.REPLICA_BATCH_MEAN_SPREAD].values.astype(np.float64)
        variance = run.layers[layer][schema.PROBE_BATCH_VARIANCE].values.astype(np.float64)
        epsilon = next(c["epsilon"] for c in run.config["layers"] if c["path"] == layer)
        np.testing.assert_allclose(
            arrays[schema.REPLICA_MEAN_SPREAD_GAP][row],
            np.mean(spread / np.sqrt(variance + epsilon), axis=1),
            rtol=1e-5,
        )
    scalar = run.scalars[schema.SCALAR_MAX_REPLICA_SPREAD]
    np.testing.assert_array_equal(arrays[schema.SCALAR_MAX_REPLICA_SPREAD], scalar.values)
    np.testing.assert_allclose(scalar.values, arrays[schema.REPLICA_MEAN_SPREAD_GAP].max(axis=0), rtol=1e-6)
    # NaN moving variance from epoch 4: the probe mean gap of that layer is a logged NaN.
    row = meta["layers"].index(NONFINITE_LAYER)
    assert np.isnan(arrays[schema.PROBE_MEAN_GAP][row, 4:]).all()
    assert arrays[f"{schema.PROBE_MEAN_GAP}/logged"][row].all()
    meta, arrays = get_payload(client, "layer_step?" + query(run=REPLICA_RUN, layer="bn_1", step=3))
    for quantities in get_json(client, "runs")["schema"]["replica_spreads"].values():
        for quantity in quantities:
            np.testing.assert_array_equal(arrays[quantity], run.layers["bn_1"][quantity].at(3))
    default, arrays = get_payload(client, "modes?" + query(run="default"))
    assert default["replicas"] == 1 and schema.REPLICA_MEAN_SPREAD_GAP not in arrays
    assert schema.SCALAR_MAX_REPLICA_SPREAD not in arrays and schema.SCALAR_MAX_STALENESS not in arrays


def test_findings_are_the_doctors_on_load_logdir(client, logged):
    """The route builds its RunData through the data provider; bn_inspect.doctor on the
    TensorBoard-free reader's RunData must find exactly the same, figures included."""
    expected = doctor.diagnose(logged)
    answer = get_json(client, "findings")
    assert answer["runs"] == list(RUNS)
    assert answer["findings"] == [finding.to_dict() for finding in expected]
    assert answer["counts"] == doctor.counts(expected) and answer["severities"] == list(doctor.SEVERITIES)
    where = {(f["run"], f["layer"]) for f in answer["findings"]}
    assert {(FROZEN_RUN, FROZEN_LAYER), (REPLICA_RUN, NONFINITE_LAYER)} <= where
    views = get_json(client, "runs")["schema"]["views"]
    assert [view["id"] for view in views] == list(doctor.VIEWS)  # the tab's views, which the findings open
    assert {f["view"] for f in answer["findings"]} <= set(doctor.VIEWS)
    subset = get_json(client, "findings?" + query(run=[REPLICA_RUN, FROZEN_RUN]))
    assert subset["runs"] == [REPLICA_RUN, FROZEN_RUN]
    only = doctor.diagnose({name: logged[name] for name in (REPLICA_RUN, FROZEN_RUN)})
    assert subset["findings"] == [finding.to_dict() for finding in only]


def test_layer_at_one_step(client, logged):
    meta, arrays = get_payload(client, "layer_step?" + query(run="default", layer="bn_2", step=3))
    layer = logged["default"].layers["bn_2"]
    assert meta["steps"] == list(range(7))
    assert set(meta["quantities"]) == {q for q in layer if q in schema.CHANNEL_QUANTITIES}
    for quantity in meta["quantities"]:
        np.testing.assert_array_equal(arrays[quantity], layer[quantity].at(3))


@pytest.mark.parametrize(
    ("route", "status", "mentions"),
    [
        ("series?" + query(run="nope", layer="bn_1", quantity="gamma"), 404, "nope"),
        ("series?" + query(run="default", layer="bn_9", quantity="gamma"), 404, "bn_9"),
        ("series?" + query(run="default", layer="bn_1", quantity="weights"), 404, "weights"),
        ("series?" + query(run="default", layer="bn_1", quantity="gamma", timeline="hourly"), 400, "hourly"),
        ("series?" + query(run="default", layer="bn_1"), 400, "quantity"),
        ("compare?" + query(layer="bn_1"), 400, "run"),
        ("compare?" + query(run=["default", "nope"], layer="bn_1"), 404, "nope"),
        ("compare?" + query(run="default", layer="bn_9"), 404, "bn_9"),
        ("modes?" + query(run="nope"), 404, "nope"),
        ("modes", 400, "run"),
        ("findings?" + query(run=["default", "nope"]), 404, "nope"),
        ("layer_step?" + query(run="default", layer="bn_1", step="three"), 400, "three"),
        ("layer_step?" + query(run="default", layer="bn_1", step=99), 404, "99"),
    ],
)
def test_bad_requests_get_4xx_json(client, route, status, mentions):
    assert mentions in get_json(client, route, status=status)["error"]
