"""Logs of every data-contract version (v1, v2 from the project's history under
tests/fixtures/, v3 written now by the same script) read by the reader, the CLI, the plugin's
routes under both loaders, and tbparse. Expected values are the BN variables a plain Keras
callback recorded during the same fits (``expected.npz``)."""

from __future__ import annotations

import shutil
import sys
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from plugin_client import LOADERS, get_json, get_payload, tensorboard_client, wait_until

from bn_inspect import load_logdir, schema
from bn_inspect.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
VERSIONS = ("v1", "v2", "v3")
LAYERS = ("bn_1", "bn_2")
RUN = "mlp"


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """Version -> directory holding ``logdir/mlp`` and ``expected.npz`` (v3 written by a real fit now)."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import write_logdir
    finally:
        sys.path.remove(str(FIXTURES))
    v3 = tmp_path_factory.mktemp("v3")
    write_logdir.main(v3)
    return {"v1": FIXTURES / "v1", "v2": FIXTURES / "v2", "v3": v3}


def expected_variables(directory: Path) -> dict[tuple[str, str, int], np.ndarray]:
    """(layer, variable, step) -> the values a Keras callback saw."""
    with np.load(directory / "expected.npz") as stored:
        return {(k.split("/")[0], k.split("/")[1], int(k.split("/")[2])): stored[k] for k in stored.files}


@pytest.mark.parametrize("version", VERSIONS)
def test_reader_gives_the_layers_variables(versions, version):
    run = load_logdir(versions[version] / "logdir")[RUN]
    expected = expected_variables(versions[version])
    assert {step for _, _, step in expected} == set(range(6))
    for (layer, variable, step), values in expected.items():
        np.testing.assert_array_equal(run.layers[layer][variable].at(step), values)
    assert schema.BETA not in run.layers["bn_2"]  # center=False
    assert run.config["schema_version"] == int(version[1])
    assert [step for step, _ in run.configs] == [0, 3]


def _largest_difference(expected: dict, layer: str, step: int, reference) -> float:
    """max over channels and both moving statistics of |value - reference|, in float64."""
    return max(
        float(np.max(np.abs(expected[(layer, name, step)].astype(np.float64) - reference(name))))
        for name in (schema.MOVING_MEAN, schema.MOVING_VARIANCE)
    )


def test_moving_figures_are_the_changes_the_variables_show(versions):
    """v3 logs per layer the largest change of its moving statistics since the fit's first step
    (fits start at steps 0 and 3 here; step 3 is written last by the second fit's start) and
    their largest distance from the initializers' constants (Keras' Zeros and Ones): both
    computed here from the variables a Keras callback saw."""
    run = load_logdir(versions["v3"] / "logdir")[RUN]
    expected = expected_variables(versions["v3"])
    initial = {schema.MOVING_MEAN: 0.0, schema.MOVING_VARIANCE: 1.0}
    for layer in LAYERS:
        change, distance = run.layers[layer][schema.MOVING_CHANGE], run.layers[layer][schema.INIT_DISTANCE]
        assert change.steps.tolist() == distance.steps.tolist() == list(range(6))
        for step in range(6):
            start = 3 if step >= 3 else 0
            since_start = _largest_difference(
                expected, layer, step, lambda name, s=start, at=layer: expected[(at, name, s)]
            )
            assert float(change.values[step]) == pytest.approx(since_start, rel=1e-6, abs=0.0)
            from_init = _largest_difference(expected, layer, step, lambda name: initial[name])
            assert float(distance.values[step]) == pytest.approx(from_init, rel=1e-6, abs=0.0)
        assert float(change.values[0]) == float(change.values[3]) == float(distance.values[0]) == 0.0
        assert float(change.values[5]) > 0.0 and float(distance.values[5]) > 0.0


def test_every_version_holds_the_same_series(versions):
    """The same fits logged by v1, v2 and v3 writers read back as the same series and steps,
    with equal values (the probe and population statistics too, not only the variables)."""
    runs = {version: load_logdir(directory / "logdir")[RUN] for version, directory in versions.items()}
    reference = runs["v3"]
    for version in ("v1", "v2"):
        run = runs[version]
        for group, other in ((run.layers, reference.layers), (run.batch_layers, reference.batch_layers)):
            assert {(layer, q) for layer in group for q in group[layer]} == {
                (layer, q)
                for layer in other
                for q in other[layer]
                if q not in (schema.MOVING_CHANGE, schema.INIT_DISTANCE)  # new in v3
            }
            for layer, quantities in group.items():
                for quantity, series in quantities.items():
                    assert series.steps.tolist() == other[layer][quantity].steps.tolist()
                    np.testing.assert_allclose(series.values, other[layer][quantity].values, rtol=1e-5, atol=1e-6)
        assert set(run.model) == set(reference.model) == set(schema.MODEL_QUANTITIES)
        for quantity, series in run.model.items():
            np.testing.assert_allclose(series.values, reference.model[quantity].values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_reads_every_version(versions, version, capsys, tmp_path):
    logs = str(versions[version] / "logdir")
    assert main(["summary", logs, "--layers"]) == 0
    out = capsys.readouterr().out
    assert RUN in out and "bn_1" in out and "bn_2" in out
    assert main(["doctor", logs]) in (0, 1)
    assert RUN in capsys.readouterr().out
    table = tmp_path / "table.csv"
    assert main(["export", logs, "-o", str(table)]) == 0
    import pandas as pd

    frame = pd.read_csv(table)
    rows = frame[(frame.layer == "bn_1") & (frame.quantity == schema.MOVING_MEAN) & (frame.step == 5)]
    expected = expected_variables(versions[version])[("bn_1", schema.MOVING_MEAN, 5)]
    np.testing.assert_allclose(rows.sort_values("channel").value.to_numpy(), expected, rtol=1e-6)


@pytest.fixture(scope="module", params=LOADERS)
def client(request, versions, tmp_path_factory):
    """TensorBoard over one logdir holding the run of every version as ``<version>/mlp``."""
    logdir = tmp_path_factory.mktemp("all_versions")
    for version, directory in versions.items():
        shutil.copytree(directory / "logdir" / RUN, logdir / version / RUN)
    with tensorboard_client(request.param, "--logdir", str(logdir)) as client:
        wait_until(lambda: len(get_json(client, "runs")["runs"]) == len(VERSIONS))
        yield client


def test_plugin_routes_read_every_version(client, versions):
    runs = {run["run"]: run for run in get_json(client, "runs")["runs"]}
    assert sorted(runs) == [f"{version}/{RUN}" for version in VERSIONS]
    for version in VERSIONS:
        run = f"{version}/{RUN}"
        assert [layer["path"] for layer in runs[run]["layers"]] == list(LAYERS)
        for (layer, variable, step), values in expected_variables(versions[version]).items():
            query = urllib.parse.urlencode({"run": run, "layer": layer, "quantity": variable})
            meta, arrays = get_payload(client, "series?" + query)
            np.testing.assert_array_equal(arrays["values"][meta["steps"].index(step)], values)
        _, modes = get_payload(client, "modes?" + urllib.parse.urlencode({"run": run}))
        assert modes
    every = [f"{version}/{RUN}" for version in VERSIONS]
    compared, _ = get_payload(client, "compare?" + urllib.parse.urlencode({"run": every, "layer": "bn_1"}, doseq=True))
    assert compared
    findings = get_json(client, "findings")
    assert {finding["run"] for finding in findings["findings"]} <= set(every)


def test_tbparse_finds_each_layer_by_its_path(versions):
    """A third-party reader sees readable tags: each layer's variables under a tag holding its
    path, rows in the group's order (docs/data-contract.md)."""
    from tbparse import SummaryReader

    tensors = SummaryReader(str(versions["v3"] / "logdir" / RUN), pivot=False).tensors
    expected = expected_variables(versions["v3"])
    for layer in LAYERS:
        (tag,) = {tag for tag in tensors.tag if f"/{layer}/variables" in tag and not tag.endswith("/batch")}
        rows = [q for q in schema.VARIABLE_QUANTITIES if (layer, q, 0) in expected]
        for step in range(6):
            value = np.asarray(tensors[(tensors.tag == tag) & (tensors.step == step)].value.iloc[-1])
            np.testing.assert_array_equal(value, np.stack([expected[(layer, q, step)] for q in rows]))


