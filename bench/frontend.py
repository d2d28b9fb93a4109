"""Render time of the BN Inspect tab in headless Chromium, from the tab's own performance marks.

A synthetic logdir of 20 runs whose BN layers have 2048 channels over 200 epochs is served by
a real ``tensorboard``; Playwright drives Debian's ``/usr/bin/chromium``. The tab records
"bn-inspect:<view>" measures: from starting a view to its first frame drawn (charts draw in
ResizeObserver callbacks before that frame paints). Per view:

* first show: fetch + decode + render (the fetch's own time is read from Resource Timing);
* shown again: the answer is cached by the tab, so this is the render alone (median of reps).

Also the heatmap component alone: ``Heatmap.setData`` of 2048 × 201 cells (colour range,
paint, draw); and the first show of the tab with the Rust data server: from navigating to the
tab until the Findings panel, the layer picker and the first view (Epochs, first layer) have
all drawn, on the plugin benchmark's logdir (20 runs × 50 layers × 200 epochs × 512 channels)
and on a sweep logdir (200 runs × 20 layers × 50 epochs × 64 channels).

Run: ``python -m bench.frontend [--quick]``.
"""

from __future__ import annotations

import argparse
import time

from bench.common import OUT_DIR, Figure, Section, at_most, median
from bench.synthetic_logdir import Spec, ensure_logdir
from bench.tensorboard_server import serve, wait_for
from examples.local_tensorboard import CHROMIUM, launch_chromium, show_view, tab_frame

GOAL_MS = 300.0
FIRST_SHOW_GOALS_S = {"plugin benchmark logdir": 2.0, "sweep logdir": 3.0}
FIRST_SHOW_SPECS = {
    "plugin benchmark logdir": Spec(runs=20, layers=50, epochs=200, channels=512),
    "sweep logdir": Spec(runs=200, layers=20, epochs=50, channels=64),
}
QUICK_FIRST_SHOW_SPECS = {"plugin benchmark logdir": Spec(runs=2, layers=3, epochs=5, channels=8)}
FIRST_SHOWN = (
    "section[data-panel=findings][data-status=ready]",
    ".bn-picker",
    "main[data-view] .bn-pane[data-status=ready]",
)
VIEW_TIMEOUT_MS = 120000  # the first show of a view fetches every run's 2048 x 201 values
VIEWPORT = {"width": 1400, "height": 900}
FULL = {"spec": Spec(runs=20, layers=2, epochs=200, channels=2048), "reps": 5}
QUICK = {"spec": Spec(runs=3, layers=1, epochs=4, channels=8), "reps": 1}

HEATMAP_ALONE = """async ([rows, cols]) => {
    const {Heatmap} = await import(new URL("heatmap.js", document.baseURI).toString());
    const values = new Float32Array(rows * cols);
    for (let i = 0; i < values.length; i++) values[i] = Math.sin(i / 977) + (i % cols) / cols;
    const map = new Heatmap({xLabel: "epoch", yLabel: "channel", valueLabel: "v", height: 500});
    map.root.style.width = "1200px";
    document.body.append(map.root);
    const start = performance.now();
    map.setData({rows, cols, values, colLabels: [...Array(cols).keys()]});
    const ms = performance.now() - start;
    map.root.remove();
    return ms;
}"""


def _shown_ms(tab, view: str, count: int) -> float:
    """Duration of the ``count``-th "bn-inspect:<view>" measure (waits for it)."""
    tab.wait_for_function(
        "([name, count]) => performance.getEntriesByName(name).length >= count", arg=[f"bn-inspect:{view}", count]
    )
    return tab.evaluate(
        "([name, i]) => performance.getEntriesByName(name)[i].duration", [f"bn-inspect:{view}", count - 1]
    )


def _fetch_ms(tab, route: str) -> float:
    """Duration of the newest fetch of ``route`` (Resource Timing)."""
    return tab.evaluate(
        """(route) => {
            const hits = performance.getEntriesByType("resource").filter((e) => new URL(e.name).pathname.endsWith("/" + route));
            return hits.length ? hits[hits.length - 1].duration : NaN;
        }""",
        route,
    )


