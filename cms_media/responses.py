"""Response helpers that serve htmx and plain requests alike."""

from __future__ import annotations

import io

from flask import Response, abort, current_app, redirect, send_file
from htmx_flask import request

from cms_media.storage_s3 import presigned_redirect


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


def send_stored(
    key: str, mime_type: str, *, etag: str, download_name: str | None = None
) -> Response:
    """A stored file, to a user already checked for the right to see it.

    ``download_name`` makes it an attachment. The browser revalidates every time (private,
    no-cache) and gets a 304 from the ETag without storage being touched, so a permission
    change takes effect on the next view. With S3 storage in ``presigned`` mode the browser
    is redirected instead to a short-lived URL that S3 answers with the same type and
    disposition; the redirect is never cached, so every view passes the check again.
    """
    storage = current_app.extensions["cms_media"].storage
    presigned = presigned_redirect(
        storage,
        key,
        content_type=mime_type,
        filename=download_name,
        inline=download_name is None,
    )
    if presigned is not None:
        return presigned
    if request.if_none_match.contains(etag):
        response = Response(status=304)
        response.set_etag(etag)
    else:
        try:
            data = storage.read(key)
        except FileNotFoundError:
            abort(404)  # the row outlived its file
        response = send_file(
            io.BytesIO(data),
            mimetype=mime_type,
            as_attachment=download_name is not None,
            download_name=download_name,
            etag=etag,
            conditional=True,
            max_age=None,
        )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return response
