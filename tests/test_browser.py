"""The BN Inspect tab in a real browser: `tensorboard` as a subprocess, headless Chromium.

Checks that every view renders the logged data (EMA staleness, replicas, frozen layers and
non-finite statistics included), that a hostile run name shows as text, and that a
2048-channel x 200-epoch heatmap draws fast; saves the pictures of the README and the docs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Frame, Page, sync_playwright
from plugin_logdirs import FROZEN_LAYER, FROZEN_RUN, NONFINITE_LAYER, REPLICA_RUN, RUNS

from bn_inspect import doctor, load_logdir, schema

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from local_tensorboard import launch_chromium, serve, show_view, tab_frame, wait_for_server, watched_page

HOSTILE_RUN = "<img src=x onerror=alert(1)>"
# Screenshots of each view go to a temporary folder; `make screenshots` points
# BN_INSPECT_SCREENSHOTS at examples/screenshots to refresh the pictures of the README and the docs.
SCREENSHOTS = Path(os.environ.get("BN_INSPECT_SCREENSHOTS", Path(tempfile.gettempdir()) / "bn-inspect-screenshots"))
VIEWPORT = {"width": 1400, "height": 900}
NONFINITE_RGB = (233, 30, 99)  # the heatmap's NaN / inf colour (colors.js)
RUN_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]  # the tab's first
MISSING_RGB = (224, 224, 224)  # the heatmap's "not logged" / "not measured" colour
# The heatmaps' colour scale: matplotlib's viridis at 0, 1/8, ..., 1, linearly interpolated.
VIRIDIS_ANCHORS = np.array(
    [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]],
    dtype=np.float64,
)  # fmt: skip


def wait_for_tab(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Until TensorBoard at ``url`` lists the bn_inspect plugin."""
    wait_for_server(f"{url}/data/plugins_listing", process, lambda body: b'"bn_inspect"' in body, timeout)


