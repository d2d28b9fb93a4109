"""bn_inspect.show in a real JupyterLab (a subprocess, once per session) driven by Debian's
Chromium: the widget draws the tab's four views from the kernel's answers, the empty state for
a logdir without bn-inspect data, a hostile run name as text, and Reload picks up a run added
after the first draw. Saves a screenshot of the widget (BN_INSPECT_NOTEBOOK_SCREENSHOT)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import Locator, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from plugin_logdirs import FROZEN_LAYER, RUNS

from bn_inspect import load_logdir, schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from local_tensorboard import free_port, launch_chromium, stop, wait_for_server, watched_page

HOSTILE_RUN = "<img src=x onerror=alert(1)>"
SCREENSHOT = Path(
    os.environ.get(
        "BN_INSPECT_NOTEBOOK_SCREENSHOT", Path(tempfile.gettempdir()) / "bn-inspect-screenshots" / "notebook.png"
    )
)
VIEWPORT = {"width": 1400, "height": 1000}
NO_NEWS = {  # JupyterLab settings: no news or update toasts over the notebook
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}
}


def wait_for_lab(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until JupyterLab at ``url`` answers its status API."""
    wait_for_server(f"{url}/api/status", process, lambda body: True, timeout)


@pytest.fixture(scope="session")
def lab_root(plugin_logdir, tmp_path_factory):
    """JupyterLab's root: ``logs`` (the plugin's test runs), ``empty`` (no event files) and
    ``widget.ipynb``, which shows both."""
    root = tmp_path_factory.mktemp("lab")
    for run in RUNS:
        shutil.copytree(plugin_logdir / run, root / "logs" / run)
    (root / "empty" / "run").mkdir(parents=True)
    notebook = new_notebook(
        cells=[
            new_code_cell('import bn_inspect\n\nbn_inspect.show("empty")'),
            new_code_cell('bn_inspect.show("logs")'),
        ],
        metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
    )
    nbformat.write(notebook, root / "widget.ipynb")
    return root


