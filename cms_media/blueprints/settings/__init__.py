"""Settings pages: Instance Settings and Site Settings → AI Creator (with the site's usage)."""

from flask import Blueprint

bp = Blueprint("cms_media_settings", __name__)

from cms_media.blueprints.settings import views  # noqa: E402,F401
