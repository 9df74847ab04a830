"""Limits on generation requests, per user and per site (Flask-Limiter).

The counters live in ``CMS_MEDIA_RATELIMIT_STORAGE_URI``: ``memory://`` for one process,
``redis://…`` so that every web server of an installation shares them.
"""

from __future__ import annotations

from flask import Flask, current_app, render_template, request
from flask_limiter import Limiter, RequestLimit

# The endpoints that start paid provider calls.
GENERATION_ENDPOINTS = ("cms_media_ai.start", "cms_media_ai.retry")
MESSAGE = (
    "You have started many image generations in a short time. "
    "Wait a minute, then try again."
)


def _host_ids() -> tuple[str, str]:
    host = current_app.extensions["cms_media"].host
    user = host.current_user()
    user_id = host.user_id(user) if user is not None else f"ip:{request.remote_addr}"
    return str(host.current_site_id() or "-"), user_id


def per_user_key() -> str:
    site_id, user_id = _host_ids()
    return f"site:{site_id}:user:{user_id}"


def per_site_key() -> str:
    site_id, _user_id = _host_ids()
    return f"site:{site_id}"


def _breach(_limit: RequestLimit):
    """An htmx-friendly 429: the message lands in the creator's notice area."""
    body = render_template("cms_media/_error.html", title="Please wait", message=MESSAGE)
    response = current_app.make_response((body, 429))
    if request.headers.get("HX-Request"):
        response.headers["HX-Retarget"] = "#cm-ai-notice"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def install_limits(app: Flask) -> Limiter:
    """A limiter of the plugin's own, applied to the generation endpoints of ``app``."""
    limiter = Limiter(
        key_func=per_user_key,
        app=app,
        storage_uri=app.config["CMS_MEDIA_RATELIMIT_STORAGE_URI"],
        key_prefix="cms_media",
        headers_enabled=True,
        on_breach=_breach,
        enabled=app.config["CMS_MEDIA_RATELIMIT_ENABLED"],
    )
    per_user = limiter.limit(
        lambda: current_app.config["CMS_MEDIA_AI_LIMIT_PER_USER"], key_func=per_user_key
    )
    per_site = limiter.limit(
        lambda: current_app.config["CMS_MEDIA_AI_LIMIT_PER_SITE"], key_func=per_site_key
    )
    for endpoint in GENERATION_ENDPOINTS:
        app.view_functions[endpoint] = per_site(per_user(app.view_functions[endpoint]))
    return limiter
