from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

ROOT_CHOICE = ""


class DocumentForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[
            DataRequired("Give the document a title."),
            Length(max=255, message="Titles can be at most 255 characters."),
        ],
    )
    description = TextAreaField(
        "Description",
        validators=[Length(max=5000, message="Descriptions can be at most 5000 characters.")],
    )


class MoveForm(FlaskForm):
    folder_id = SelectField("Move to", choices=[], validate_choice=True)
