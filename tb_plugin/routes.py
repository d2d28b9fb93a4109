"""The tab's data routes, defined once: TensorBoard's HTTP routes (:mod:`tb_plugin.plugin`) and
the notebook widget's messages (:mod:`bn_inspect.notebook`) both answer through :func:`answer`.

Binary answers use :mod:`tb_plugin.payload`; a refused request raises a
:class:`~tb_plugin.errors.RouteError` (HTTP: a 4xx JSON ``{"error": "..."}``):

``runs``
    JSON: every run with bn-inspect data, its config and per-layer headline figures (frozen
    layers, non-finite channels). The front end asks it on load and on Reload.
``series?run=R&layer=L&quantity=Q[&timeline=epoch|batch]``
    Binary: ``values`` ``[steps, channels]``, ``drift`` ``[steps]``, ``epochs`` ``[steps]``.
``compare?run=R1&run=R2...&layer=L`` or ``compare?run=R1&layer=L1&run=R2&layer=L2...``
    Binary: channel summaries over epochs per run, residual initializer weight, distances; one
    layer for every run, or each run's own (an aligned slot).
``alignment?run=R1&run=R2...[&match=auto|path|position]``
    JSON: the slots of :func:`bn_inspect.alignment.align_layers` (which layers of the runs are
    the same layer, how each was matched, why a layer stays unmatched).
``modes?run=R``
    Binary: model-output gap over epochs; per-layer probe gaps, EMA staleness and replica
    spread ``[layers, steps]``; max staleness and replica spread over epochs.
``layer_step?run=R&layer=L&step=S``
    Binary: every per-channel quantity of the layer at step ``S``.
``findings[?run=R1&run=R2...][&match=auto|path|position]``
    JSON: what :func:`bn_inspect.doctor.diagnose` finds in those runs (all runs without ``run``),
    most severe first, each with the view, run and layer that show it; and ``groups``, the
    findings shared by several runs (:func:`bn_inspect.doctor.group_findings`, layers aligned
    with ``match``).

Example:
    >>> answer("modes", reader, Params([("run", "default")])).binary[:4]   # doctest: +SKIP
    b'\\xa4\\x01\\x00\\x00'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bn_inspect import schema
from tb_plugin import payload, queries
from tb_plugin.errors import BadRequest, NotFound
from tb_plugin.provider_reader import ProviderReader

RELOAD_ROUTE = "runs"  # asked on load and by the Reload button: lists every run afresh


@dataclass(frozen=True)
class Answer:
    """A route's answer: JSON-compatible ``json``, or ``binary`` bytes of a payload."""

    json: Any = None
    binary: bytes | None = None


class Params:
    """A request's parameters as ``(name, value)`` pairs, in order, a name possibly repeated
    (as in a URL query string).

    Example:
        >>> Params([("run", "a"), ("run", "b"), ("step", "3")]).getlist("run")
        ['a', 'b']
    """

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self._pairs = [(str(name), str(value)) for name, value in pairs]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        return next((value for key, value in self._pairs if key == name), default)

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [value for key, value in self._pairs if key == name]

    def required(self, name: str) -> str:
        """The value of ``name``; ``BadRequest`` when missing or empty."""
        value = self.get(name)
        if not value:
            raise BadRequest(f"missing query parameter {name!r}")
        return value

    def required_int(self, name: str) -> int:
        """The value of ``name`` as an integer; ``BadRequest`` when it is not one."""
        text = self.required(name)
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"query parameter {name!r} must be an integer; got {text!r}") from None


def _binary(answer: tuple[dict, dict]) -> Answer:
    meta, arrays = answer
    return Answer(binary=payload.encode(meta, arrays))


def _runs(reader: ProviderReader, params: Params) -> Answer:
    return Answer(json=queries.runs_overview(reader))


def _series(reader: ProviderReader, params: Params) -> Answer:
    timeline = params.get("timeline", schema.TIMELINE_EPOCH)
    return _binary(
        queries.layer_series(
            reader, params.required("run"), params.required("layer"), params.required("quantity"), timeline
        )
    )


def _compare(reader: ProviderReader, params: Params) -> Answer:
    params.required("layer")
    return _binary(queries.compare_runs(reader, params.getlist("run"), params.getlist("layer")))


def _alignment(reader: ProviderReader, params: Params) -> Answer:
    return Answer(json=queries.align_runs(reader, params.getlist("run"), params.get("match", "auto")))


def _modes(reader: ProviderReader, params: Params) -> Answer:
    return _binary(queries.train_vs_inference(reader, params.required("run")))


def _layer_step(reader: ProviderReader, params: Params) -> Answer:
    return _binary(
        queries.layer_at_step(reader, params.required("run"), params.required("layer"), params.required_int("step"))
    )


def _findings(reader: ProviderReader, params: Params) -> Answer:
    return Answer(json=queries.findings(reader, params.getlist("run"), params.get("match", "auto")))


ROUTES: dict[str, Callable[[ProviderReader, Params], Answer]] = {
    "runs": _runs,
    "series": _series,
    "compare": _compare,
    "alignment": _alignment,
    "modes": _modes,
    "layer_step": _layer_step,
    "findings": _findings,
}


def answer(route: str, reader: ProviderReader, params: Params) -> Answer:
    """Answer ``route`` with ``params`` from ``reader``; ``NotFound`` for an unknown route."""
    handler = ROUTES.get(route)
    if handler is None:
        raise NotFound(f"unknown route {route!r}; the routes are {', '.join(ROUTES)}")
    return handler(reader, params)
