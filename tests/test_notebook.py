"""bn_inspect.show / bn_inspect.diagnose without a browser: bad input, the HTML displays (escaped,
checked against the findings and numpy), and examples/notebook.ipynb executed by nbclient in a
real kernel. The widget drawing in a real JupyterLab is tested in test_jupyterlab.py."""

from __future__ import annotations

import html.parser
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from plugin_logdirs import RUNS

import bn_inspect
from bn_inspect import doctor, load_logdir

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook.ipynb"
HOSTILE_RUN = "<img src=x onerror=alert(1)>"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class _Tables(html.parser.HTMLParser):
    """The text of every cell of every table row, as a browser would show it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(markup: str) -> _Tables:
    parser = _Tables()
    parser.feed(markup)
    return parser


@pytest.fixture(scope="module")
def hostile_logdir(plugin_logdir, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    shutil.copytree(plugin_logdir / "frozen", root / HOSTILE_RUN)
    shutil.copytree(plugin_logdir / "default", root / "default")
    return root


def test_a_missing_logdir_raises_naming_it(tmp_path):
    missing = tmp_path / "no-such-logs"
    for call in (bn_inspect.show, bn_inspect.diagnose):
        with pytest.raises(FileNotFoundError, match="no-such-logs"):
            call(missing)


def test_unknown_view_or_run_names_the_choices(plugin_logdir):
    with pytest.raises(ValueError, match="'modes'"):
        bn_inspect.show(plugin_logdir, view="histograms")
    with pytest.raises(ValueError, match=r"'nope'.*'constant_init'"):
        bn_inspect.show(plugin_logdir, runs=["default", "nope"])


def test_a_logdir_without_bn_inspect_data_answers_no_runs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("no event files here")
    widget = bn_inspect.show(tmp_path)
    assert widget.answer("runs", []).json["runs"] == []
    assert len(bn_inspect.diagnose(tmp_path)) == 0
    assert "No findings" in bn_inspect.diagnose(tmp_path)._repr_html_()


def test_the_widget_sends_the_tabs_modules_and_answers_its_routes(plugin_logdir):
    widget = bn_inspect.show(plugin_logdir, runs=["default"], view="epochs")
    static = Path(bn_inspect.__file__).resolve().parents[1] / "tb_plugin" / "static"
    expected = {p.relative_to(static).as_posix() for p in static.rglob("*") if p.suffix in (".js", ".css")}
    assert set(widget._sources) == expected
    assert widget._sources["index.js"] == (static / "index.js").read_text()
    assert widget._options == {"view": "epochs", "runs": ["default"]}
    assert [run["run"] for run in widget.answer("runs", []).json["runs"]] == list(RUNS)
    logged = load_logdir(plugin_logdir)["default"].layers["bn_1"]["gamma"]
    body = widget.answer("series", [["run", "default"], ["layer", "bn_1"], ["quantity", "gamma"]]).binary
    header = int.from_bytes(body[:4], "little")
    values = np.frombuffer(body[4 + header :], "<f4", count=logged.values.size).reshape(logged.values.shape)
    np.testing.assert_array_equal(values, logged.values)


def test_findings_table_lists_every_finding_with_names_as_text(hostile_logdir):
    findings = bn_inspect.diagnose(hostile_logdir)
    assert isinstance(findings, tuple) and all(isinstance(f, doctor.Finding) for f in findings)
    expected = doctor.diagnose(load_logdir(hostile_logdir))
    assert [f.id for f in findings] == [f.id for f in expected] and any(f.run == HOSTILE_RUN for f in expected)
    parsed = tables(findings._repr_html_())
    assert "img" not in parsed.tags
    header, *rows = parsed.rows
    assert header == ["severity", "run", "layer", "what", "fix"]
    assert [row[:3] for row in rows] == [[f.severity, f.run, f.layer or "-"] for f in expected]
    assert all(row[3].startswith(f.title) and row[4] == f.fix for row, f in zip(rows, expected))
    assert str(findings).startswith("run ")  # the CLI's text report


def test_a_loaded_run_shows_a_summary_table(hostile_logdir):
    run = load_logdir(hostile_logdir)[HOSTILE_RUN]
    parsed = tables(run._repr_html_())
    assert "img" not in parsed.tags
    header, *rows = parsed.rows
    config = {entry["path"]: entry for entry in run.config["layers"]}
    assert [row[0] for row in rows] == list(run.layers)
    for row in rows:
        layer = run.layers[row[0]]
        updates = int(layer["updates"].values[-1])
        assert row[header.index("channels")] == str(config[row[0]]["channels"])
        assert row[header.index("updates")] == str(updates)
        expected_weight = config[row[0]]["momentum"] ** updates if config[row[0]]["trainable"] else 1.0
        assert float(row[header.index("initializer weight")]) == pytest.approx(expected_weight, rel=1e-3)


def test_the_example_notebook_runs_and_displays_the_widget_and_findings(tmp_path):
    notebook = nbformat.read(EXAMPLE, as_version=4)
    (parameters,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    logdir = tmp_path / "logs"
    parameters.source = f"LOG_DIR = {str(logdir)!r}\nEPOCHS = (1, 2)\nSAMPLES = 128"
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    runs = load_logdir(logdir)
    assert sorted(runs) == ["epochs/1", "epochs/2", "initializers/constant_0.5", "initializers/default"]
    results = [output for output in outputs if output.output_type == "execute_result"]
    widget, findings_html, findings_tuple, summary = results
    assert WIDGET_MIME in widget.data
    state = notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    shown = state[widget.data[WIDGET_MIME]["model_id"]]["state"]
    assert shown["_options"] == {"view": "compare"} and "index.js" in shown["_sources"]

    # 128 samples, batch 32: 4 steps per epoch, so 0.99**4 of every initializer is left after epoch 1
    found = [row for row in tables(findings_html.data["text/html"]).rows[1:]]
    dominant = [row for row in found if row[0] == "error" and "initializer" in row[3].lower()]
    assert {row[1] for row in dominant} == set(runs)
    assert "('error', 'epochs/1'," in findings_tuple.data["text/plain"]
    assert "batch_size 32" in summary.data["text/html"]
    header, *rows = tables(summary.data["text/html"]).rows
    (bn,) = rows
    assert bn[0] == "bn" and bn[header.index("updates")] == "4"
    assert float(bn[header.index("initializer weight")]) == pytest.approx(0.99**4, rel=1e-3)
