"""The plugin's single entry point: ``CmsMedia(app, host=...)``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, render_template, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from htmx_flask import Htmx, request
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cms_media import config
from cms_media.access import LoginRequired
from cms_media.encryption import SecretBox, build_secret_box
from cms_media.host import HostAdapter
from cms_media.queue import JobQueue
from cms_media.rate_limits import install_limits
from cms_media.responses import hx_redirect
from cms_media.services.generation import describe_generation
from cms_media.storage import Storage, build_storage

# Templates and static files shared by every feature blueprint.
assets_bp = Blueprint("cms_media", __name__, template_folder="templates", static_folder="static")
OWN_BLUEPRINTS = (
    "cms_media_library",
    "cms_media_documents",
    "cms_media_ai",
    "cms_media_settings",
    "cms_media_selector",
)
UPLOAD_ENDPOINTS = {"cms_media_library.upload"}
FORM_BYTES_LIMIT = 1024 * 1024


class CmsMedia:
    """Adds Documents and Media to a Flask CMS.

    ``db`` is the host's Flask-SQLAlchemy object (found on the app when omitted); ``host`` tells
    the plugin who the user is, which site a request is in, and what the user may do there.
    """

    db: Any
    host: HostAdapter
    storage: Storage
    secret_box: SecretBox
    queue: JobQueue

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        if app is not None:
            self.init_app(app, **options)

    def init_app(self, app: Flask, *, db: Any = None, host: HostAdapter | None = None) -> None:
        config.apply_defaults(app)
        self.db = db if db is not None else app.extensions["sqlalchemy"]
        self.host = host if host is not None else HostAdapter()
        self.storage = build_storage(app)
        self.secret_box = build_secret_box(app)
        self.queue = JobQueue(app)
        if "htmx" not in app.extensions:
            Htmx(app)
        if "csrf" not in app.extensions:
            CSRFProtect(app)
        app.extensions["cms_media"] = self

        from cms_media.blueprints.documents import bp as documents_bp
        from cms_media.blueprints.item_selector import bp as selector_bp
        from cms_media.blueprints.library import bp as library_bp

        prefix = app.config["CMS_MEDIA_URL_PREFIX"]
        app.register_blueprint(assets_bp, url_prefix=prefix)
        app.register_blueprint(library_bp, url_prefix=prefix)
        app.register_blueprint(documents_bp, url_prefix=f"{prefix}/documents")
        app.register_blueprint(selector_bp, url_prefix=f"{prefix}/selector")
        if app.config["CMS_MEDIA_AI_FEATURE"]:
            from cms_media.blueprints.ai_creator import bp as ai_bp
            from cms_media.blueprints.settings import bp as settings_bp

            app.register_blueprint(ai_bp, url_prefix=f"{prefix}/ai")
            app.register_blueprint(settings_bp, url_prefix=f"{prefix}/settings")
            self.limiter = install_limits(app)
        # First of all before-request hooks: the size limit must be set before anything (CSRF
        # checking included) reads the body.
        app.before_request_funcs.setdefault(None, []).insert(0, _limit_request_size)
        app.register_error_handler(LoginRequired, _login_required)
        app.register_error_handler(HTTPException, _http_error)
        app.context_processor(_template_globals)
        app.add_template_filter(human_size, "cm_filesize")
        app.add_template_filter(describe_generation, "cm_generation_details")

        from cms_media.cli import cli

        app.cli.add_command(cli)


def human_size(byte_count: int) -> str:
    """1536 → "1.5 KB"."""
    if byte_count < 1024:
        return f"{byte_count} B"
    if byte_count < 1024 * 1024:
        return f"{byte_count / 1024:.1f} KB"
    return f"{byte_count / (1024 * 1024):.1f} MB"


def _template_globals() -> dict[str, Any]:
    return {
        "cms_media_base_template": current_app.config["CMS_MEDIA_BASE_TEMPLATE"],
        "cms_media_selector_script": _selector_script,
    }


def _selector_script() -> Markup:
    """The ``<script>`` a host page adds to offer the item selector to its editors."""
    return Markup(
        '<script src="{}" data-selector-url="{}" defer></script>'.format(
            escape(url_for("cms_media.static", filename="cms_media/item_selector.js")),
            escape(url_for("cms_media_selector.index")),
        )
    )


def _limit_request_size() -> None:
    if request.blueprint in OWN_BLUEPRINTS:
        upload = request.endpoint in UPLOAD_ENDPOINTS
        request.max_content_length = (
            current_app.config["CMS_MEDIA_MAX_UPLOAD_BYTES"] if upload else FORM_BYTES_LIMIT
        )


def _login_required(_error: LoginRequired):
    return hx_redirect(current_app.extensions["cms_media"].host.login_url(request.full_path))


ERROR_TITLES = {
    400: "That request could not be used",
    403: "Not allowed",
    404: "Not found",
    413: "The upload is too large",
}


def _http_error(error: HTTPException):
    """Plugin routes answer errors with a short message page (or fragment), never a trace."""
    if request.blueprint not in OWN_BLUEPRINTS or error.response is not None:
        return error  # not ours, or it carries its own response (a rate limit's)
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["CMS_MEDIA_MAX_UPLOAD_BYTES"] // (1024 * 1024)
        message = f"Uploads can be at most {limit} MB at a time. Upload fewer or smaller files."
    elif isinstance(error, CSRFError):
        message = "Your session expired or the form is stale. Reload the page and try again."
    elif error.code == 404 and request.blueprint in ("cms_media_library", "cms_media_documents"):
        message = "There is no such folder or document in this site."
    elif error.code == 404:
        message = "There is no such page here."
    else:
        message = error.description or ""
    code = error.code or 500
    template = "cms_media/_error.html" if request.htmx else "cms_media/error.html"
    return (
        render_template(
            template, title=ERROR_TITLES.get(code, "Something went wrong"), message=message
        ),
        code,
    )
