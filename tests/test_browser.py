"""The BN Inspect tab in a real browser: `tensorboard` as a subprocess, headless Chromium.

Checks that every view renders the logged data, that a hostile run name shows as text, and
that a 2048-channel x 200-epoch heatmap draws fast; saves the README's screenshots."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Frame, Page, sync_playwright
from plugin_logdirs import CALLBACK_RUNS

from bn_inspect import load_logdir, schema

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_RUN = "<img src=x onerror=alert(1)>"
# Screenshots of each view go to a temporary folder; `make screenshots` points
# BN_INSPECT_SCREENSHOTS at docs/img to refresh the README's pictures.
SCREENSHOTS = Path(os.environ.get("BN_INSPECT_SCREENSHOTS", Path(tempfile.gettempdir()) / "bn-inspect-screenshots"))
VIEWPORT = {"width": 1400, "height": 900}
BACKGROUND = (255, 255, 255)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_tab(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "tensorboard exited early"
        try:
            with urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=2) as response:
                if b'"bn_inspect"' in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("tensorboard did not start in time")


@pytest.fixture(scope="module")
def browser_logdir(plugin_logdir, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_logdir")
    for run in CALLBACK_RUNS:
        shutil.copytree(plugin_logdir / run, root / run)
    return root


@pytest.fixture(scope="module")
def tensorboard_url(browser_logdir, tmp_path_factory):
    port = free_port()
    command = [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(browser_logdir)]
    command += ["--port", str(port), "--host", "127.0.0.1", "--reload_interval", "1"]
    log = (tmp_path_factory.mktemp("tensorboard") / "tensorboard.log").open("w")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_tab(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def page(tensorboard_url):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
        page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.goto(f"{tensorboard_url}/#bn_inspect")
        yield page
        browser.close()


@pytest.fixture(scope="module")
def tab(page) -> Frame:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frames = [f for f in page.frames if "plugin_entry.html?name=bn_inspect" in f.url]
        if frames:
            return frames[0]
        page.wait_for_timeout(100)
    raise AssertionError("the BN Inspect iframe did not appear")


def show(tab: Frame, view: str) -> None:
    tab.locator(f"button[data-view={view}]").click()
    tab.locator(f"main[data-view={view}] .bn-pane[data-status=ready]").wait_for(timeout=20000)


def wait_ready(tab: Frame) -> None:
    tab.locator("main .bn-pane[data-status=ready]").wait_for(timeout=20000)
    tab.page.wait_for_timeout(300)  # let ResizeObserver callbacks draw the charts


def painted_pixels(tab: Frame, selector: str) -> int:
    """Pixels of the first canvas matching ``selector`` that are not the white background."""
    return tab.locator(selector).first.evaluate(
        """(canvas) => {
            const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] !== %d || data[i + 1] !== %d || data[i + 2] !== %d) count++;
            }
            return count;
        }"""
        % BACKGROUND
    )


def series_counts(tab: Frame, scope: str) -> list[int]:
    charts = tab.locator(f"{scope} [data-chart=line]")
    return [int(charts.nth(i).get_attribute("data-series")) for i in range(charts.count())]


def screenshot(page: Page, tab: Frame, name: str) -> None:
    """Grow the window to the tab's content, then save the whole page."""
    iframe_top = page.locator("iframe").bounding_box()["y"]
    height = tab.evaluate("document.querySelector('.bn-app').getBoundingClientRect().height")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(iframe_top + height + 4)})
    page.wait_for_timeout(500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))
    page.set_viewport_size(VIEWPORT)


def test_runs_view_lists_runs_and_their_configurations(page, tab, browser_logdir):
    wait_ready(tab)
    runs = tab.locator("table[data-table=runs] tbody tr")
    assert runs.count() == len(CALLBACK_RUNS)
    assert [runs.nth(i).locator("td").first.text_content() for i in range(runs.count())] == list(CALLBACK_RUNS)
    assert tab.locator("label.bn-run").all_text_contents() == list(CALLBACK_RUNS)
    layers = tab.locator("table[data-table=layers] tbody tr")
    assert layers.count() == len(CALLBACK_RUNS) * 2
    # Initializers differ between the default and the Constant(0.5) run: 4 columns x 2 layers x 2 runs.
    assert tab.locator("td.bn-differs").count() == 4 * 2 * 2
    assert tab.locator("table[data-table=layers] td.bn-differs", has_text="Constant(value=0.5)").count() == 4 * 2
    epochs_logged = len(load_logdir(browser_logdir)["default"].epochs)
    assert runs.nth(1).locator("td").nth(5).text_content().startswith(f"{epochs_logged} (0–")
    screenshot(page, tab, "tab-runs.png")
    assert page.problems == []