def measure_views(url: str, spec: Spec, reps: int) -> dict:
    """Open the tab, select every run, and time the Epochs and Runs-compared views."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{url}/#bn_inspect")
        tab = tab_frame(page)
        tab.locator("main .bn-pane[data-status=ready]").wait_for(timeout=VIEW_TIMEOUT_MS)
        boxes = tab.locator("label.bn-run input[type=checkbox]")
        for i in range(boxes.count()):
            if not boxes.nth(i).is_checked():
                boxes.nth(i).check()
        selected = tab.locator("label.bn-run input:checked").count()
        results = {"selected_runs": selected}
        for view, route in (("epochs", "series"), ("compare", "compare")):
            show_view(tab, view, VIEW_TIMEOUT_MS)
            first = _shown_ms(tab, view, 1)
            fetch = _fetch_ms(tab, route)
            again = []
            for rep in range(reps):
                show_view(tab, "runs", VIEW_TIMEOUT_MS)
                show_view(tab, view, VIEW_TIMEOUT_MS)
                again.append(_shown_ms(tab, view, rep + 2))
            results[view] = {"first_ms": first, "fetch_ms": fetch, "render_ms": median(again), "renders_ms": again}
            if view == "epochs":
                heatmap = tab.locator("[data-view=epochs-heatmap] [data-chart=heatmap]")
                results["heatmap"] = [int(heatmap.get_attribute(f"data-{a}")) for a in ("rows", "cols")]
        results["heatmap_alone_ms"] = median(
            tab.evaluate(HEATMAP_ALONE, [spec.channels, spec.epochs + 1]) for _ in range(max(reps, 1))
        )
        browser.close()
    if errors:
        raise RuntimeError(f"the tab raised: {errors}")
    return results


def first_show_s(url: str, timeout_ms: float = VIEW_TIMEOUT_MS) -> dict[str, float]:
    """Seconds from navigating to the tab until the layer picker is drawn, the Epochs view of
    the first layer (opened as soon as its button exists) is drawn, and the Findings panel
    has its answer; ``"all"`` is the latest of them. ``"tensorboard"``: until TensorBoard's
    page had loaded the tab's iframe document (``plugin_entry.html``), before any code of the
    tab runs: TensorBoard's own floor."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        shown = {}

        def entry_loaded(request) -> None:  # TensorBoard's page has made the tab's iframe: its floor
            if "plugin_entry.html" in request.url and "tensorboard" not in shown:
                shown["tensorboard"] = time.perf_counter() - start

        page.on("requestfinished", entry_loaded)
        start = time.perf_counter()
        page.goto(f"{url}/#bn_inspect")
        tab = tab_frame(page)
        tab.locator(".bn-picker").first.wait_for(timeout=timeout_ms)
        shown["picker"] = time.perf_counter() - start
        tab.locator("button[data-view=epochs]").click()
        tab.locator("main[data-view=epochs] .bn-pane[data-status=ready]").wait_for(timeout=timeout_ms)
        shown["epochs"] = time.perf_counter() - start
        tab.locator("section[data-panel=findings][data-status=ready]").wait_for(timeout=timeout_ms)
        shown["findings"] = time.perf_counter() - start
        browser.close()
    shown["all"] = max(shown["picker"], shown["epochs"], shown["findings"])
    return shown


def measure_first_shows(quick: bool) -> list[tuple[str, Spec, dict[str, float], float]]:
    """``(name, spec, seconds shown (first_show_s), seconds until the runs route had every run)``
    per logdir: ``tensorboard --load_fast=true`` started once to time its load (polling the
    runs route), then again, the tab opened after 1.5 times that load time: the plugin's caches
    are as empty as a user finds them (polling would have filled them); the runs route is
    checked complete afterwards."""
    rows = []
    for name, spec in (QUICK_FIRST_SHOW_SPECS if quick else FIRST_SHOW_SPECS).items():
        logdir, _ = ensure_logdir(spec, OUT_DIR / ("quick" if quick else "full"))

        def complete(answer: dict, spec: Spec = spec) -> bool:
            return len(answer.get("runs", [])) == spec.runs and all(
                len(r["epochs"]) == spec.epochs + 1 for r in answer["runs"]
            )

        with serve(logdir, load_fast=True) as server:
            loaded = wait_for(server, complete, 1800)
        with serve(logdir, load_fast=True) as server:
            time.sleep(1.5 * loaded + 2.0)
            shown = first_show_s(server.url)
            wait_for(server, complete, 10)  # the first show saw every run loaded
        rows.append((name, spec, shown, loaded))
    return rows


