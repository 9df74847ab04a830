from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from cms_media.ai.providers import DEFAULT_MODEL, MODELS

# A key is never rendered back: PasswordField leaves its value attribute empty, and an empty
# submit keeps the stored key.
KEY_LENGTH = Length(max=300, message="An API key is at most 300 characters long.")


class InstanceAiForm(FlaskForm):
    api_key = PasswordField("OpenAI API key", validators=[Optional(), KEY_LENGTH])
    remove_key = BooleanField("Remove the stored key")
    enabled = BooleanField("Enable AI image creation")
    model = SelectField(
        "Default model",
        choices=[
            SelectChoice(model, f"{model} (recommended)" if model == DEFAULT_MODEL else model)
            for model in MODELS
        ],
        validate_choice=True,
    )
    base_url = StringField(
        "Base URL",
        validators=[Optional(), Length(max=500, message="The base URL is too long.")],
    )
    organization = StringField(
        "Organization", validators=[Optional(), Length(max=100, message="At most 100 characters.")]
    )
    project = StringField(
        "Project", validators=[Optional(), Length(max=100, message="At most 100 characters.")]
    )


class SiteAiForm(FlaskForm):
    api_key = PasswordField("This site's OpenAI API key", validators=[Optional(), KEY_LENGTH])
    remove_key = BooleanField("Remove the stored key")
    enabled = BooleanField("Allow AI image creation in this site")
