"""Documents and Media: the folder browser, new folders and uploads."""

from flask import Blueprint

bp = Blueprint("cms_media_library", __name__)

from cms_media.blueprints.library import views  # noqa: E402,F401
