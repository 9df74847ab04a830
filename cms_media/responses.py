"""Response helpers that serve htmx and plain requests alike."""

from __future__ import annotations

from flask import Response, redirect
from htmx_flask import request


def hx_redirect(url: str) -> Response:
    """Send the browser to ``url``: by ``HX-Redirect`` for htmx, by 303 otherwise."""
    if request.htmx:
        response = Response(status=204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)


def hx_trigger(event: str, status: int = 204, body: str = "") -> Response:
    """An empty answer that tells the page something changed (the page refreshes itself)."""
    response = Response(body, status=status)
    response.headers["HX-Trigger"] = event
    return response
