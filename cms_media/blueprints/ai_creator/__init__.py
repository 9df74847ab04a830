"""New → Create AI Image: the creator modal, its batches and candidates."""

from flask import Blueprint

bp = Blueprint("cms_media_ai", __name__)

from cms_media.blueprints.ai_creator import views  # noqa: E402,F401
