"""One document: its page, its bytes, its thumbnail, and changes to it."""

from flask import Blueprint

bp = Blueprint("cms_media_documents", __name__)

from cms_media.blueprints.documents import views  # noqa: E402,F401
