"""The BN Inspect TensorBoard plugin: serves the data routes of :mod:`tb_plugin.routes` under
``/data/plugin/bn_inspect/<route>`` (a refused request gets a 4xx JSON ``{"error": "..."}``)
and every other path from ``tb_plugin/static`` (the ES modules of the tab).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tensorboard import plugin_util
from tensorboard.backend import application, http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from bn_inspect import schema
from tb_plugin import payload, routes, static_files
from tb_plugin.errors import RouteError
from tb_plugin.provider_reader import ProviderReader
from tb_plugin.read_cache import ReaderCache

STATIC_PREFIX = f"{application.DATA_PREFIX}{application.PLUGIN_PREFIX}/{schema.PLUGIN_NAME}/"


class BNInspectPlugin(base_plugin.TBPlugin):
    """The "BN Inspect" tab. Reads only through ``context.data_provider``."""

    plugin_name = schema.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider
        self._index_cache = ReaderCache()

    def get_plugin_apps(self) -> dict:
        apps = {f"/{route}": self._data_app(route) for route in routes.ROUTES}
        apps["/index.js"] = self._static
        apps["/*"] = self._static
        return apps

    def is_active(self) -> bool:
        """Cheap and always ``False``: TensorBoard activates the tab itself when its data
        provider lists ``bn_inspect`` data."""
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        # The tab has its own reload button (TensorBoard's does not reach iframed tabs).
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="BN Inspect", disable_reload=True)

    def _data_app(self, route: str) -> Callable:
        @wrappers.Request.application
        def app(request: wrappers.Request) -> wrappers.Response:
            reader = ProviderReader(
                self._data_provider,
                plugin_util.context(request.environ),
                plugin_util.experiment_id(request.environ),
                self._index_cache,
            )
            try:
                answer = routes.answer(route, reader, routes.Params(request.args.items(multi=True)))
            except RouteError as error:
                return _error(request, error)
            if answer.binary is not None:
                return http_util.Respond(request, answer.binary, payload.CONTENT_TYPE)
            return http_util.Respond(request, _json_text(answer.json), "application/json")

        return app

    @wrappers.Request.application
    def _static(self, request: wrappers.Request) -> wrappers.Response:
        relative = request.path[len(STATIC_PREFIX) :] if request.path.startswith(STATIC_PREFIX) else request.path
        try:
            path, content_type = static_files.resolve(relative)
        except RouteError as error:
            return _error(request, error)
        return http_util.Respond(request, path.read_bytes(), content_type)


def _error(request: wrappers.Request, error: RouteError) -> wrappers.Response:
    return http_util.Respond(request, {"error": str(error)}, "application/json", code=error.status)


def _json_text(value: Any) -> str | Any:
    """``value`` as JSON text; as is when it holds NaN or infinity, which TensorBoard's
    ``Respond`` spells as strings (its recursive cleaning costs ~0.1 s on the 0.5 MB runs
    overview of 20 runs x 50 layers, so answers without them skip it)."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return value
