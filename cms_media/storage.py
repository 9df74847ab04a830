"""Where document bytes live. Views and services only see the :class:`Storage` interface,
so another backend (S3) can be configured without touching them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from flask import Flask


class Storage(Protocol):
    def save(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def read(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


def new_key(prefix: str, extension: str) -> str:
    """A generated storage name: never derived from the user's filename or path."""
    token = secrets.token_hex(16)
    return f"{prefix}/{token[:2]}/{token}.{extension}"


class FileSystemStorage:
    """Files under one root directory; writes go through a temporary file and a rename so a
    crash never leaves a half-written file under its final name."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("storage key escapes the storage root")
        return path

    def save(self, key: str, data: bytes, content_type: str | None = None) -> None:
        # ``content_type`` is for object stores that serve files themselves; the views say
        # the type whenever they send a file from here.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        partial.replace(path)

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def build_storage(app: Flask) -> Storage:
    """The storage backend named by ``CMS_MEDIA_STORAGE``."""
    kind = app.config["CMS_MEDIA_STORAGE"]
    if kind == "filesystem":
        root = app.config["CMS_MEDIA_STORAGE_ROOT"] or os.path.join(app.instance_path, "media")
        return FileSystemStorage(root)
    if kind == "s3":
        from cms_media.storage_s3 import build_s3_storage

        return build_s3_storage(app.config)
    raise RuntimeError(f"Unknown CMS_MEDIA_STORAGE {kind!r}; expected 'filesystem' or 's3'.")
