"""Comparing runs in the real tab (`tensorboard` subprocess, Debian's headless Chromium): runs
whose layers carry Keras' automatic names (tests/auto_named_logdir.py) are aligned and
overlaid, a sweep of 200 runs is narrowed with a regular expression, identical findings are
grouped across runs, and the tab follows TensorBoard's dark mode.

One TensorBoard serves a logdir holding both: the 3 auto-named runs and ``sweep/...``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from auto_named_logdir import SWEEP_LRS, SWEEP_SEEDS, sweep_run_name, write_sweep
from playwright.sync_api import Frame, Page, expect, sync_playwright
from test_browser import (  # and examples/local_tensorboard's helpers, which it imports
    SCREENSHOTS,
    VIEWPORT,
    collapse_findings,
    count_pixels,
    launch_chromium,
    screenshot,
    series_counts,
    serve,
    show_view,
    tab_frame,
    wait_for_tab,
    wait_ready,
    watched_page,
)

from bn_inspect import doctor, load_logdir, schema

AUTO_RUNS = ("init_custom", "init_default")  # the pair compared: default vs Constant(0.5)
INITIALIZER_COLUMNS = 4  # gamma, beta, moving mean, moving variance
SWEEP_SIZE = len(SWEEP_LRS) * SWEEP_SEEDS


@pytest.fixture(scope="module")
def logdir(auto_named, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compare_logdir")
    for run in Path(auto_named["root"]).iterdir():
        shutil.copytree(run, root / run.name)
    assert len(write_sweep(root)) == SWEEP_SIZE == 200
    return root


@pytest.fixture(scope="module")
def all_runs(logdir) -> list[str]:
    return sorted(load_logdir(logdir))


@pytest.fixture(scope="module")
def tab(logdir, all_runs, tmp_path_factory) -> Frame:
    log_path = tmp_path_factory.mktemp("tensorboard") / "tensorboard.log"
    with (
        log_path.open("w") as log,
        serve(logdir, "--reload_interval", "1", log=log) as (url, process),
        sync_playwright() as playwright,
    ):
        wait_for_tab(url, process)
        browser = launch_chromium(playwright)
        page = watched_page(browser, VIEWPORT)
        page.goto(f"{url}/#bn_inspect")
        frame = tab_frame(page, timeout=60)
        frame.locator("label.bn-run").nth(len(all_runs) - 1).wait_for(state="attached", timeout=60000)
        wait_ready(frame)
        frame.url_root = url
        yield frame
        browser.close()


def only(tab: Frame, pattern: str) -> None:
    """Filter the run list by ``pattern`` and select exactly the runs it shows."""
    tab.locator("[data-picker=run-filter]").fill(pattern)
    tab.locator("[data-picker=only-shown]").click()
    wait_ready(tab)


def selected(tab: Frame) -> list[str]:
    boxes = tab.locator("label.bn-run")
    return [
        boxes.nth(i).get_attribute("data-run")
        for i in range(boxes.count())
        if boxes.nth(i).locator("input").is_checked()
    ]


def top_screenshot(page: Page, name: str) -> None:
    """The first screen of the page (Findings panel and picker), as the user first sees it."""
    page.mouse.move(0, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_auto_named_runs_are_overlaid_on_one_slot(tab, auto_named):
    only(tab, "^init_")
    assert selected(tab) == list(AUTO_RUNS)
    paths = {run: auto_named["paths"][run][0] for run in AUTO_RUNS}
    assert len(set(paths.values())) == 2  # different automatic names
    layer = tab.locator("select[data-picker=layer]")
    assert layer.locator("option").all_text_contents() == ["batch_normalization  ·  matched by name"]
    assert "matched by name (numbering removed)" in tab.locator("[data-picker=matched]").text_content()
    show_view(tab, "compare")
    wait_ready(tab)
    for quantity in schema.VARIABLE_QUANTITIES:
        assert series_counts(tab, f"[data-quantity={quantity}]") == [2]  # both runs, one chart
        legend = tab.locator(f"[data-quantity={quantity}] .u-legend").text_content()
        assert all(run in legend for run in AUTO_RUNS)
    assert series_counts(tab, "[data-chart=distance]") == [4]  # init_default vs the reference, 4 quantities
    caption = tab.locator("[data-caption=slot]").text_content()
    assert "matched by name" in caption and paths["init_custom"] in caption
    assert painted(tab, f"[data-quantity={schema.MOVING_MEAN}] canvas") > 1000
    collapse_findings(tab)
    screenshot(tab.page, tab, "tab-compare-aligned.png")
    assert tab.page.problems == []


def painted(tab: Frame, selector: str) -> int:
    return count_pixels(tab, selector, (255, 255, 255), equal=False)


def test_the_layer_table_highlights_the_differing_initializers(tab, auto_named):
    only(tab, "^init_")
    show_view(tab, "runs")
    wait_ready(tab)
    rows = tab.locator("table[data-table=layers] tbody tr")
    assert rows.count() == 2
    for i, run in enumerate(AUTO_RUNS):
        row = rows.nth(i)
        assert row.get_attribute("data-run") == run
        assert row.get_attribute("data-layer") == auto_named["paths"][run][0]
        assert row.get_attribute("data-slot") == "batch_normalization"
        assert row.locator("td[data-column=matched]").text_content() == "by name"
        assert row.locator("td.bn-differs").count() == INITIALIZER_COLUMNS
    custom = rows.nth(0).locator("td.bn-differs").all_text_contents()
    assert custom == ["Constant(value=0.5)"] * INITIALIZER_COLUMNS
    assert rows.nth(1).locator("td.bn-differs").all_text_contents() == ["Ones()", "Zeros()", "Zeros()", "Ones()"]
    assert tab.page.problems == []


def test_matching_by_identical_path_keeps_them_apart(tab, auto_named):
    only(tab, "^init_")
    show_view(tab, "compare")
    tab.locator("select[data-picker=match]").select_option("path")
    wait_ready(tab)
    options = tab.locator("select[data-picker=layer] option").all_text_contents()
    assert options == [f"{auto_named['paths'][run][0]}  ·  only in {run}" for run in AUTO_RUNS]
    assert "no other run has path" in tab.locator("[data-picker=matched]").text_content()
    assert "No layer of slot" in tab.locator("main").text_content()
    assert series_counts(tab, f"[data-quantity={schema.MOVING_MEAN}]") == [1]
    tab.locator("select[data-picker=match]").select_option("auto")
    wait_ready(tab)
    assert tab.page.problems == []


def test_a_sweep_of_200_runs_is_filtered_by_regular_expression(tab, all_runs):
    pattern = r"lr0\.1_seed0[0-4]$"
    expected = [name for name in all_runs if re.search(pattern, name, re.IGNORECASE)]
    assert expected == [sweep_run_name("0.1", seed) for seed in range(5)]
    tab.locator("[data-picker=run-filter]").fill(pattern)
    labels = tab.locator("label.bn-run")
    visible = [labels.nth(i).get_attribute("data-run") for i in range(labels.count()) if labels.nth(i).is_visible()]
    assert visible == expected
    note = tab.locator("[data-picker=filter-note]")
    assert note.text_content().startswith(f"5 of {len(all_runs)} runs shown")
    tab.locator("[data-picker=only-shown]").click()
    wait_ready(tab)
    assert selected(tab) == expected
    # "None" unselects the runs shown only; "All" selects them back.
    tab.locator("[data-picker=run-filter]").fill(r"seed0[34]$")
    tab.locator("[data-picker=unselect-shown]").click()
    wait_ready(tab)
    assert selected(tab) == expected[:3]
    tab.locator("[data-picker=select-shown]").click()
    wait_ready(tab)
    assert selected(tab) == sorted(
        set(expected[:3]) | {sweep_run_name(lr, seed) for lr in SWEEP_LRS for seed in (3, 4)}
    )
    assert tab.page.problems == []


def test_an_invalid_pattern_gets_a_message_not_a_crash(tab, all_runs):
    before = selected(tab)
    field = tab.locator("[data-picker=run-filter]")
    field.fill("lr(0.1")
    note = tab.locator("[data-picker=filter-note]")
    assert note.text_content().startswith("Invalid regular expression:")
    assert "bn-invalid" in field.get_attribute("class")
    assert tab.locator("[data-picker=select-shown]").is_disabled()
    assert tab.locator("label.bn-run:visible").count() == len(all_runs)  # nothing hidden by a broken filter
    assert selected(tab) == before
    field.fill("")
    assert note.text_content().startswith(f"{len(all_runs)} of {len(all_runs)} runs shown")
    assert tab.page.problems == []


def test_colours_stay_with_their_runs(tab):
    run = sweep_run_name("0.3", 7)
    swatch = f"label.bn-run[data-run='{run}'] .bn-swatch"

    def colour() -> str:
        return tab.locator(swatch).evaluate("node => getComputedStyle(node).backgroundColor")

    first = colour()
    only(tab, r"lr0\.3_seed0[5-9]")
    assert colour() == first
    only(tab, r"lr0\.3_")
    assert colour() == first
    show_view(tab, "compare")
    wait_ready(tab)
    legend = tab.locator(f"[data-quantity={schema.MOVING_MEAN}] .u-legend .u-series", has_text=run).first
    marker = legend.locator(".u-marker").evaluate("node => getComputedStyle(node).backgroundColor")
    assert marker == first  # the chart draws the run in its picker colour


def test_the_picker_never_pushes_the_views_off_screen(tab, all_runs):
    tab.locator("[data-picker=run-filter]").fill("")
    tab.locator("[data-picker=select-shown]").click()  # every run
    wait_ready(tab)
    assert len(selected(tab)) == len(all_runs)
    picker = tab.locator(".bn-picker").bounding_box()
    assert picker["height"] < 200
    view_top = tab.locator("main").bounding_box()["y"]
    assert view_top < VIEWPORT["height"] - 300  # the view starts on the first screen
    show_view(tab, "compare", timeout_ms=60000)
    wait_ready(tab)
    assert "Showing the first 32 of the" in tab.locator("main").text_content()
    assert tab.page.problems == []


def test_identical_findings_of_a_sweep_are_one_entry(tab, logdir, all_runs):
    only(tab, r"^sweep/lr0\.01_")
    runs = [name for name in all_runs if name.startswith("sweep/lr0.01_")]
    assert selected(tab) == runs
    expected = doctor.diagnose({name: run for name, run in load_logdir(logdir).items() if name in runs})
    by_check: dict[str, list] = {}
    for finding in expected:
        by_check.setdefault(finding.id, []).append(finding)
    assert len(by_check["initializer_dominant"]) == len(runs) == SWEEP_SEEDS
    panel = tab.locator("[data-panel=findings][data-status=ready]")
    panel.wait_for(timeout=60000)
    severity = panel.locator(f"details.bn-findings-group[data-severity={by_check['initializer_dominant'][0].severity}]")
    if severity.get_attribute("open") is None:
        severity.locator(":scope > summary").click()
    shared = panel.locator("details.bn-finding-shared[data-finding=initializer_dominant]")
    assert shared.count() == 1
    assert shared.get_attribute("data-runs") == str(SWEEP_SEEDS)
    assert shared.get_attribute("data-slot") == "batch_normalization"  # with the auto-named runs' layers
    summary = shared.locator(":scope > summary")
    assert f"in {SWEEP_SEEDS} runs" in summary.text_content()
    assert not shared.locator(".bn-finding").first.is_visible()  # folded until asked
    tab.locator("[data-picker=run-filter]").fill(r"lr0\.01_")  # the filter that selected them, for the picture
    top_screenshot(tab.page, "tab-sweep.png")
    summary.click()
    assert shared.locator(".bn-finding").count() == SWEEP_SEEDS
    assert shared.locator(".bn-finding").first.is_visible()
    listed = shared.locator(".bn-finding")
    assert [listed.nth(i).get_attribute("data-run") for i in range(listed.count())] == [
        f.run for f in by_check["initializer_dominant"]
    ]
    summary.click()
    assert tab.page.problems == []


def test_dark_mode_follows_tensorboard(tab):
    only(tab, "^init_")
    show_view(tab, "epochs")
    wait_ready(tab)
    page = tab.page

    def card_background() -> tuple[int, ...]:
        text = tab.locator(".bn-card").first.evaluate("node => getComputedStyle(node).backgroundColor")
        return tuple(int(v) for v in re.findall(r"\d+", text)[:3])

    assert card_background() == (255, 255, 255)
    page.evaluate("document.body.classList.add('dark-mode')")  # what TensorBoard's toggle does
    try:
        tab.locator("body.bn-dark .bn-app.bn-dark").wait_for(timeout=5000)
        wait_ready(tab)
        assert max(card_background()) < 80
        canvas = "[data-view=epochs-heatmap] canvas"
        assert count_pixels(tab, canvas, (255, 255, 255), equal=True) == 0  # no white left in the heatmap
        assert count_pixels(tab, canvas, (0x3A, 0x3A, 0x3A), equal=True) > 5000  # drawn on the dark surface
        screenshot(page, tab, "tab-dark.png")
    finally:
        page.evaluate("document.body.classList.remove('dark-mode')")
    tab.locator("body:not(.bn-dark)").wait_for(timeout=5000)
    wait_ready(tab)
    assert card_background() == (255, 255, 255)
    assert page.problems == []


def test_without_tensorboard_around_it_the_system_scheme_decides(tab):
    """The tab's page opened on its own (no readable parent): prefers-color-scheme."""
    context = tab.page.context.browser.new_context(color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{tab.url_root}/data/plugin_entry.html?name=bn_inspect")
        page.locator("body.bn-dark .bn-app.bn-dark").wait_for(timeout=30000)
        page.emulate_media(color_scheme="light")
        page.locator("body:not(.bn-dark) .bn-app:not(.bn-dark)").wait_for(timeout=5000)
    finally:
        context.close()


def test_findings_shared_by_runs_follow_the_match_mode(tab, auto_named):
    """The auto-named runs' initializers dominate their first layer in both: one entry while
    their layers are aligned by name, one per run when matched by exact path (which differ)."""
    only(tab, "^init_")
    assert auto_named["paths"]["init_default"][0] != auto_named["paths"]["init_custom"][0]
    panel = tab.locator("[data-panel=findings][data-status=ready]")
    panel.wait_for(timeout=60000)
    shared = panel.locator("details.bn-finding-shared[data-finding=initializer_dominant]")
    expect(shared).to_have_count(1)
    assert shared.get_attribute("data-runs") == "2"
    tab.locator("select[data-picker=match]").select_option("path")
    wait_ready(tab)
    expect(panel.locator("details.bn-finding-shared[data-finding=initializer_dominant]")).to_have_count(0)
    separate = panel.locator(".bn-finding[data-finding=initializer_dominant]")
    expect(separate).to_have_count(2)
    assert sorted(separate.nth(i).get_attribute("data-run") for i in range(2)) == list(AUTO_RUNS)
    tab.locator("select[data-picker=match]").select_option("auto")
    wait_ready(tab)
    assert tab.page.problems == []