def test_notebook_view_reads_every_version(versions, tmp_path):
    """The widget's kernel side (bn_inspect.notebook's provider over the project's reader)
    answers the tab's routes on every version's logs with the layers' variables."""
    from plugin_client import decode

    from bn_inspect.notebook.logdir_provider import LogdirProvider
    from tb_plugin import routes
    from tb_plugin.provider_reader import ProviderReader
    from tb_plugin.read_cache import ReaderCache

    for version, directory in versions.items():
        shutil.copytree(directory / "logdir" / RUN, tmp_path / version / RUN)
    reader = ProviderReader(LogdirProvider(tmp_path), None, "", ReaderCache())
    runs = {run["run"]: run for run in routes.answer("runs", reader, routes.Params([])).json["runs"]}
    assert sorted(runs) == [f"{version}/{RUN}" for version in VERSIONS]
    for version in VERSIONS:
        run = f"{version}/{RUN}"
        assert [layer["path"] for layer in runs[run]["layers"]] == list(LAYERS)
        for (layer, variable, step), values in expected_variables(versions[version]).items():
            params = routes.Params([("run", run), ("layer", layer), ("quantity", variable)])
            meta, arrays = decode(routes.answer("series", reader, params).binary)
            np.testing.assert_array_equal(arrays["values"][meta["steps"].index(step)], values)
