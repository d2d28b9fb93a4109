"""The plugin inside TensorBoard: retention of every epoch under both loaders, flags, several
experiments side by side, static files, the entry point and light imports."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import shutil
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from plugin_client import LOADERS, ROUTE, configure, get_json, get_payload, tensorboard_client, wait_until
from plugin_logdirs import LONG_RUN_EPOCHS, LONG_RUN_LAYER, REPEATED_STEP, RUNS, long_run_values, write_long_run
from tensorboard.context import RequestContext

import tb_plugin
from bn_inspect import load_logdir, schema
from tb_plugin.loader import BNInspectLoader

ALL_STEPS = list(range(LONG_RUN_EPOCHS + 1))
LONG_SERIES = "series?" + urllib.parse.urlencode(
    {"run": "long", "layer": LONG_RUN_LAYER, "quantity": schema.MOVING_MEAN}
)


@pytest.fixture(scope="module")
def long_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_logdir")
    write_long_run(root / "long")
    return root


@pytest.mark.parametrize("loader", LOADERS)
def test_every_one_of_150_epochs_is_served_and_repeats_keep_the_last(loader, long_logdir):
    with tensorboard_client(loader, "--logdir", str(long_logdir)) as client:
        wait_until(
            lambda: get_json(client, "runs")["runs"] and get_json(client, "runs")["runs"][0]["epochs"] == ALL_STEPS
        )
        meta, arrays = get_payload(client, LONG_SERIES)
    assert meta["steps"] == ALL_STEPS
    np.testing.assert_array_equal(arrays["values"], np.stack([long_run_values(s) for s in ALL_STEPS]))
    assert arrays["values"][REPEATED_STEP].tolist() == pytest.approx(long_run_values(REPEATED_STEP).tolist())
    reader = load_logdir(long_logdir)["long"].layers[LONG_RUN_LAYER][schema.MOVING_MEAN]
    np.testing.assert_array_equal(arrays["values"], reader.values)  # same dedupe as the reader


def test_tensorboard_alone_would_drop_epochs(long_logdir):
    """Control: TensorBoard's default retention for an unknown plugin keeps a sample only."""
    flags, _ = configure("--logdir", str(long_logdir))
    assert flags.samples_per_plugin[schema.PLUGIN_NAME] == 0
    flags.samples_per_plugin = {}
    from tensorboard.backend.event_processing import data_ingester

    ingester = data_ingester.LocalDataIngester(flags)
    ingester.start()
    data = ingester.data_provider.read_tensors(
        RequestContext(), experiment_id="", plugin_name=schema.PLUGIN_NAME, downsample=10**6
    )
    assert 0 < len(next(iter(data["long"].values()))) < LONG_RUN_EPOCHS


def test_an_explicit_samples_per_plugin_is_kept(long_logdir):
    flags, _ = configure("--logdir", str(long_logdir), "--samples_per_plugin", "images=3,bn_inspect=7")
    assert flags.samples_per_plugin == {"images": 3, schema.PLUGIN_NAME: 7}
    with tensorboard_client("python", "--logdir", str(long_logdir), "--samples_per_plugin", "bn_inspect=7") as client:
        meta, _ = get_payload(client, LONG_SERIES)
    assert len(meta["steps"]) == 7 and meta["steps"][-1] == LONG_RUN_EPOCHS


def test_samples_per_plugin_given_as_text_to_configure():
    flags = type("Flags", (), {"samples_per_plugin": "scalars=500, images=2"})()
    BNInspectLoader().fix_flags(flags)
    assert flags.samples_per_plugin == {"scalars": 500, "images": 2, schema.PLUGIN_NAME: 0}


def test_runs_of_two_experiments_side_by_side(plugin_logdir, tmp_path):
    """``--logdir_spec a:dir1,b:dir2``: runs are named "<experiment>/<run>" and comparable."""
    shutil.copytree(plugin_logdir / "default", tmp_path / "default")
    logged = load_logdir(plugin_logdir)
    with tensorboard_client("python", "--logdir_spec", f"a:{plugin_logdir},b:{tmp_path}") as client:
        assert [run["run"] for run in get_json(client, "runs")["runs"]] == [f"a/{run}" for run in RUNS] + ["b/default"]
        query = urllib.parse.urlencode({"run": ["b/default", "a/constant_init"], "layer": "bn_1"}, doseq=True)
        meta, arrays = get_payload(client, "compare?" + query)
    assert meta["reference"] == "b/default"
    a = logged["default"].layers["bn_1"][schema.GAMMA].values.astype(np.float64)
    b = logged["constant_init"].layers["bn_1"][schema.GAMMA].values.astype(np.float64)
    np.testing.assert_allclose(arrays[f"1/{schema.GAMMA}/distance"], np.sqrt(np.mean((b - a) ** 2, axis=1)), rtol=1e-5)


def test_empty_logdir_lists_the_plugin_inactive_with_no_runs(tmp_path):
    with tensorboard_client("python", "--logdir", str(tmp_path)) as client:
        assert client.get("/data/plugins_listing").get_json()[schema.PLUGIN_NAME]["enabled"] is False
        assert get_json(client, "runs")["runs"] == []


@pytest.fixture(scope="module")
def static_client(tmp_path_factory):
    with tensorboard_client("python", "--logdir", str(tmp_path_factory.mktemp("empty"))) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("index.js", "text/javascript"),
        ("style.css", "text/css"),
        ("vendor/uplot/uPlot.esm.js", "text/javascript"),
        ("vendor/uplot/LICENSE", "text/plain"),
    ],
)
def test_static_files_come_from_the_package(static_client, path, content_type):
    response = static_client.get(ROUTE + path)
    assert response.status_code == 200
    assert response.mimetype == content_type
    packaged = importlib.resources.files(tb_plugin).joinpath("static", *path.split("/")).read_bytes()
    assert response.get_data() == packaged


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../plugin.py", 400),
        ("vendor/../../loader.py", 400),
        ("%2e%2e/plugin.py", 400),
        ("/etc/passwd", 400),
        ("vendor\\..\\..\\plugin.py", 400),
        ("missing.js", 404),
        ("vendor/uplot", 404),
    ],
)
def test_static_paths_outside_the_package_are_refused(static_client, path, status):
    response = static_client.get(ROUTE + path)
    assert response.status_code == status
    assert "error" in response.get_json()


def test_entry_point_loads_the_loader():
    (entry,) = [e for e in importlib.metadata.entry_points(group="tensorboard_plugins") if e.name == schema.PLUGIN_NAME]
    assert entry.load() is BNInspectLoader


def test_plugin_modules_import_neither_tensorflow_nor_keras():
    code = "import sys, tb_plugin.loader, tb_plugin.plugin; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_routes_work_under_a_path_prefix(plugin_logdir):
    with tensorboard_client("python", "--logdir", str(plugin_logdir), "--path_prefix", "/tb") as client:
        assert client.get("/tb" + ROUTE + "index.js").status_code == 200
        assert [run["run"] for run in client.get("/tb" + ROUTE + "runs").get_json()["runs"]] == list(RUNS)
