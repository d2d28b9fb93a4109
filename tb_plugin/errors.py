"""Errors a route answers with a 4xx JSON body ``{"error": "<message>"}``."""

from __future__ import annotations


class RouteError(Exception):
    """A request the plugin cannot answer; ``status`` is the HTTP status to send."""

    status = 400


class BadRequest(RouteError):
    """Malformed or missing parameters (HTTP 400)."""

    status = 400


class NotFound(RouteError):
    """Unknown run, layer, quantity, step or file (HTTP 404)."""

    status = 404