def run(quick: bool = False) -> Section:
    """Benchmark 4 as a RESULTS.md section."""
    sizes = QUICK if quick else FULL
    spec: Spec = sizes["spec"]
    logdir, _ = ensure_logdir(spec, OUT_DIR / ("quick" if quick else "full"))

    def complete(answer: dict) -> bool:
        return len(answer.get("runs", [])) == spec.runs and all(
            len(r["epochs"]) == spec.epochs + 1 for r in answer["runs"]
        )

    with serve(logdir, load_fast=False) as server:
        wait_for(server, complete, 600)
        measured = measure_views(server.url, spec, sizes["reps"])
    if measured["heatmap"] != [spec.channels, spec.epochs + 1]:
        raise RuntimeError(
            f"the Epochs heatmap drew {measured['heatmap']} cells, not {spec.channels} x {spec.epochs + 1}"
        )
    epochs, compare = measured["epochs"], measured["compare"]
    cells = f"{spec.channels}-channel × {spec.epochs + 1}-step"
    figures: list[Figure] = [
        at_most(
            f"Epochs view, {cells} heatmap + drift + channel charts: render",
            epochs["render_ms"],
            GOAL_MS,
            "ms",
            f"first show incl. fetch {epochs['first_ms']:.0f} ms (fetch {epochs['fetch_ms']:.0f} ms)",
        ),
        at_most(
            f"Runs-compared view, {measured['selected_runs']} runs: render",
            compare["render_ms"],
            GOAL_MS,
            "ms",
            f"first show incl. fetch {compare['first_ms']:.0f} ms (fetch {compare['fetch_ms']:.0f} ms)",
        ),
        at_most(
            f"Heatmap component alone, {cells} (setData: range, paint, draw)",
            measured["heatmap_alone_ms"],
            GOAL_MS,
            "ms",
        ),
    ]
    first_shows = measure_first_shows(quick)
    figures += [
        at_most(
            f"first show of the tab, Rust data server, {name} ({spec.runs} runs × {spec.layers} layers × "
            f"{spec.epochs} epochs × {spec.channels} channels): Findings, picker and Epochs view drawn",
            shown["all"],
            FIRST_SHOW_GOALS_S.get(name, 2.0),
            "s",
            f"TensorBoard's floor (its page until the tab's iframe is loaded, no code of the tab yet) "
            f"{shown['tensorboard']:.2f} s, so the tab's own part is {shown['all'] - shown['tensorboard']:.2f} s; "
            f"picker {shown['picker']:.2f} s, Epochs view {shown['epochs']:.2f} s, Findings {shown['findings']:.2f} s "
            f"after navigation; the data server had loaded the logdir in {loaded:.0f} s before (a first server, "
            "timed; the tab opened on a second one, its caches empty)",
        )
        for name, spec, shown, loaded in first_shows
    ]
    details = [
        "| view | first show (fetch + render) | of which fetch | shown again (render), per rep |",
        "|---|---|---|---|",
    ]
    for name, row in (("Epochs", epochs), (f"Runs compared ({measured['selected_runs']} runs)", compare)):
        reps = ", ".join(f"{ms:.0f}" for ms in row["renders_ms"])
        details.append(f"| {name} | {row['first_ms']:.0f} ms | {row['fetch_ms']:.0f} ms | {reps} ms |")
    setup = (
        f"Headless Chromium ({CHROMIUM}, viewport {VIEWPORT['width']}×{VIEWPORT['height']}) on a real `tensorboard` "
        f"(Python loader) serving {spec.runs} synthetic runs × {spec.layers} BN layers × {spec.epochs} epochs × "
        f"{spec.channels} channels. Times are the tab's own performance measures, from starting a view to its "
        f'first frame drawn; "render" = the view shown again with its data cached (median of {sizes["reps"]}).'
    )
    return Section("Front end", setup, figures, details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    section = run(parser.parse_args().quick)
    for figure in section.figures:
        print(f"{figure.name}: {figure.formatted()} {figure.note}")
    print("\n".join(section.details))


if __name__ == "__main__":
    main()
