"""The BN Inspect TensorBoard plugin: routes only.

Data routes (relative to ``/data/plugin/bn_inspect/``); binary answers use
:mod:`tb_plugin.payload`, errors are 4xx JSON ``{"error": "..."}``:

``runs``
    JSON: every run with bn-inspect data, its config and per-layer headline figures (frozen
    layers, non-finite channels).
``series?run=R&layer=L&quantity=Q[&timeline=epoch|batch]``
    Binary: ``values`` ``[steps, channels]``, ``drift`` ``[steps]``, ``epochs`` ``[steps]``.
``compare?run=R1&run=R2...&layer=L``
    Binary: channel summaries over epochs per run, residual initializer weight, distances.
``modes?run=R``
    Binary: model-output gap over epochs; per-layer probe gaps, EMA staleness and replica
    spread ``[layers, steps]``; max staleness and replica spread over epochs.
``layer_step?run=R&layer=L&step=S``
    Binary: every per-channel quantity of the layer at step ``S``.
``findings[?run=R1&run=R2...]``
    JSON: what :func:`bn_inspect.doctor.diagnose` finds in those runs (all runs without ``run``),
    most severe first, each with the view, run and layer that show it.

Every other path serves a file of ``tb_plugin/static`` (the ES modules of the tab).
"""

from __future__ import annotations

from collections.abc import Callable

from tensorboard import plugin_util
from tensorboard.backend import application, http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from bn_inspect import schema
from tb_plugin import payload, queries, static_files
from tb_plugin.errors import BadRequest, RouteError
from tb_plugin.provider_reader import IndexCache, ProviderReader

STATIC_PREFIX = f"{application.DATA_PREFIX}{application.PLUGIN_PREFIX}/{schema.PLUGIN_NAME}/"
Handler = Callable[[wrappers.Request, ProviderReader], wrappers.Response]


def _arg(request: wrappers.Request, name: str) -> str:
    value = request.args.get(name)
    if value is None or value == "":
        raise BadRequest(f"missing query parameter {name!r}")
    return value


def _int_arg(request: wrappers.Request, name: str) -> int:
    text = _arg(request, name)
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer; got {text!r}") from None


def _binary(request: wrappers.Request, answer: tuple[dict, dict]) -> wrappers.Response:
    meta, arrays = answer
    return http_util.Respond(request, payload.encode(meta, arrays), payload.CONTENT_TYPE)


class BNInspectPlugin(base_plugin.TBPlugin):
    """The "BN Inspect" tab. Reads only through ``context.data_provider``."""

    plugin_name = schema.PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._data_provider = context.data_provider
        self._index_cache: IndexCache = {}

    def get_plugin_apps(self) -> dict:
        return {
            "/runs": self._route(self._runs),
            "/series": self._route(self._series),
            "/compare": self._route(self._compare),
            "/modes": self._route(self._modes),
            "/layer_step": self._route(self._layer_step),
            "/findings": self._route(self._findings),
            "/index.js": self._route(self._static),
            "/*": self._route(self._static),
        }

    def is_active(self) -> bool:
        """Cheap and always ``False``: TensorBoard activates the tab itself when its data
        provider lists ``bn_inspect`` data."""
        return False

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        # The tab has its own reload button (TensorBoard's does not reach iframed tabs).
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="BN Inspect", disable_reload=True)

    def _route(self, handler: Handler) -> Callable:
        @wrappers.Request.application
        def app(request: wrappers.Request) -> wrappers.Response:
            reader = ProviderReader(
                self._data_provider,
                plugin_util.context(request.environ),
                plugin_util.experiment_id(request.environ),
                self._index_cache,
            )
            try:
                return handler(request, reader)
            except RouteError as error:
                return http_util.Respond(request, {"error": str(error)}, "application/json", code=error.status)

        return app

    def _runs(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        return http_util.Respond(request, queries.runs_overview(reader), "application/json")

    def _series(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        timeline = request.args.get("timeline", schema.TIMELINE_EPOCH)
        answer = queries.layer_series(
            reader, _arg(request, "run"), _arg(request, "layer"), _arg(request, "quantity"), timeline
        )
        return _binary(request, answer)

    def _compare(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        answer = queries.compare_runs(reader, request.args.getlist("run"), _arg(request, "layer"))
        return _binary(request, answer)

    def _modes(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        return _binary(request, queries.train_vs_inference(reader, _arg(request, "run")))

    def _layer_step(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        answer = queries.layer_at_step(reader, _arg(request, "run"), _arg(request, "layer"), _int_arg(request, "step"))
        return _binary(request, answer)

    def _findings(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        return http_util.Respond(request, queries.findings(reader, request.args.getlist("run")), "application/json")

    def _static(self, request: wrappers.Request, reader: ProviderReader) -> wrappers.Response:
        relative = request.path[len(STATIC_PREFIX) :] if request.path.startswith(STATIC_PREFIX) else request.path
        path, content_type = static_files.resolve(relative)
        return http_util.Respond(request, path.read_bytes(), content_type)
