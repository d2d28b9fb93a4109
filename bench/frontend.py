"""Render time of the BN Inspect tab in headless Chromium, from the tab's own performance marks.

A synthetic logdir of 20 runs whose BN layers have 2048 channels over 200 epochs is served by
a real ``tensorboard``; Playwright drives Debian's ``/usr/bin/chromium``. The tab records
"bn-inspect:<view>" measures: from starting a view to its first frame drawn (charts draw in
ResizeObserver callbacks before that frame paints). Per view:

* first show: fetch + decode + render (the fetch's own time is read from Resource Timing);
* shown again: the answer is cached by the tab, so this is the render alone (median of reps).

Also the heatmap component alone: ``Heatmap.setData`` of 2048 × 201 cells (colour range,
paint, draw).

Run: ``python -m bench.frontend [--quick]``.
"""

from __future__ import annotations

import argparse

from bench.common import OUT_DIR, Figure, Section, at_most, median
from bench.synthetic_logdir import Spec, ensure_logdir
from bench.tensorboard_server import serve, wait_for
from examples.local_tensorboard import CHROMIUM, launch_chromium, show_view, tab_frame

GOAL_MS = 300.0
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
