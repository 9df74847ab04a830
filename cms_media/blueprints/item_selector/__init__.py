"""The item selector that rich-text editors open to pick, upload or create an image."""

from flask import Blueprint

bp = Blueprint("cms_media_selector", __name__)

from cms_media.blueprints.item_selector import views  # noqa: E402,F401
