"""Default settings. Every key shares the ``CMS_MEDIA_`` prefix and is read where it is used.

The host's own config (and its ``instance/`` file and environment) overrides any of these;
:class:`cms_media.CmsMedia` only fills in what the host left unset.
"""

from __future__ import annotations

import json
import os

from flask import Flask

MIB = 1024 * 1024

DEFAULTS: dict[str, object] = {
    # Where the plugin is mounted.
    "CMS_MEDIA_URL_PREFIX": "/media",
    # Template the plugin's pages extend; it must define the blocks ``title``, ``head`` and
    # ``content``. A host points this at its own layout to get its navigation around them.
    "CMS_MEDIA_BASE_TEMPLATE": "cms_media/base.html",
    # Storage: ``filesystem`` keeps files under ``CMS_MEDIA_STORAGE_ROOT`` (default
    # ``<instance>/media``); ``s3`` in an S3-compatible bucket (cms_media/storage_s3.py).
    "CMS_MEDIA_STORAGE": "filesystem",
    "CMS_MEDIA_STORAGE_ROOT": None,
    "CMS_MEDIA_S3_BUCKET": None,
    "CMS_MEDIA_S3_PREFIX": "",
    # None: AWS itself; else the server's URL, e.g. http://127.0.0.1:8333 (with path style).
    "CMS_MEDIA_S3_ENDPOINT_URL": None,
    "CMS_MEDIA_S3_REGION": None,
    # None: boto3's own chain (AWS_* variables, config files, instance or task role).
    "CMS_MEDIA_S3_ACCESS_KEY_ID": None,
    "CMS_MEDIA_S3_SECRET_ACCESS_KEY": None,
    "CMS_MEDIA_S3_PATH_STYLE": False,
    # ``app``: files stream through the app; ``presigned``: after the permission check the
    # browser is redirected to a URL signed for CMS_MEDIA_S3_PRESIGN_SECONDS.
    "CMS_MEDIA_S3_SERVE": "app",
    "CMS_MEDIA_S3_PRESIGN_SECONDS": 300,
    # Uploads: bytes per request (checked before the body is read), pixels per image.
    "CMS_MEDIA_MAX_UPLOAD_BYTES": 25 * MIB,
    "CMS_MEDIA_MAX_IMAGE_PIXELS": 40_000_000,
    "CMS_MEDIA_THUMBNAIL_SIZE": 400,
    "CMS_MEDIA_PAGE_SIZE": 40,
    # Item selector: origins (besides this app's own) that may open it and receive its answer.
    "CMS_MEDIA_SELECTOR_ORIGINS": [],
    "CMS_MEDIA_SELECTOR_PAGE_SIZE": 24,
    # AI Creator. The release flag: off, and no button, tab or route of the feature exists.
    "CMS_MEDIA_AI_FEATURE": False,
    # Offline provider used where no key applies (clearly marked "Sandbox — not AI").
    "CMS_MEDIA_AI_SANDBOX": False,
    "CMS_MEDIA_AI_SANDBOX_DELAY": 0.0,
    "CMS_MEDIA_AI_TIMEOUT": 150.0,
    "CMS_MEDIA_AI_MAX_RETRIES": 1,
    "CMS_MEDIA_AI_MAX_ATTEMPTS": 2,
    "CMS_MEDIA_AI_PROMPT_MAX": 1000,
    "CMS_MEDIA_AI_MAX_IMAGES": 4,
    "CMS_MEDIA_AI_DRAFT_TTL_HOURS": 24,
    # How long a browser's long-poll for new candidates may wait, in seconds.
    "CMS_MEDIA_AI_POLL_SECONDS": 20.0,
    # Generation requests allowed (Flask-Limiter syntax), counted in a shared store.
    "CMS_MEDIA_AI_LIMIT_PER_USER": "10 per minute;200 per day",
    "CMS_MEDIA_AI_LIMIT_PER_SITE": "60 per minute;2000 per day",
    "CMS_MEDIA_RATELIMIT_STORAGE_URI": "memory://",
    "CMS_MEDIA_RATELIMIT_ENABLED": True,
    # Fernet keys for API keys at rest; unset: one generated into instance/.
    "CMS_MEDIA_ENCRYPTION_KEYS": None,
    # Job queue: sqlite (default), redis, memory or immediate; see cms_media/queue.py.
    "CMS_MEDIA_QUEUE": "sqlite",
    "CMS_MEDIA_REDIS_URL": "redis://127.0.0.1:6379/0",
    "CMS_MEDIA_QUEUE_NAME": "cms_media",
    "CMS_MEDIA_QUEUE_PATH": None,
    "CMS_MEDIA_QUEUE_WORKERS": 8,
}


def apply_defaults(app: Flask) -> None:
    """Fill in every setting the host did not set."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


def load_environment(app: Flask, prefix: str = "CMS_MEDIA_") -> None:
    """Read ``CMS_MEDIA_*`` variables from the environment (JSON values where they parse)."""
    for key, raw in os.environ.items():
        if not key.startswith(prefix):
            continue
        try:
            app.config[key] = json.loads(raw)
        except ValueError:
            app.config[key] = raw
