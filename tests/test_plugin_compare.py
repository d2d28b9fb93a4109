"""The plugin's alignment route and the Runs-compared route over an aligned slot, on runs whose
layers carry automatic names (tests/auto_named_logdir.py), under both loaders. Expected values
come from the paths of the layers as built and from bn_inspect.load_logdir with numpy."""

from __future__ import annotations

import urllib.parse

import numpy as np
import pytest
from plugin_client import LOADERS, get_json, get_payload, tensorboard_client, wait_until

from bn_inspect import load_logdir, schema

RUNS = ["init_default", "init_custom", "deeper"]


@pytest.fixture(scope="module", params=LOADERS)
def client(request, auto_named):
    with tensorboard_client(request.param, "--logdir", auto_named["root"]) as client:
        wait_until(lambda: len(get_json(client, "runs")["runs"]) == len(RUNS))
        yield client


def query(**params) -> str:
    return urllib.parse.urlencode(params, doseq=True)


def test_alignment_route_matches_the_layers_built_at_the_same_place(client, auto_named):
    paths = auto_named["paths"]
    answer = get_json(client, "alignment?" + query(run=RUNS))
    assert answer["runs"] == RUNS and answer["match"] == "auto"
    first, second = answer["slots"]
    assert {run: layer["path"] for run, layer in first["layers"].items()} == {run: paths[run][0] for run in RUNS}
    assert first["how"] == "position" and first["description"] == "matched by position"
    assert [first["layers"][run]["how"] for run in RUNS] == ["name", "name", "position"]
    assert first["layers"]["deeper"]["channels"] == 32
    assert list(second["layers"]) == ["deeper"] and second["layers"]["deeper"]["path"] == paths["deeper"][1]
    assert second["how"] == "unmatched" and "1st 8-channel BN layer" in second["why"]

    exact = get_json(client, "alignment?" + query(run=RUNS[:2], match="path"))
    assert [slot["how"] for slot in exact["slots"]] == ["unmatched", "unmatched"]
    assert "no other run has path" in exact["slots"][0]["why"]


def test_alignment_route_refuses_bad_requests(client):
    assert "auto, path, position" in get_json(client, "alignment?" + query(run=RUNS, match="name"), 400)["error"]
    assert "at least one run" in get_json(client, "alignment", 400)["error"]
    assert "nope" in get_json(client, "alignment?" + query(run=["init_default", "nope"]), 404)["error"]


def test_compare_an_aligned_slot_takes_each_runs_own_layer(client, auto_named):
    logged = load_logdir(auto_named["root"])
    paths = [auto_named["paths"][run][0] for run in RUNS]
    meta, arrays = get_payload(client, "compare?" + "&".join(query(run=r, layer=p) for r, p in zip(RUNS, paths)))
    assert [(r["run"], r["layer"], r["has_layer"]) for r in meta["runs"]] == [(r, p, True) for r, p in zip(RUNS, paths)]
    assert meta["reference"] == "init_default"
    for position, (run, path) in enumerate(zip(RUNS, paths)):
        moving_mean = logged[run].layers[path][schema.MOVING_MEAN]
        np.testing.assert_allclose(arrays[f"{position}/{schema.MOVING_MEAN}/x"], moving_mean.steps)
        np.testing.assert_allclose(
            arrays[f"{position}/{schema.MOVING_MEAN}/mean"], moving_mean.values.mean(axis=1), rtol=1e-5, atol=1e-7
        )
    reference = logged["init_default"].layers[paths[0]][schema.MOVING_MEAN].values
    custom = logged["init_custom"].layers[paths[1]][schema.MOVING_MEAN].values
    np.testing.assert_allclose(
        arrays[f"1/{schema.MOVING_MEAN}/distance"], np.sqrt(np.mean((custom - reference) ** 2, axis=1)), rtol=1e-5
    )
    # The initializers differ by 0.5 at epoch 0 (Constant(0.5) vs Zeros) on every channel.
    assert arrays[f"1/{schema.MOVING_MEAN}/distance"][0] == pytest.approx(0.5)


def test_compare_needs_one_layer_or_one_per_run(client, auto_named):
    layers = auto_named["paths"]["deeper"]
    error = get_json(client, "compare?" + query(run=RUNS, layer=layers), 400)["error"]
    assert "one per run (3)" in error
    meta, _ = get_payload(client, "compare?" + query(run=RUNS, layer=layers[1]))  # one path for all: deeper only
    assert [r["has_layer"] for r in meta["runs"]] == [False, False, True] and meta["reference"] == "deeper"


def test_findings_route_groups_a_finding_of_every_run_on_one_slot(client, auto_named):
    """Every auto-named run's initializers dominate its first layer (8 updates at momentum 0.99):
    one group of the three runs, each with its own path; with exact paths, three groups."""
    paths = auto_named["paths"]
    answer = get_json(client, "findings?" + query(run=RUNS))
    dominant = [g for g in answer["groups"] if g["id"] == "initializer_dominant"]
    assert len(dominant) == 1 and dominant[0]["runs"] == RUNS
    assert dominant[0]["layers"] == {run: paths[run][0] for run in RUNS}
    assert [answer["findings"][i]["run"] for i in dominant[0]["findings"]] == RUNS
    assert sorted(i for g in answer["groups"] for i in g["findings"]) == list(range(len(answer["findings"])))
    exact = get_json(client, "findings?" + query(run=RUNS, match="path"))
    assert exact["findings"] == answer["findings"]
    assert [g["runs"] for g in exact["groups"] if g["id"] == "initializer_dominant"] == [[run] for run in RUNS]
    assert "auto, path, position" in get_json(client, "findings?" + query(run=RUNS, match="name"), 400)["error"]