@pytest.fixture(scope="session")
def lab_url(lab_root, tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    for name, settings in NO_NEWS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    port = free_port()
    command = [
        *(sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"),
        *("--ServerApp.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={lab_root}"),
    ]
    with (home / "lab.log").open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_lab(url, process)
            yield url
        finally:
            stop(process)


@pytest.fixture(scope="module")
def page(lab_url):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = watched_page(browser, VIEWPORT)
        page.goto(f"{lab_url}/lab/tree/widget.ipynb")
        yield page
        browser.close()


def wait_for_kernel(url: str, timeout: float = 120.0) -> None:
    """Until the notebook's kernel has started and is idle (JupyterLab's sessions API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions", timeout=5) as response:
            sessions = json.loads(response.read())
        if any(session["kernel"]["execution_state"] == "idle" for session in sessions):
            return
        time.sleep(0.3)
    raise AssertionError("the notebook's kernel did not start in time")


@pytest.fixture(scope="module")
def widgets(page, lab_url) -> tuple[Locator, Locator]:
    """Run both cells; the widget of each (the tab inside its shadow root: Playwright's CSS
    selectors pierce it)."""
    cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    cells.first.wait_for(timeout=60000)
    wait_for_kernel(lab_url)
    started = re.compile(r"\[(\*|\d+)\]")  # the prompt of a cell queued, running or run
    for _ in range(5):  # keys typed before the page has connected to the kernel do nothing
        cells.first.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        try:
            cells.nth(1).locator(".jp-InputPrompt", has_text=started).wait_for(timeout=5000)
            break
        except PlaywrightTimeout:
            continue
    return (cells.nth(0).locator(".bn-inspect-widget .bn-app"), cells.nth(1).locator(".bn-inspect-widget .bn-app"))


def show_view(widget: Locator, view: str) -> None:
    widget.locator(f"button[data-view={view}]").click()
    widget.locator(f"main[data-view={view}] .bn-pane[data-status=ready]").wait_for(timeout=30000)
    widget.page.wait_for_timeout(300)  # charts draw in ResizeObserver callbacks


def painted(canvas: Locator) -> int:
    """Pixels of ``canvas`` that hold colour (neither transparent nor white)."""
    return canvas.evaluate(
        """(canvas) => {
            const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i + 3] > 0 && !(data[i] === 255 && data[i + 1] === 255 && data[i + 2] === 255)) count++;
            }
            return count;
        }"""
    )


def run_names(widget: Locator) -> list[str]:
    rows = widget.locator("table[data-table=runs] tbody tr")
    return [rows.nth(i).locator("td").first.text_content() for i in range(rows.count())]


def test_a_logdir_without_bn_inspect_data_shows_the_empty_state(page, widgets):
    empty = widgets[0].locator("[data-state=empty]")
    empty.wait_for(timeout=120000)
    assert "BatchNormInspector(" in empty.text_content()
    assert page.problems == []


def test_the_runs_view_lists_every_run_and_layer(page, widgets, lab_root):
    widget = widgets[1]
    widget.locator("main[data-view=runs] .bn-pane[data-status=ready]").wait_for(timeout=120000)
    assert run_names(widget) == list(RUNS)
    assert widget.locator("label.bn-run").all_text_contents() == list(RUNS)
    logged = load_logdir(lab_root / "logs")
    layers = widget.locator("table[data-table=layers] tbody tr")
    assert layers.count() == sum(len(run.layers) for run in logged.values())
    assert widget.locator("table[data-table=layers] td", has_text="Constant(value=0.5)").count() > 0
    findings = widget.locator("[data-panel=findings][data-status=ready]")
    findings.wait_for(timeout=30000)
    assert findings.locator(".bn-finding").count() > 0
    assert page.problems == []


def test_the_epochs_view_draws_its_heatmap_and_lines(page, widgets, lab_root):
    widget = widgets[1]
    show_view(widget, "epochs")
    widget.locator("select[data-control=run]").select_option("default")
    widget.locator("main[data-view=epochs] .bn-pane[data-status=ready]").wait_for(timeout=30000)
    page.wait_for_timeout(300)
    heatmap = widget.locator("[data-view=epochs-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-drawn") == "true"
    steps, channels = load_logdir(lab_root / "logs")["default"].layers[FROZEN_LAYER][schema.MOVING_MEAN].values.shape
    assert (heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")) == (str(channels), str(steps))
    assert painted(heatmap.locator("canvas")) > 20000
    lines = widget.locator("[data-chart=line] canvas")
    assert lines.count() == 2 and all(painted(lines.nth(i)) > 200 for i in range(2))
    assert page.problems == []


def test_the_compare_view_draws_every_run(page, widgets):
    widget = widgets[1]
    show_view(widget, "compare")
    charts = widget.locator("[data-quantity]")
    assert [charts.nth(i).get_attribute("data-quantity") for i in range(4)] == list(schema.VARIABLE_QUANTITIES)
    for quantity in schema.VARIABLE_QUANTITIES:
        chart = widget.locator(f"[data-quantity={quantity}] [data-chart=line]")
        assert chart.get_attribute("data-series") == str(len(RUNS))
        assert painted(chart.locator("canvas")) > 500
    assert page.problems == []


def test_the_modes_view_draws_the_gap_heatmap_and_output_gap(page, widgets):
    widget = widgets[1]
    show_view(widget, "modes")
    heatmap = widget.locator("[data-view=modes-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-drawn") == "true"
    assert painted(heatmap.locator("canvas")) > 10000
    gap = widget.locator("[data-chart=output-gap] [data-chart=line]")
    assert gap.get_attribute("data-series") == str(len(RUNS))
    assert painted(gap.locator("canvas")) > 200
    assert page.problems == []


def test_screenshot_of_the_widget_in_jupyterlab(page, widgets):
    widget = widgets[1]
    show_view(widget, "compare")
    widget.locator("[data-panel=findings][data-status=ready]").wait_for(timeout=30000)
    groups = widget.locator("[data-panel=findings] details[open] > summary")
    while groups.count():  # fold the Findings panel, so the charts show
        groups.first.click()
    # the cell's code at the top of the notebook, its widget below
    page.locator(".jp-NotebookPanel .jp-Cell").nth(1).evaluate("cell => cell.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20000


def test_reload_picks_up_a_new_run_whose_html_name_stays_text(page, widgets, lab_root, plugin_logdir):
    widget = widgets[1]
    shutil.copytree(plugin_logdir / "default", lab_root / "logs" / HOSTILE_RUN)
    widget.locator("button.bn-reload").click()
    widget.locator("label.bn-run").nth(len(RUNS)).wait_for(timeout=30000)
    show_view(widget, "runs")
    names = sorted([HOSTILE_RUN, *RUNS])
    assert run_names(widget) == names
    assert widget.locator("label.bn-run").all_text_contents() == names
    show_view(widget, "compare")
    assert HOSTILE_RUN in widget.locator("[data-quantity] .u-legend").first.text_content()
    assert page.locator("img[src=x]").count() == 0
    assert page.problems == []


def background(widget: Locator) -> str:
    """The background colour of the element holding the tab (the page body in TensorBoard)."""
    return widget.evaluate("app => getComputedStyle(app.parentElement).backgroundColor")


def test_the_widget_follows_jupyterlabs_theme_not_the_systems(page, widgets):
    widget = widgets[1]
    page.emulate_media(color_scheme="dark")
    try:
        page.wait_for_timeout(300)
        assert page.locator("body").get_attribute("data-jp-theme-light") == "true"
        assert "bn-dark" not in widget.get_attribute("class")
        light = background(widget)
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
        page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30000)
        widget.locator("xpath=self::*[contains(@class, 'bn-dark')]").wait_for(timeout=10000)
        dark = background(widget)
        assert light == "rgb(245, 245, 245)" and dark == "rgb(48, 48, 48)"  # --bn-bg of each theme
    finally:
        page.emulate_media(color_scheme="light")
    assert page.problems == []
