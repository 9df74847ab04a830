from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length


class FolderForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired("Give the folder a name."),
            Length(max=255, message="Folder names can be at most 255 characters."),
        ],
    )
    parent_id = HiddenField()


class UploadForm(FlaskForm):
    files = MultipleFileField("Images")
    folder_id = HiddenField()


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for confirmations such as delete."""
