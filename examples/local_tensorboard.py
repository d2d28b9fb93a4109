"""TensorBoard with the BN Inspect tab on a free local port, and Debian's headless Chromium to
look at it: shared by ``examples/screenshots.py``, the browser tests and the benchmarks.

Example:
    >>> with serve("logs") as (url, process):  # doctest: +SKIP
    ...     print(url)
    http://127.0.0.1:40123
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

CHROMIUM = "/usr/bin/chromium"  # Debian's package; browser downloads are not used
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


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tensorboard_command(logdir: str | os.PathLike, port: int, *extra_args: str) -> list[str]:
    """The ``tensorboard`` command of this Python environment, serving ``logdir`` on loopback."""
    script = Path(sys.executable).with_name("tensorboard")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "tensorboard.main"]
    return [*program, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port), *extra_args]


def stop(process: subprocess.Popen) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(
    logdir: str | os.PathLike, *extra_args: str, log: IO[Any] | int = subprocess.DEVNULL
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``tensorboard`` on ``logdir`` and a free port; yield ``(url, process)``; stop it.

    Returns at once: poll the URL until it answers (TensorBoard imports TensorFlow first).
    """
    port = free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        tensorboard_command(logdir, port, *extra_args), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop(process)


def wait_for_server(url: str, process: subprocess.Popen, ready: Callable[[bytes], bool], timeout: float = 90.0) -> None:
    """Poll ``url`` until its answer satisfies ``ready``; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server of {url} exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if ready(response.read()):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in time")


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, through a Playwright instance."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def watched_page(browser: Any, viewport: dict) -> Any:
    """A new page whose ``problems`` list collects page errors and dialogs (which it dismisses):
    an ``alert`` from a hostile run name shows up there."""
    page = browser.new_page(viewport=viewport)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return page


def tab_frame(page: Any, timeout: float = 60.0) -> Any:
    """The BN Inspect tab's iframe in a TensorBoard page, waiting up to ``timeout`` s for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = [f for f in page.frames if "plugin_entry.html?name=bn_inspect" in f.url]
        if frames:
            return frames[0]
        page.wait_for_timeout(100)
    raise TimeoutError(f"the BN Inspect iframe did not appear within {timeout:.0f} s")


def show_view(tab: Any, view: str, timeout_ms: float = 20000) -> None:
    """Click the tab's ``view`` button and wait until every pane of that view has drawn."""
    tab.locator(f"button[data-view={view}]").click()
    tab.locator(f"main[data-view={view}] .bn-pane[data-status=ready]").wait_for(timeout=timeout_ms)
