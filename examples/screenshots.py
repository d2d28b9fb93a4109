"""Pictures of the BN Inspect tab on the examples' logs, for the README and the docs.

Run ``python examples/run_all.py`` first, then ``python examples/screenshots.py`` (from any
directory; ``python examples/screenshots.py frozen.png`` takes only that picture). For each example it starts TensorBoard on that example's sub-directory of
``logs/``, opens the tab in headless Chromium (Playwright), ticks the runs, picks the layer and
the view that show the example's point, hides the other cards and saves a PNG into
``examples/screenshots/``. Everything is selected by the text the tab shows (button titles,
labels, card titles), so a picture keeps working when the tab's layout changes.
"""

from __future__ import annotations

import io
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from local_tensorboard import launch_chromium, serve
from PIL import Image  # a dependency of tensorboard
from playwright.sync_api import FrameLocator, Page, sync_playwright

EXAMPLES = Path(__file__).resolve().parent
LOG_ROOT = EXAMPLES.parent / "logs"
OUTPUT = EXAMPLES / "screenshots"
WIDTH = 1120  # CSS pixels: two chart columns, text still legible when a page scales it down
SCALE = 2  # device pixels per CSS pixel
TOP_SHADOW = 8  # CSS pixels of TensorBoard's toolbar shadow over the top of the tab
MARGIN = 12  # CSS pixels kept below the last card
BACKGROUND = (245, 245, 245)  # the tab's background, between stacked views


@dataclass(frozen=True)
class Strip:
    """One view of the tab, showing only the cards whose title starts with one of ``cards``
    and, in the Findings panel above the views, the first finding containing each of ``findings``
    (no findings: no panel)."""

    view: str
    cards: tuple[str, ...]
    findings: tuple[str, ...] = ()
    focus_run: str | None = None  # the run picked in the view's own "Run" menu


@dataclass(frozen=True)
class Picture:
    """One PNG: the runs ticked in ``logs/<logdir>``, a layer, and its views stacked."""

    name: str
    logdir: str
    runs: tuple[str, ...]
    layer: str
    strips: tuple[Strip, ...]


STALENESS = ("Model output", "EMA staleness: worst layer", "Moving vs population")
PICTURES = (
    Picture(
        "epochs.png",
        "epochs",
        ("5", "50"),
        "bn",
        (Strip("Training vs inference", STALENESS, ("moving statistics of", "the initializers still weigh"), "5"),),
    ),
    Picture(  # auto-named layers (batch_normalization, _1, _2), aligned as one slot
        "initializers.png",
        "initializers",
        ("default", "constant_0.5", "moving_only_0.5"),
        "batch_normalization",
        (
            Strip(
                "Runs compared",
                ("moving mean", "moving variance", "Initializer weight left"),
                ("the initializers still weigh",),
            ),
        ),
    ),
    Picture(
        "modes.png",
        "modes",
        ("probe_64", "probe_1"),
        "bn",
        (
            Strip(
                "Training vs inference",
                ("Model output", "Probe batch vs moving"),
                ("the probe has 1 sample", "training and inference outputs differ"),
                "probe_1",
            ),
        ),
    ),
    Picture(
        "frozen.png",
        "frozen",
        ("frozen_backbone", "frozen_recalibrated", "trainable_backbone"),
        "backbone/bn",
        (
            Strip(
                "Training vs inference",
                ("Model output", "EMA staleness: worst layer"),
                ("is frozen", "frozen (inference mode"),
            ),
            Strip("Runs compared", ("moving mean", "moving variance", "Initializer weight left")),
        ),
    ),
    Picture(
        "recalibrate.png",
        "recalibrate",
        ("linear_10ep", "linear_10ep_m0.999"),
        "bn",
        (
            Strip(
                "Training vs inference",
                STALENESS,
                ("moving statistics of", "the initializers still weigh"),
                "linear_10ep_m0.999",
            ),
        ),
    ),
)


def listed_runs(url: str) -> str | None:
    """The tab's run listing as text, or None while TensorBoard does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/data/plugin/bn_inspect/runs", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


@contextmanager
def tensorboard(logdir: Path, runs: tuple[str, ...], timeout: float = 180.0) -> Iterator[str]:
    """Serve ``logdir`` on a free port; yield its URL once ``runs`` are loaded and stable."""
    with serve(logdir, "--reload_interval", "0") as (url, process):  # load once
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tensorboard exited with code {process.returncode} on {logdir}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"tensorboard did not list the runs {runs} of {logdir} in {timeout:.0f} s")
            listing = listed_runs(url)
            if listing and listing == previous:
                names = {run["run"] for run in json.loads(listing)["runs"]}
                if names.issuperset(runs):
                    break
            previous = listing
            time.sleep(1.0)
        yield url


def wait_ready(page: Page, tab: FrameLocator) -> None:
    """Wait until the current view and the Findings panel have loaded and drawn their data."""
    tab.locator("main .bn-pane[data-status=ready]").wait_for(timeout=60000)
    tab.locator("[data-status=loading]").first.wait_for(state="detached", timeout=60000)
    page.wait_for_timeout(600)  # charts draw on ResizeObserver callbacks


def open_tab(page: Page, url: str) -> FrameLocator:
    """Open TensorBoard's BN Inspect tab; return its iframe."""
    page.goto(f"{url}/#bn_inspect")
    tab = page.frame_locator("iframe")
    wait_ready(page, tab)
    return tab