@pytest.fixture(scope="module")
def browser_logdir(plugin_logdir, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_logdir")
    for run in RUNS:
        shutil.copytree(plugin_logdir / run, root / run)
    return root


@pytest.fixture(scope="module")
def tensorboard_url(browser_logdir, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("tensorboard") / "tensorboard.log"
    with log_path.open("w") as log, serve(browser_logdir, "--reload_interval", "1", log=log) as (url, process):
        wait_for_tab(url, process)
        yield url


@pytest.fixture(scope="module")
def page(tensorboard_url):
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = watched_page(browser, VIEWPORT)
        page.goto(f"{tensorboard_url}/#bn_inspect")
        yield page
        browser.close()


@pytest.fixture(scope="module")
def tab(page) -> Frame:
    return tab_frame(page, timeout=30)


def show(tab: Frame, view: str) -> None:
    show_view(tab, view)


def wait_ready(tab: Frame) -> None:
    tab.locator("main .bn-pane[data-status=ready]").wait_for(timeout=20000)
    tab.page.wait_for_timeout(300)  # let ResizeObserver callbacks draw the charts


def count_pixels(tab: Frame, selector: str, rgb: tuple[int, int, int], equal: bool) -> int:
    """Pixels of the first canvas matching ``selector`` whose colour is (or is not) ``rgb``."""
    return tab.locator(selector).first.evaluate(
        """(canvas, [rgb, equal]) => {
            const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                const same = data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2];
                if (same === equal) count++;
            }
            return count;
        }""",
        [list(rgb), equal],
    )


def viridis(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``[..., 3]`` colours of ``values`` on the scale from ``lo`` to ``hi`` (256 levels)."""
    level = np.clip(np.floor((values - lo) * (255 / (hi - lo))), 0, 255)
    position = level / 255 * (len(VIRIDIS_ANCHORS) - 1)
    anchors = np.arange(len(VIRIDIS_ANCHORS))
    channels = [np.interp(position, anchors, VIRIDIS_ANCHORS[:, k]) for k in range(3)]
    return np.floor(np.stack(channels, axis=-1) + 0.5).astype(int)


def expected_colours(values: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """``[rows, cols, 3]``: the colour each cell of a heatmap of ``values`` must have. Finite
    values on viridis from their minimum to their maximum, NaN and infinities in the
    non-finite colour, ``missing`` cells grey."""
    values = np.asarray(values, dtype=np.float32).astype(np.float64)
    missing = np.zeros(values.shape, bool) if missing is None else missing
    finite = np.isfinite(values)
    lo, hi = values[finite].min(), values[finite].max()
    colours = viridis(np.where(finite, values, lo), lo, hi)
    colours[~finite] = NONFINITE_RGB
    colours[missing] = MISSING_RGB
    return colours


def drawn_colours(tab: Frame, heatmap: str, cells: list[tuple[int, int]] | None = None) -> np.ndarray:
    """The colour drawn at the centre of each cell ``(row, col)`` of the first heatmap matching
    ``heatmap`` (every cell by default, as ``[rows, cols, 3]``), read from its canvas."""
    colours = tab.locator(heatmap).first.evaluate(
        """(root, cells) => {
            const canvas = root.querySelector("canvas");
            const [x, y, w, h] = root.dataset.plot.split(" ").map(Number);
            const rows = Number(root.dataset.rows), cols = Number(root.dataset.cols);
            cells ??= Array.from({length: rows * cols}, (_, i) => [Math.floor(i / cols), i % cols]);
            const ratio = canvas.width / canvas.clientWidth;
            const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            return cells.map(([row, col]) => {
                const px = Math.floor((x + ((col + 0.5) * w) / cols) * ratio);
                const py = Math.floor((y + ((row + 0.5) * h) / rows) * ratio);
                const i = 4 * (py * canvas.width + px);
                return [data[i], data[i + 1], data[i + 2]];
            });
        }""",
        cells,
    )
    if cells is not None:
        return np.array(colours)
    rows, cols = (int(tab.locator(heatmap).first.get_attribute(f"data-{a}")) for a in ("rows", "cols"))
    return np.array(colours).reshape(rows, cols, 3)


def layer_rows(run, quantity: str, frozen_unmeasured: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A layer x step matrix of one per-layer figure as the "Training vs inference" heatmaps
    draw it (layers in model order, the steps any layer logged) and its cells without a value:
    not logged, or NaN in a frozen layer when ``frozen_unmeasured``."""
    layers = [layer for layer in run.layers if quantity in run.layers[layer]]
    steps = np.unique(np.concatenate([run.layers[layer][quantity].steps for layer in layers]))
    values = np.full((len(layers), len(steps)), np.nan)
    missing = np.ones(values.shape, bool)
    for row, layer in enumerate(layers):
        series = run.layers[layer][quantity]
        columns = np.searchsorted(steps, series.steps)
        values[row, columns] = series.values.reshape(len(series.steps))
        missing[row, columns] = False
        if frozen_unmeasured and run.run_config.layer(layer).frozen:
            missing[row] |= np.isnan(values[row])
    return values, missing


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


def collapse_findings(tab: Frame) -> None:
    """Fold the Findings panel's open groups (they stay folded across redraws)."""
    tab.locator("[data-panel=findings][data-status=ready]").wait_for(timeout=20000)
    groups = tab.locator("[data-panel=findings] details[open] > summary")
    while groups.count():
        groups.first.click()


def test_runs_view_lists_runs_and_their_configurations(page, tab, browser_logdir):
    wait_ready(tab)
    collapse_findings(tab)  # the views' screenshots show the panel folded
    runs = tab.locator("table[data-table=runs] tbody tr")
    assert runs.count() == len(RUNS)
    assert [runs.nth(i).locator("td").first.text_content() for i in range(runs.count())] == list(RUNS)
    assert tab.locator("label.bn-run").all_text_contents() == list(RUNS)
    layers = tab.locator("table[data-table=layers] tbody tr")
    assert layers.count() == len(RUNS) * 2
    # Initializers differ between the Constant(0.5) run and the others: 4 columns x 2 layers x 4
    # runs; Trainable differs for the frozen run's layer: 1 column x 4 runs.
    assert tab.locator("td.bn-differs").count() == 4 * 2 * len(RUNS) + len(RUNS)
    assert tab.locator("table[data-table=layers] td.bn-differs", has_text="Constant(value=0.5)").count() == 4 * 2
    logged = load_logdir(browser_logdir)
    epochs_logged = len(logged["default"].epochs)
    assert runs.nth(1).locator("td").nth(5).text_content().startswith(f"{epochs_logged} (0–")

    frozen = tab.locator("table[data-table=layers] [data-badge=frozen]")
    assert frozen.count() == 1
    assert frozen.text_content() == "frozen · inference mode in training"
    assert "trainable=False" in frozen.get_attribute("title")
    assert (
        tab.locator(
            f"table[data-table=layers] tr[data-run={FROZEN_RUN}][data-layer={FROZEN_LAYER}] [data-badge=frozen]"
        ).count()
        == 1
    )
    counts = logged[REPLICA_RUN].layers[NONFINITE_LAYER][schema.NONFINITE_CHANNELS]
    worst, first = int(counts.values.max()), int(counts.steps[counts.values > 0][0])
    row = tab.locator(f"table[data-table=layers] tr[data-run={REPLICA_RUN}][data-layer={NONFINITE_LAYER}]")
    assert row.locator("[data-badge=nonfinite]").text_content() == f"⚠ {worst} non-finite channels"
    assert row.locator("td[data-column=nonfinite]").text_content() == f"{worst} (from epoch {first})"
    assert tab.locator("table[data-table=layers] [data-badge=nonfinite]").count() == 1
    # The picker marks layers too: option labels, and badges for the selected layer.
    options = tab.locator("select[data-picker=layer] option").all_text_contents()
    assert options == [f"{FROZEN_LAYER}  ·  frozen", f"{NONFINITE_LAYER}  ·  ⚠ non-finite"]
    assert FROZEN_RUN in tab.locator("[data-picker=badges] [data-badge=frozen]").get_attribute("title")
    screenshot(page, tab, "tab-runs.png")
    assert page.problems == []


def test_tabs_are_the_views_findings_point_at(page, tab):
    """The tab's buttons are bn_inspect.doctor's views, in order, with their titles (from the
    schema summary), and each draws its view."""
    buttons = tab.locator("nav.bn-tabs button.bn-tab")
    assert [buttons.nth(i).get_attribute("data-view") for i in range(buttons.count())] == list(doctor.VIEWS)
    assert buttons.all_text_contents() == [doctor.VIEW_TITLES[view] for view in doctor.VIEWS]
    for view in (*doctor.VIEWS[1:], doctor.VIEWS[0]):
        show(tab, view)
        assert "Could not load this view" not in tab.locator("main").text_content()
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
    values = default.layers["bn_1"][schema.MOVING_MEAN].values.T  # channels x epochs
    np.testing.assert_array_equal(
        drawn_colours(tab, "[data-view=epochs-heatmap] [data-chart=heatmap]"), expected_colours(values)
    )
    assert series_counts(tab, "main") == [1, 2]  # drift; epoch A and epoch B
    assert tab.locator("[data-chart=line] canvas").count() == 2
    assert heatmap.get_attribute("data-nonfinite") == "0"

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


def test_epochs_heatmap_draws_nonfinite_cells_in_their_own_colour(page, tab, browser_logdir):
    """NaN moving variance (synthetic replica run): its cells take the NaN / inf colour."""
    variance = load_logdir(browser_logdir)[REPLICA_RUN].layers[NONFINITE_LAYER][schema.MOVING_VARIANCE].values
    tab.locator("select[data-picker=layer]").select_option(NONFINITE_LAYER)
    show(tab, "epochs")
    tab.locator("select[data-control=run]").select_option(REPLICA_RUN)
    wait_ready(tab)
    tab.locator("select[data-control=quantity]").select_option(schema.MOVING_VARIANCE)
    wait_ready(tab)
    heatmap = tab.locator("[data-view=epochs-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-nonfinite") == str(int(np.count_nonzero(~np.isfinite(variance)))) == "3"
    drawn = drawn_colours(tab, "[data-view=epochs-heatmap] [data-chart=heatmap]")
    np.testing.assert_array_equal(drawn, expected_colours(variance.T))  # the NaN cells where they were logged
    # Hovering a cell drawn in that colour (left of the legend) names the value.
    x, y = heatmap.locator("canvas").evaluate(
        """(canvas, rgb) => {
            const {data, width} = canvas.getContext("2d").getImageData(0, 0, canvas.width - 200, canvas.height);
            for (let i = 0; i < data.length; i += 4) {
                if (data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2]) {
                    const ratio = canvas.width / canvas.clientWidth;
                    return [((i / 4) % width + 3) / ratio, (Math.floor(i / 4 / width) + 3) / ratio];
                }
            }
            return null;
        }""",
        list(NONFINITE_RGB),
    )
    box = heatmap.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    assert heatmap.locator(".bn-tooltip").text_content().endswith("moving variance: NaN")
    page.mouse.move(0, 0)
    tab.locator("select[data-picker=layer]").select_option(FROZEN_LAYER)
    wait_ready(tab)
    assert page.problems == []


def test_compare_view_overlays_the_selected_runs(page, tab):
    show(tab, "compare")
    wait_ready(tab)
    quantities = tab.locator("[data-quantity]")
    assert [quantities.nth(i).get_attribute("data-quantity") for i in range(4)] == list(schema.VARIABLE_QUANTITIES)
    for i in range(4):
        assert series_counts(tab, f"[data-quantity={schema.VARIABLE_QUANTITIES[i]}]") == [len(RUNS)]
    assert series_counts(tab, "[data-chart=residual]") == [len(RUNS)]
    assert series_counts(tab, "[data-chart=distance]") == [
        4 * (len(RUNS) - 1)
    ]  # 4 quantities, each run vs the reference
    # Each run's curve is drawn in its own colour (colors.js PALETTE, by its place in the run
    # list); the curves overlap, so some runs show only in a few pixels.
    chart = f"[data-quantity={schema.MOVING_MEAN}] canvas"
    for colour in RUN_COLOURS[: len(RUNS)]:
        assert count_pixels(tab, chart, colour, equal=True) > 0, colour
    assert count_pixels(tab, chart, RUN_COLOURS[len(RUNS)], equal=True) == 0  # no other run's
    screenshot(page, tab, "tab-compare.png")
    assert page.problems == []


def test_modes_view_gap_heatmap_and_channels(page, tab, browser_logdir):
    show(tab, "modes")
    wait_ready(tab)
    assert series_counts(tab, "[data-chart=output-gap]") == [len(RUNS)]
    heatmap = tab.locator("[data-view=modes-heatmap] [data-chart=heatmap]")
    assert heatmap.get_attribute("data-drawn") == "true"
    assert (heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")) == ("2", "7")  # layers x epochs
    shown = load_logdir(browser_logdir)[tab.locator("select[data-control=run]").input_value()]
    quantity = tab.locator("[data-view=modes-heatmap]").get_attribute("data-quantity")
    assert quantity == schema.PROBE_MEAN_GAP
    drawn = drawn_colours(tab, "[data-view=modes-heatmap] [data-chart=heatmap]")
    np.testing.assert_array_equal(drawn, expected_colours(*layer_rows(shown, quantity, frozen_unmeasured=True)))
    assert series_counts(tab, "[data-view=modes-channels]") == [2, 2]  # moving vs probe batch
    assert "No Dropout" in tab.locator("[data-chart=output-gap]").text_content()
    assert "reference_data=" in tab.locator("[data-view=modes-staleness]").text_content()  # none logged
    assert tab.locator("[data-view=modes-replicas]").count() == 0
    tab.locator("select[data-control=run]").select_option("default")
    wait_ready(tab)
    assert page.problems == []


def test_modes_view_ema_staleness(page, tab, browser_logdir):
    """The run trained with reference_data: population gap per layer and epoch, per-run worst
    layer, per-channel moving vs population; its frozen layer has no probe gap to show."""
    run = load_logdir(browser_logdir)[FROZEN_RUN]
    show(tab, "modes")
    tab.locator("select[data-control=run]").select_option(FROZEN_RUN)
    wait_ready(tab)
    staleness = tab.locator("[data-view=modes-staleness] [data-chart=heatmap]")
    steps = run.layers[FROZEN_LAYER][schema.POPULATION_MEAN_GAP].steps
    assert (staleness.get_attribute("data-rows"), staleness.get_attribute("data-cols")) == ("2", str(len(steps)))
    assert staleness.get_attribute("data-missing") == staleness.get_attribute("data-nonfinite") == "0"
    assert tab.locator("[data-view=modes-staleness]").get_attribute("data-quantity") == schema.POPULATION_MEAN_GAP
    drawn = drawn_colours(tab, "[data-view=modes-staleness] [data-chart=heatmap]")
    np.testing.assert_array_equal(drawn, expected_colours(*layer_rows(run, schema.POPULATION_MEAN_GAP)))
    probe = drawn_colours(tab, "[data-view=modes-heatmap] [data-chart=heatmap]")  # the frozen layer: not measured
    np.testing.assert_array_equal(probe, expected_colours(*layer_rows(run, schema.PROBE_MEAN_GAP, True)))
    assert (probe[list(run.layers).index(FROZEN_LAYER)] == MISSING_RGB).all()
    assert series_counts(tab, "[data-chart=max-staleness]") == [1]  # only this run has reference data
    probe = tab.locator("[data-view=modes-heatmap] [data-chart=heatmap]")
    assert probe.get_attribute("data-missing") == str(len(run.layers[FROZEN_LAYER][schema.PROBE_MEAN_GAP].steps))
    assert "is frozen" in tab.locator("[data-view=modes-channels]").text_content()  # FROZEN_LAYER is selected
    assert series_counts(tab, "[data-view=modes-population-channels]") == [2, 2]  # moving vs population
    assert tab.locator("select[data-control=population-step]").input_value() == str(steps[-1])
    tab.locator("select[data-picker=layer]").select_option(NONFINITE_LAYER)  # a trainable layer of this run
    wait_ready(tab)
    assert series_counts(tab, "[data-view=modes-channels]") == [2, 2]  # moving vs probe batch
    assert series_counts(tab, "[data-view=modes-population-channels]") == [2, 2]
    screenshot(page, tab, "tab-modes.png")
    tab.locator("select[data-picker=layer]").select_option(FROZEN_LAYER)
    wait_ready(tab)
    assert page.problems == []


def test_modes_view_replicas_panel(page, tab, browser_logdir):
    """Synthetic replica data (tests/plugin_logdirs.py): the Replicas panel shows for the run on
    2 replicas only."""
    run = load_logdir(browser_logdir)[REPLICA_RUN]
    show(tab, "modes")
    tab.locator("select[data-control=run]").select_option(REPLICA_RUN)
    wait_ready(tab)
    panel = tab.locator("[data-view=modes-replicas]")
    assert "2 replicas" in panel.locator("h3").first.text_content()
    heatmap = panel.locator("[data-view=replicas-heatmap] [data-chart=heatmap]")
    assert (heatmap.get_attribute("data-rows"), heatmap.get_attribute("data-cols")) == ("2", str(len(run.epochs)))
    drawn = drawn_colours(tab, "[data-view=replicas-heatmap] [data-chart=heatmap]")
    np.testing.assert_array_equal(drawn, expected_colours(*layer_rows(run, schema.REPLICA_MEAN_SPREAD_GAP, True)))
    assert series_counts(tab, "[data-view=replicas-channels]") == [2, 2]  # batch and moving-copy spread
    assert series_counts(tab, "[data-chart=max-replica-spread]") == [1]
    # NaN moving variance makes the probe gap of that layer NaN: drawn in its own colour.
    gaps = run.layers[NONFINITE_LAYER][schema.PROBE_MEAN_GAP].values
    probe = tab.locator("[data-view=modes-heatmap] [data-chart=heatmap]")
    assert probe.get_attribute("data-nonfinite") == str(int(np.isnan(gaps).sum())) == "3"
    drawn = drawn_colours(tab, "[data-view=modes-heatmap] [data-chart=heatmap]")
    np.testing.assert_array_equal(drawn, expected_colours(*layer_rows(run, schema.PROBE_MEAN_GAP, True)))
    assert (drawn[list(run.layers).index(NONFINITE_LAYER)][np.isnan(gaps.reshape(-1))] == NONFINITE_RGB).all()
    tab.locator("select[data-control=run]").select_option("default")
    wait_ready(tab)
    assert tab.locator("[data-view=modes-replicas]").count() == 0
    assert page.problems == []


def test_findings_panel_opens_the_view_run_and_layer(page, tab, browser_logdir):
    """The panel lists what bn_inspect.doctor finds on load_logdir's runs; clicking a finding
    opens its view with its run selected and its layer picked."""
    expected = doctor.diagnose(load_logdir(browser_logdir))
    show(tab, "compare")
    tab.locator("[data-panel=findings][data-status=ready]").wait_for(timeout=20000)
    panel = tab.locator("[data-panel=findings]")
    for severity, count in doctor.counts(expected).items():
        assert panel.locator(f".bn-count[data-severity={severity}]").text_content().startswith(f"{count} ")
    items = panel.locator(".bn-finding")
    listed = [
        tuple(items.nth(i).get_attribute(a) for a in ("data-finding", "data-run", "data-layer"))
        for i in range(items.count())
    ]
    # The same check on the same layer in several runs is one entry, expanding to each run's.
    clusters: dict[tuple, list] = {}
    for finding in expected:
        clusters.setdefault((finding.severity, finding.id, finding.layer or ""), []).append(finding)
    assert listed == [(f.id, f.run, f.layer or "") for found in clusters.values() for f in found]
    shared = panel.locator("details.bn-finding-shared")
    assert [
        (shared.nth(i).get_attribute("data-finding"), shared.nth(i).get_attribute("data-slot"))
        for i in range(shared.count())
    ] == [(key[1], key[2]) for key, found in clusters.items() if len(found) > 1]
    for i in range(shared.count()):
        runs = int(shared.nth(i).get_attribute("data-runs"))
        assert f"in {runs} runs" in shared.nth(i).locator("summary").text_content()

    for target in (
        next(f for f in expected if (f.run, f.layer) == (FROZEN_RUN, FROZEN_LAYER)),
        next(f for f in expected if (f.run, f.layer) == (REPLICA_RUN, NONFINITE_LAYER)),
    ):
        group = panel.locator(f"details[data-severity={target.severity}]")
        if group.get_attribute("open") is None:
            group.locator(":scope > summary").click()
        item = panel.locator(f".bn-finding[data-finding={target.id}][data-run={target.run}][data-layer={target.layer}]")
        cluster = panel.locator("details.bn-finding-shared").filter(has=item)
        if cluster.count() and cluster.get_attribute("open") is None:
            cluster.locator(":scope > summary").click()
        text = item.text_content()
        assert target.title in text and target.fix in text and f"run {target.run} · layer {target.layer}" in text
        assert all(key.replace("_", " ") in text for key in target.evidence)  # evidence figures, labelled
        item.click()
        tab.locator(f"main[data-view={target.view}] .bn-pane[data-status=ready]").wait_for(timeout=20000)
        wait_ready(tab)
        assert tab.locator("button.bn-tab.bn-active").get_attribute("data-view") == target.view
        assert tab.locator("select[data-picker=layer]").input_value() == target.layer
        if target.view in ("epochs", "modes"):
            assert tab.locator("select[data-control=run]").input_value() == target.run
        if target.view == "epochs" and target.quantity:
            assert tab.locator("select[data-control=quantity]").input_value() == target.quantity
        assert "bn-active" in panel.locator(
            f".bn-finding[data-finding={target.id}][data-run={target.run}]"
        ).get_attribute("class")
        charts = tab.locator(f"main [data-quantity={target.quantity}]").count() if target.quantity else 0
        focused = tab.locator("main .bn-focused")
        assert focused.count() == min(charts, 1)  # the chart of the finding's quantity is outlined
        if charts:
            assert focused.get_attribute("data-quantity") == target.quantity
        if target.run == FROZEN_RUN:
            page.mouse.move(0, 0)
            screenshot(page, tab, "tab-findings.png")
    assert page.problems == []


def test_heatmap_of_2048_channels_by_200_epochs_draws_every_cell(tab):
    """The largest heatmap the issue names draws completely, each cell in the colour of its
    value (its speed is bench/frontend.py's)."""
    rows, cols = 2048, 200
    # A ramp over epochs, flat for the first and last 21: with over 10% of the cells at each
    # end, the colour scale (0.5th to 99.5th percentile at this size) runs exactly from 0 to 1.
    ramp = np.clip((np.arange(cols) - 20) / 159, 0, 1).astype(np.float32)
    drawn = tab.evaluate(
        """async ([rows, ramp]) => {
            const {Heatmap} = await import(new URL("heatmap.js", document.baseURI).toString());
            const cols = ramp.length, values = new Float32Array(rows * cols);
            for (let i = 0; i < values.length; i++) values[i] = ramp[i % cols];
            const map = new Heatmap({xLabel: "epoch", yLabel: "channel", valueLabel: "v", height: 500});
            map.root.style.width = "1200px";
            map.root.dataset.test = "large";
            document.body.append(map.root);
            map.setData({rows, cols, values, colLabels: [...Array(cols).keys()]});
            return map.root.dataset.drawn === "true";
        }""",
        [rows, ramp.tolist()],
    )
    assert drawn
    cells = [(row, col) for row in (0, 700, rows - 1) for col in (0, 21, 40, 77, 100, 150, 178, cols - 1)]
    colours = drawn_colours(tab, "[data-test=large]", cells)
    np.testing.assert_array_equal(colours, viridis(np.array([ramp[col] for _, col in cells], np.float64), 0.0, 1.0))
    tab.evaluate("document.querySelector('[data-test=large]').remove()")


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
    tab.locator("label.bn-run").nth(len(RUNS)).wait_for()
    show(tab, "runs")
    names = sorted([HOSTILE_RUN, *RUNS])
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
