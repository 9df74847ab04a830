"""Who may create AI images where, with which key, through which provider.

The Create AI Image entry exists only when all of these hold: the release flag
(``CMS_MEDIA_AI_FEATURE``), the instance switch, the site switch, a usable key (the site's own
or the instance's) or the sandbox, and the user's right to add in that site.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from cms_media.access import SiteContext
from cms_media.ai.providers import (
    DEFAULT_MODEL,
    MODELS,
    ImageProvider,
    OpenAIImageProvider,
    ProviderError,
    SandboxImageProvider,
    safety_identifier_for,
)
from cms_media.database import session
from cms_media.encryption import InvalidToken
from cms_media.host import ADD
from cms_media.models import AiSettings
from cms_media.services.errors import ValidationError

# Where admins fix each thing, named as the settings pages name it.
SETTING_NAMES = {
    "api_key": "Instance Settings → AI Creator → OpenAI API key (or the site's own key)",
    "base_url": "Instance Settings → AI Creator → Base URL",
    "organization": "Instance Settings → AI Creator → Organization",
    "project": "Instance Settings → AI Creator → Project",
    "model": "Instance Settings → AI Creator → Default model",
    "timeout": "the CMS_MEDIA_AI_TIMEOUT setting",
}


def feature_enabled() -> bool:
    """The release flag: off, and nothing of the AI Creator exists."""
    return bool(current_app.config["CMS_MEDIA_AI_FEATURE"])


def instance_settings() -> AiSettings:
    """The instance row (an unsaved default while nobody has saved the settings yet)."""
    row = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
    return row or AiSettings(site_id=None, enabled=False)


def site_settings(site_id: str) -> AiSettings:
    row = session().scalar(select(AiSettings).where(AiSettings.site_id == site_id))
    return row or AiSettings(site_id=site_id, enabled=True)


@dataclass(frozen=True)
class AiAccess:
    """What applies to one site. ``available`` ignores the user's rights (see ``can_create``)."""

    available: bool
    reason: str
    provider: str | None = None  # "openai" or "sandbox"
    key_source: str | None = None  # "site" or "instance"
    key_last4: str | None = None
    model: str = DEFAULT_MODEL

    @property
    def is_sandbox(self) -> bool:
        return self.provider == "sandbox"


def resolve_access(site_id: str) -> AiAccess:
    if not feature_enabled():
        return AiAccess(False, "The AI Creator is not released on this installation.")
    instance = instance_settings()
    site = site_settings(site_id)
    model = instance.model or DEFAULT_MODEL
    if not instance.enabled:
        return AiAccess(False, "AI image creation is switched off in Instance Settings.")
    if not site.enabled:
        return AiAccess(False, "AI image creation is switched off for this site.")
    for source, row in (("site", site), ("instance", instance)):
        if row.api_key_encrypted:
            return AiAccess(True, "", "openai", source, row.api_key_last4, model)
    if current_app.config["CMS_MEDIA_AI_SANDBOX"]:
        return AiAccess(True, "", "sandbox", model="sandbox")
    return AiAccess(False, "No OpenAI API key is set for this site or the instance.")


def can_create(ctx: SiteContext) -> bool:
    """Whether to show Create AI Image to this user in this site (and let the routes run)."""
    return feature_enabled() and ctx.can(ADD) and resolve_access(ctx.site_id).available


def _decrypt(row: AiSettings) -> str:
    try:
        return current_app.extensions["cms_media"].secret_box.decrypt(row.api_key_encrypted)
    except InvalidToken:
        raise ValidationError(
            "The stored API key cannot be decrypted with the configured encryption keys; "
            "enter the key again in the AI Creator settings."
        ) from None


