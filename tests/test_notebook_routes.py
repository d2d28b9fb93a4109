"""The notebook widget's answers come from bn_inspect.notebook.LogdirProvider (the project's
event reader); the tab's come from TensorBoard's own loader. Every route must answer the same:
the reference side here is TensorBoard's EventMultiplexer, read over HTTP."""

from __future__ import annotations

import shutil
import urllib.parse

import numpy as np
import pytest
from plugin_client import ROUTE, decode, tensorboard_client, wait_until
from plugin_logdirs import FROZEN_LAYER, NONFINITE_LAYER, REPLICA_RUN, RUNS

import bn_inspect
from bn_inspect import load_logdir, schema
from bn_inspect.notebook.logdir_provider import LogdirProvider
from bn_inspect.writer import SummaryWriter
from tb_plugin import routes
from tb_plugin.errors import RouteError
from tb_plugin.provider_reader import ProviderReader
from tb_plugin.read_cache import ReaderCache


@pytest.fixture(scope="module")
def http(plugin_logdir):
    with tensorboard_client("python", "--logdir", str(plugin_logdir)) as client:
        wait_until(lambda: len(client.get(ROUTE + "runs").json["runs"]) == len(RUNS))
        yield client


@pytest.fixture(scope="module")
def kernel(plugin_logdir):
    return ProviderReader(LogdirProvider(plugin_logdir), None, "", ReaderCache())


def requests(logdir) -> list[tuple[str, list[tuple[str, str]]]]:
    """A request of every route for every run and layer of the logdir."""
    runs = load_logdir(logdir)
    asked = [("runs", []), ("findings", []), ("findings", [("run", "default"), ("run", REPLICA_RUN)])]
    for name, run in runs.items():
        asked.append(("modes", [("run", name)]))
        for layer, quantities in run.layers.items():
            step = int(run.epochs[-1])
            asked.append(("layer_step", [("run", name), ("layer", layer), ("step", str(step))]))
            for quantity in quantities:
                asked.append(("series", [("run", name), ("layer", layer), ("quantity", quantity)]))
        for layer, quantities in run.batch_layers.items():
            for quantity in quantities:
                asked.append(
                    ("series", [("run", name), ("layer", layer), ("quantity", quantity), ("timeline", "batch")])
                )
    for layer in {FROZEN_LAYER, NONFINITE_LAYER}:
        asked.append(("compare", [("run", name) for name in RUNS] + [("layer", layer)]))
    return asked


def test_every_route_answers_as_under_tensorboards_loader(http, kernel, plugin_logdir):
    asked = requests(plugin_logdir)
    assert len(asked) > 40
    for route, params in asked:
        response = http.get(ROUTE + route + "?" + urllib.parse.urlencode(params))
        assert response.status_code == 200, (route, params, response.data[:200])
        answer = routes.answer(route, kernel, routes.Params(params))
        if answer.binary is None:
            assert answer.json == response.json, (route, params)
            continue
        meta, arrays = decode(answer.binary)
        expected_meta, expected_arrays = decode(response.data)
        assert meta == expected_meta, (route, params)
        assert arrays.keys() == expected_arrays.keys(), (route, params)
        for name, values in arrays.items():
            np.testing.assert_array_equal(values, expected_arrays[name], err_msg=f"{route} {params} {name}")


@pytest.mark.parametrize(
    ("route", "params", "status"),
    [
        ("series", [("run", "nope"), ("layer", "bn_1"), ("quantity", "gamma")], 404),
        ("layer_step", [("run", "default"), ("layer", "bn_1"), ("step", "three")], 400),
        ("modes", [], 400),
        ("weights", [], 404),
    ],
)
def test_refused_requests_raise_the_same_error_as_over_http(http, kernel, route, params, status):
    response = http.get(ROUTE + route + "?" + urllib.parse.urlencode(params))
    with pytest.raises(RouteError) as raised:
        routes.answer(route, kernel, routes.Params(params))
    assert raised.value.status == status
    if route in routes.ROUTES:
        assert response.status_code == status
        assert str(raised.value) == response.json["error"]


def test_reload_sees_new_runs_and_new_epochs_and_rereads_only_changed_files(plugin_logdir, tmp_path):
    logdir = tmp_path / "logs"
    shutil.copytree(plugin_logdir / "default", logdir / "default")
    provider = LogdirProvider(logdir)
    reader = ProviderReader(provider, None, "", ReaderCache())
    assert [run["run"] for run in routes.answer("runs", reader, routes.Params([])).json["runs"]] == ["default"]
    first_logs = dict(provider._files)

    shutil.copytree(plugin_logdir / "frozen", logdir / "frozen")
    provider.reload()
    runs = routes.answer("runs", reader, routes.Params([])).json["runs"]
    assert [run["run"] for run in runs] == ["default", "frozen"]
    assert all(provider._files[path] is log for path, log in first_logs.items())  # unchanged: not re-read
    assert runs[1]["epochs"] == load_logdir(logdir)["frozen"].epochs.tolist()


def test_a_missing_logdir_is_named_in_the_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        LogdirProvider(tmp_path / "no-such-dir")


def test_reload_sees_the_epochs_a_running_fit_appends(tmp_path):
    """A file that grows (a fit still writing) is read again when the widget's Reload asks the
    runs route; its new epochs show, equal to what the writer wrote."""
    writer = SummaryWriter(tmp_path / "live")
    written = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    params = [("run", "live"), ("layer", "bn"), ("quantity", schema.MOVING_MEAN)]
    widget = None
    for first, last in ((0, 2), (2, 5)):
        for step in range(first, last):
            writer.add_layer("bn", schema.MOVING_MEAN, written[step])
            writer.write_step(step)
        widget = widget or bn_inspect.show(tmp_path)
        assert [run["run"] for run in widget.answer(routes.RELOAD_ROUTE, []).json["runs"]] == ["live"]
        meta, arrays = decode(widget.answer("series", params).binary)
        assert meta["steps"] == list(range(last))
        np.testing.assert_array_equal(arrays["values"], written[:last])
    writer.close()