def select_runs(page: Page, tab: FrameLocator, runs: tuple[str, ...], every_run: list[str]) -> None:
    """Tick ``runs`` in the run picker, untick every other run."""
    for run in every_run:
        box = tab.get_by_role("checkbox", name=run, exact=True)
        if box.is_checked() != (run in runs):
            box.set_checked(run in runs)
            wait_ready(page, tab)


def show(page: Page, tab: FrameLocator, strip: Strip) -> None:
    """Open the strip's view and focus run, then hide every card it does not keep."""
    tab.get_by_role("button", name=strip.view, exact=True).click()
    wait_ready(page, tab)
    if strip.focus_run:
        tab.locator("main label", has=tab.get_by_text("Run", exact=True)).locator("select").select_option(
            strip.focus_run
        )
        wait_ready(page, tab)
    shown = tab.locator("body").evaluate(
        """(body, {cards, findings}) => {
            const hide = (node) => (node.style.display = "none");
            const titles = [...body.querySelectorAll("h3")];
            const panel = titles.find((h) => h.textContent.trim() === "Findings")?.closest("section");
            if (panel && !findings.length) hide(panel);
            const items = panel ? [...panel.querySelectorAll("li")] : [];
            const kept = new Set(findings.map((text) => items.find((item) => item.textContent.includes(text))));
            kept.delete(undefined);
            items.filter((item) => !kept.has(item)).forEach(hide);
            for (const group of panel ? panel.querySelectorAll("details") : []) {
                const inKept = [...kept].some((item) => item.contains(group));  // a finding shared by runs
                if (!inKept) group.open = true;  // severity groups open; a shared finding stays one entry
                group.querySelectorAll("ul").forEach((list) => (list.style.maxHeight = "none"));
                if (!inKept && ![...kept].some((item) => group.contains(item))) hide(group);
            }
            let shownCards = 0;
            for (const title of body.querySelectorAll("main h3")) {
                if (cards.some((text) => title.textContent.startsWith(text))) shownCards += 1;
                else hide(title.closest("section"));
            }
            return {cards: shownCards, findings: kept.size};
        }""",
        {"cards": list(strip.cards), "findings": list(strip.findings)},
    )
    if shown["cards"] < len(strip.cards) or shown["findings"] < len(strip.findings):
        raise RuntimeError(f"{strip} found only {shown['cards']} card(s) and {shown['findings']} finding(s)")


def capture(page: Page, tab: FrameLocator) -> Image.Image:
    """The tab down to its last card shown; the window grows to that height first."""
    bottom = tab.locator("body").evaluate(
        """(body) => Math.max(...[...body.querySelectorAll("h3")]
            .filter((title) => title.offsetParent !== null)
            .map((title) => title.closest("section").getBoundingClientRect().bottom + window.scrollY))"""
    )
    height = int(bottom) + MARGIN
    page.mouse.move(0, 0)  # no hover highlight in the picture
    frame = page.locator("iframe").bounding_box()
    page.set_viewport_size({"width": WIDTH, "height": int(frame["y"]) + height})
    page.wait_for_timeout(600)
    frame = page.locator("iframe").bounding_box()
    clip = {"x": frame["x"], "y": frame["y"] + TOP_SHADOW, "width": frame["width"], "height": height - TOP_SHADOW}
    return Image.open(io.BytesIO(page.screenshot(clip=clip)))


def stack(images: list[Image.Image]) -> Image.Image:
    """Images one below the other on the tab's background."""
    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), BACKGROUND)
    top = 0
    for image in images:
        out.paste(image, (0, top))
        top += image.height
    return out


def take(page: Page, picture: Picture) -> Path:
    """Serve the picture's logs, drive the tab to it and save it; return the PNG's path."""
    logdir = LOG_ROOT / picture.logdir
    every_run = sorted(path.parent.name for path in logdir.glob("*/events.out.tfevents.*"))
    with tensorboard(logdir, picture.runs) as url:
        tab = open_tab(page, url)
        select_runs(page, tab, picture.runs, every_run)
        tab.get_by_label("Layer").select_option(picture.layer)
        wait_ready(page, tab)
        images = []
        for strip in picture.strips:
            show(page, tab, strip)
            images.append(capture(page, tab))
            page.set_viewport_size({"width": WIDTH, "height": 900})
    path = OUTPUT / picture.name
    # 256 colours: a third of the bytes, no visible loss on the tab's flat colours
    stack(images).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def check_logs(pictures: list[Picture]) -> None:
    """Exit with a clear message unless every run ``pictures`` show has been logged."""
    missing = [
        f"{picture.logdir}/{run}"
        for picture in pictures
        for run in picture.runs
        if not any((LOG_ROOT / picture.logdir / run).glob("events.out.tfevents.*"))
    ]
    if missing:
        sys.exit(f"No logs for {', '.join(missing)} in {LOG_ROOT}: run python examples/run_all.py first.")


def main(names: list[str]) -> None:
    """Take the pictures named in ``names`` (file names, e.g. ``frozen.png``), or all."""
    unknown = set(names) - {picture.name for picture in PICTURES}
    if unknown:
        sys.exit(f"No picture named {', '.join(sorted(unknown))}; pictures: {', '.join(p.name for p in PICTURES)}.")
    pictures = [picture for picture in PICTURES if not names or picture.name in names]
    check_logs(pictures)
    OUTPUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900}, device_scale_factor=SCALE)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        for picture in pictures:
            path = take(page, picture)
            print(f"{path.relative_to(EXAMPLES.parent)}  ({time.perf_counter() - start:.0f} s)")
        browser.close()
    if errors:
        sys.exit("The tab reported errors:\n" + "\n".join(errors))


if __name__ == "__main__":
    main(sys.argv[1:])
