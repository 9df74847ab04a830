from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectChoice, SelectField, TextAreaField

from cms_media.ai.providers import BACKGROUNDS, OUTPUT_FORMATS, QUALITIES
from cms_media.services.generation import SIZE_LABELS, SIZES, GenerationOptions

QUALITY_LABELS = {"auto": "Automatic", "low": "Low (fastest)", "medium": "Medium", "high": "High"}
BACKGROUND_LABELS = {"auto": "Automatic", "opaque": "Opaque", "transparent": "Transparent"}
FORMAT_LABELS = {"png": "PNG", "webp": "WebP", "jpeg": "JPEG"}


class GenerateForm(FlaskForm):
    """Checked by :func:`cms_media.services.generation.check_options`, one place for the rules."""

    prompt = TextAreaField("Description")
    size = SelectField(
        "Image size", choices=[SelectChoice(s, SIZE_LABELS[s]) for s in SIZES], default="1024x1024"
    )
    count = IntegerField("Number of images", default=4)
    quality = SelectField(
        "Quality", choices=[SelectChoice(q, QUALITY_LABELS[q]) for q in QUALITIES], default="auto"
    )
    background = SelectField(
        "Background",
        choices=[SelectChoice(b, BACKGROUND_LABELS[b]) for b in BACKGROUNDS],
        default="auto",
    )
    output_format = SelectField(
        "File format",
        choices=[SelectChoice(f, FORMAT_LABELS[f]) for f in OUTPUT_FORMATS],
        default="png",
    )
    folder_id = HiddenField()

    @property
    def prompt_limit(self) -> int:
        return int(current_app.config["CMS_MEDIA_AI_PROMPT_MAX"])

    @property
    def max_images(self) -> int:
        return int(current_app.config["CMS_MEDIA_AI_MAX_IMAGES"])

    def options(self) -> GenerationOptions:
        return GenerationOptions(
            prompt=self.prompt.data or "",
            size=self.size.data,
            count=self.count.data or 0,
            quality=self.quality.data,
            background=self.background.data,
            output_format=self.output_format.data,
        )


class SaveForm(FlaskForm):
    """Add Selected: ticked ``slot`` ids with ``title-<id>``/``description-<id>`` fields."""

    folder_id = HiddenField()
