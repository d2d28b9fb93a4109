"""The BN Inspect tab as a notebook widget (anywidget): the tab's own ES modules
(``tb_plugin/static``) draw in the notebook, and the kernel answers their data requests from
the logdir with the tab's route table (:mod:`tb_plugin.routes`). No TensorBoard, no HTTP server,
no port: the widget talks to its kernel over the notebook's own channel.

Example:
    >>> from bn_inspect import show
    >>> show("logs", runs=["epochs/5", "epochs/50"], view="compare")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from bn_inspect import doctor, storage
from bn_inspect.notebook.logdir_provider import LogdirProvider
from tb_plugin import routes, static_files
from tb_plugin.errors import RouteError
from tb_plugin.provider_reader import ProviderReader
from tb_plugin.read_cache import ReaderCache

LOADER = Path(__file__).with_name("loader.js")
SOURCE_SUFFIXES = (".js", ".css")
REQUEST = "bn-inspect:request"  # the message types of tb_plugin/static/transport.js
ANSWER = "bn-inspect:answer"


def tab_sources() -> dict[str, str]:
    """Every ES module and stylesheet of the tab, by path relative to ``tb_plugin/static``."""
    return {
        path.relative_to(static_files.STATIC_DIR).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(static_files.STATIC_DIR.rglob("*"))
        if path.is_file() and path.suffix in SOURCE_SUFFIXES
    }


class InspectorWidget(anywidget.AnyWidget):
    """The BN Inspect views of the runs under one logdir; create it with :func:`show`."""

    _esm = LOADER
    _sources = traitlets.Dict().tag(sync=True)
    _options = traitlets.Dict().tag(sync=True)

    def __init__(self, provider: LogdirProvider, options: dict[str, Any]) -> None:
        super().__init__(_sources=tab_sources(), _options=options)
        self._provider = provider
        # Series indexes and findings kept while a run has no new data; no points (the provider
        # holds them all in memory already).
        self._cache = ReaderCache(max_values=0)
        self.on_msg(self._on_message)

    @property
    def logdir(self) -> storage.Location:
        """The directory whose runs the widget shows."""
        return self._provider.logdir

    def _on_message(self, _widget: Any, content: Any, _buffers: Sequence[bytes]) -> None:
        if not isinstance(content, dict) or content.get("type") != REQUEST:
            return
        reply: dict[str, Any] = {"type": ANSWER, "id": content.get("id")}
        buffers: list[bytes] = []
        try:
            answer = self.answer(str(content.get("route")), content.get("params") or [])
        except RouteError as error:
            reply.update(status=error.status, error=str(error))
        except Exception as error:  # a bug: shown in the view, not lost in the kernel's log
            traceback.print_exc()
            reply.update(status=500, error=f"{type(error).__name__}: {error}")
        else:
            if answer.binary is not None:
                reply["binary"] = True
                buffers.append(answer.binary)
            else:
                reply["json"] = answer.json
        self.send(reply, buffers)

    def answer(self, route: str, params: Sequence[Sequence[str]]) -> routes.Answer:
        """What the tab's HTTP ``route`` would answer with ``params`` (name, value pairs); the
        route the tab asks on load and Reload reads the logdir again first."""
        if route == routes.RELOAD_ROUTE:
            self._provider.reload()
        reader = ProviderReader(self._provider, None, "", self._cache)
        return routes.answer(route, reader, routes.Params((name, value) for name, value in params))


def show(
    logdir: str | os.PathLike | storage.Location, runs: Sequence[str] | None = None, view: str | None = None
) -> InspectorWidget:
    """Open the BN Inspect views of the runs under ``logdir`` in the notebook.

    The same views as TensorBoard's BN Inspect tab (runs and configurations, epochs, runs
    compared, training vs inference, and the Findings panel), answered inside the kernel; its
    Reload button reads the logdir again. Works in JupyterLab, Notebook 7, VS Code, Colab and
    marimo (anything that runs anywidget); needs ``pip install "bn-inspect[notebook]"``.

    Args:
        logdir: the directory holding one subdirectory of event files per run (as given to
            ``tensorboard --logdir``): a local path or an fsspec URL (``s3://bucket/exp``).
        runs: the runs to select at first (names as TensorBoard gives them, e.g. ``"epochs/5"``).
            Defaults to ``None``: the first eight.
        view: the view to open: one of ``"runs"``, ``"epochs"``, ``"compare"``, ``"modes"``.
            Defaults to ``None``: ``"runs"``.

    Returns:
        The widget; the last expression of a cell displays it.

    Raises:
        FileNotFoundError: ``logdir`` is not a directory.
        ValueError: an unknown view, or a run that the logdir does not hold.

    Example:
        >>> show("logs", runs=["epochs/5", "epochs/50"], view="compare")   # doctest: +SKIP
    """
    if view is not None and view not in doctor.VIEWS:
        raise ValueError(f"unknown view {view!r}; pass one of {', '.join(map(repr, doctor.VIEWS))}")
    if isinstance(runs, str):
        runs = [runs]
    provider = LogdirProvider(logdir)
    options: dict[str, Any] = {"view": view} if view is not None else {}
    if runs is not None:
        listed = ProviderReader(provider, None, "").index()
        missing = [run for run in runs if run not in listed]
        if missing:
            raise ValueError(
                f"no bn-inspect run {', '.join(map(repr, missing))} under {str(provider.logdir)!r}; "
                f"its runs are: {', '.join(map(repr, sorted(listed))) or 'none'}"
            )
        options["runs"] = list(runs)
    return InspectorWidget(provider, options)
