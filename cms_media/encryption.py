"""Encryption at rest for provider API keys (Fernet, with rotation through MultiFernet).

Key material comes from ``CMS_MEDIA_ENCRYPTION_KEYS`` (a list, or a comma-separated string in
the environment; the first key encrypts, all of them decrypt). Without it, a key is generated
once into ``<instance>/cms_media_encryption.key`` (mode 600), never into the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask

KEY_FILE = "cms_media_encryption.key"


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Raises :class:`cryptography.fernet.InvalidToken` when no configured key fits."""
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """The same secret, encrypted again with the first (newest) key."""
        return self._fernet.rotate(token.encode()).decode()


def configured_keys(app: Flask) -> list[str]:
    keys = app.config.get("CMS_MEDIA_ENCRYPTION_KEYS")
    if isinstance(keys, str):
        keys = [key.strip() for key in keys.split(",") if key.strip()]
    if keys:
        return list(keys)
    path = Path(app.instance_path) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(Fernet.generate_key().decode())
    return [path.read_text().strip()]


def build_secret_box(app: Flask) -> SecretBox:
    return SecretBox(configured_keys(app))


__all__ = ["InvalidToken", "SecretBox", "build_secret_box"]