def test_epochs_view_heatmap_drift_and_epoch_comparison(page, tab, browser_logdir):
    show(tab, "epochs")
    tab.locator("select[data-control=run]").select_option("default")
    wait_ready(tab)
    heatmap = tab.locator("[data-view=epochs-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-drawn") == "true"
    default = load_logdir(browser_logdir)["default"]
    steps, channels = default.layers["bn_1"][schema.MOVING_MEAN].values.shape
    assert (heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")) == (str(channels), str(steps))
    assert painted_pixels(tab, "[data-view=epochs-heatmap] canvas") > 50000
    assert series_counts(tab, "main") == [1, 2]  # drift; epoch A and epoch B
    assert tab.locator("[data-chart=line] canvas").count() == 2

    box = heatmap.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    tooltip = heatmap.locator(".bn-tooltip")
    assert tooltip.is_visible()
    assert re.search(r"channel: \d+\nepoch: \d+\nmoving mean: -?[\d.e-]+", tooltip.text_content())
    page.mouse.move(0, 0)

    tab.locator("select[data-control=timeline]").select_option(schema.TIMELINE_BATCH)
    wait_ready(tab)
    batch_steps = len(default.batch_layers["bn_1"][schema.MOVING_MEAN].steps)
    assert heatmap.get_attribute("data-cols") == str(batch_steps)
    tab.locator("select[data-control=timeline]").select_option(schema.TIMELINE_EPOCH)
    wait_ready(tab)
    screenshot(page, tab, "tab-epochs.png")
    assert page.problems == []


def test_compare_view_overlays_the_selected_runs(page, tab):
    show(tab, "compare")
    wait_ready(tab)
    quantities = tab.locator("[data-quantity]")
    assert [quantities.nth(i).get_attribute("data-quantity") for i in range(4)] == list(schema.VARIABLE_QUANTITIES)
    for i in range(4):
        assert series_counts(tab, f"[data-quantity={schema.VARIABLE_QUANTITIES[i]}]") == [2]
    assert series_counts(tab, "[data-chart=residual]") == [2]
    assert series_counts(tab, "[data-chart=distance]") == [4]  # 4 quantities, 1 run vs the reference
    assert painted_pixels(tab, f"[data-quantity={schema.MOVING_MEAN}] canvas") > 1000
    screenshot(page, tab, "tab-compare.png")
    assert page.problems == []


def test_modes_view_gap_heatmap_and_channels(page, tab):
    show(tab, "modes")
    wait_ready(tab)
    assert series_counts(tab, "[data-chart=output-gap]") == [2]
    heatmap = tab.locator("[data-view=modes-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-drawn") == "true"
    assert (heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")) == ("2", "7")  # layers x epochs
    assert painted_pixels(tab, "[data-view=modes-heatmap] canvas") > 20000
    assert series_counts(tab, "[data-view=modes-channels]") == [2, 2]  # moving vs probe batch
    assert "No Dropout" in tab.locator("[data-chart=output-gap]").text_content()
    tab.locator("select[data-control=run]").select_option("default")
    wait_ready(tab)
    screenshot(page, tab, "tab-modes.png")
    assert page.problems == []


def test_heatmap_of_2048_channels_by_200_epochs_stays_fast(tab):
    timing = tab.evaluate(
        """async () => {
            const {Heatmap} = await import(new URL("heatmap.js", document.baseURI).toString());
            const rows = 2048, cols = 200, values = new Float32Array(rows * cols);
            for (let i = 0; i < values.length; i++) values[i] = Math.sin(i / 977) + (i % cols) / cols;
            const map = new Heatmap({xLabel: "epoch", yLabel: "channel", valueLabel: "v", height: 500});
            map.root.style.width = "1200px";
            document.body.append(map.root);
            const start = performance.now();
            map.setData({rows, cols, values, colLabels: [...Array(cols).keys()]});
            const drawn = performance.now() - start;
            const redrawStart = performance.now();
            map.draw();
            const redrawn = performance.now() - redrawStart;
            map.root.remove();
            return {drawn, redrawn, ok: map.root.dataset.drawn === "true"};
        }"""
    )
    assert timing["ok"]
    assert timing["drawn"] < 400, timing  # ms, paint + draw of 409,600 cells
    assert timing["redrawn"] < 100, timing


def test_a_hostile_run_name_shows_as_text(page, tab, tensorboard_url, browser_logdir, plugin_logdir):
    """A run appearing later (picked up by Reload) named like HTML stays text everywhere."""
    shutil.copytree(plugin_logdir / "default", browser_logdir / HOSTILE_RUN)

    def listed() -> bool:
        with urllib.request.urlopen(f"{tensorboard_url}/data/plugin/bn_inspect/runs", timeout=5) as response:
            return HOSTILE_RUN.encode() in response.read()

    deadline = time.monotonic() + 30
    while not listed():
        assert time.monotonic() < deadline, "tensorboard did not pick up the new run"
        time.sleep(0.3)
    tab.locator("button.bn-reload").click()
    tab.locator("label.bn-run").nth(len(CALLBACK_RUNS)).wait_for()
    show(tab, "runs")
    names = sorted([HOSTILE_RUN, *CALLBACK_RUNS])
    runs = tab.locator("table[data-table=runs] tbody tr")
    assert [runs.nth(i).locator("td").first.text_content() for i in range(runs.count())] == names
    assert tab.locator("label.bn-run").all_text_contents() == names
    show(tab, "compare")
    assert HOSTILE_RUN in tab.locator("[data-quantity] .u-legend").first.text_content()
    show(tab, "epochs")
    assert HOSTILE_RUN in tab.locator("select[data-control=run]").text_content()
    assert tab.locator("img").count() == 0 and page.locator("img[src=x]").count() == 0
    assert page.problems == []


def test_empty_state_says_how_to_add_the_callback(page, tab):
    """What the tab shows when /runs has no run (the server side of that is in test_plugin_server)."""
    page.route("**/data/plugin/bn_inspect/runs", lambda route: route.fulfill(json={"runs": [], "schema": {}}))
    try:
        tab.locator("button.bn-reload").click()
        empty = tab.locator("[data-state=empty]")
        empty.wait_for()
        assert "BatchNormInspector(" in empty.text_content()
        assert "tensorboard --logdir" in empty.text_content()
    finally:
        page.unroute("**/data/plugin/bn_inspect/runs")
    assert page.problems == []