def build_provider(site_id: str) -> ImageProvider:
    """The provider for a site, with the key decrypted only here, at the moment of use."""
    access = resolve_access(site_id)
    config = current_app.config
    if access.provider == "sandbox":
        return SandboxImageProvider(delay_seconds=float(config["CMS_MEDIA_AI_SANDBOX_DELAY"]))
    if not access.available:
        raise ValidationError(access.reason)
    instance = instance_settings()
    row = site_settings(site_id) if access.key_source == "site" else instance
    return openai_provider(_decrypt(row), instance)


def openai_provider(api_key: str, instance: AiSettings) -> OpenAIImageProvider:
    config = current_app.config
    return OpenAIImageProvider(
        api_key,
        base_url=instance.base_url or None,
        organization=instance.organization or None,
        project=instance.project or None,
        timeout=float(config["CMS_MEDIA_AI_TIMEOUT"]),
        max_retries=int(config["CMS_MEDIA_AI_MAX_RETRIES"]),
        model=instance.model or DEFAULT_MODEL,
        setting_names=SETTING_NAMES,
    )


def safety_identifier(user_id: str) -> str:
    """A keyed hash of the user id: the provider can tell users apart, never who they are."""
    secret = hashlib.sha256(b"cms_media.safety:" + current_app.secret_key.encode()).digest()
    return safety_identifier_for(user_id, secret)


def masked(last4: str | None) -> str:
    return f"••••{last4}" if last4 else ""


def _clean_url(url: str) -> str | None:
    url = (url or "").strip()
    if url and not url.startswith(("https://", "http://")):
        raise ValidationError(
            "The base URL must start with https:// (or http:// on a local network)."
        )
    return url or None


def save_instance_settings(
    user_name: str,
    *,
    enabled: bool,
    api_key: str,
    remove_key: bool,
    model: str,
    base_url: str,
    organization: str,
    project: str,
) -> AiSettings:
    """Save the instance settings. A new key is checked with the provider before it is kept;
    an empty key field keeps the stored one."""
    if model not in MODELS:
        raise ValidationError("Choose one of the offered models.")
    base_url = _clean_url(base_url)
    row = instance_settings()
    row.enabled = enabled
    row.model = model
    row.base_url = base_url
    row.organization = organization.strip() or None
    row.project = project.strip() or None
    _apply_key(row, api_key, remove_key, instance=row)
    row.updated_by_name = user_name
    session().add(row)
    session().commit()
    return row


def save_site_settings(
    ctx: SiteContext, *, enabled: bool, api_key: str, remove_key: bool
) -> AiSettings:
    row = site_settings(ctx.site_id)
    row.enabled = enabled
    _apply_key(row, api_key, remove_key, instance=instance_settings())
    row.updated_by_name = ctx.user_name
    session().add(row)
    session().commit()
    return row


def _apply_key(row: AiSettings, api_key: str, remove_key: bool, *, instance: AiSettings) -> None:
    api_key = (api_key or "").strip()
    if remove_key and not api_key:
        row.api_key_encrypted = row.api_key_last4 = None
        return
    if not api_key:
        return  # an empty submit keeps the stored key
    if len(api_key) < 20 or any(ch.isspace() for ch in api_key):
        session().rollback()
        raise ValidationError("That does not look like an OpenAI API key (sk-…).")
    try:
        openai_provider(api_key, instance).check_credentials()
    except ProviderError as exc:
        session().rollback()
        raise ValidationError(f"The key was not saved: {exc.admin_message}") from None
    row.api_key_encrypted = current_app.extensions["cms_media"].secret_box.encrypt(api_key)
    row.api_key_last4 = api_key[-4:]


def rotate_encryption() -> int:
    """Re-encrypt every stored key with the newest encryption key; returns how many."""
    box = current_app.extensions["cms_media"].secret_box
    rows = list(
        session().scalars(select(AiSettings).where(AiSettings.api_key_encrypted.isnot(None)))
    )
    for row in rows:
        row.api_key_encrypted = box.rotate(row.api_key_encrypted)
    session().commit()
    return len(rows)
