"""S3-compatible storage (AWS S3, MinIO, SeaweedFS, Ceph, ...) through boto3.

:class:`S3Storage` implements the :class:`cms_media.storage.Storage` protocol with every key
under one prefix of one bucket, and adds :meth:`S3Storage.url_for_download`: a short-lived
presigned GET URL that makes S3 answer with the right ``Content-Type`` and
``Content-Disposition``. Objects are never made public: nothing here sends an ACL, so they
keep the bucket's private default, and the only way to them from a browser is a presigned URL
handed out after the app's own permission check.

Errors follow the filesystem backend so callers need no S3 knowledge: a missing key raises
:class:`FileNotFoundError`, anything else :class:`S3StorageError` (an :class:`OSError`).
Transient failures (throttling, 5xx, dropped connections, timeouts) are retried by botocore's
``standard`` retry mode before they surface.

The credentials need ``s3:GetObject``, ``s3:PutObject`` and ``s3:DeleteObject`` on
``arn:aws:s3:::BUCKET/PREFIX/*`` and ``s3:ListBucket`` on the bucket (S3 answers 403 instead
of 404 for a missing key without it, which surfaces as :class:`S3StorageError`).
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError
from flask import Response

#: How long to wait for a TCP connection, and for each read from an open one (seconds).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: botocore's standard mode: exponential backoff with jitter on throttling, 5xx, connection
#: errors and timeouts. In botocore's Python config ``max_attempts`` counts *retries*: 3 means
#: the first request and up to three more (``total_max_attempts`` would count the first).
RETRIES = {"mode": "standard", "max_attempts": 3}
#: Web threads and queue workers share one client; botocore's default pool (10) is small.
MAX_POOL_CONNECTIONS = 32
#: SigV4 presigned URLs cannot live longer than seven days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
SERVE_MODES = ("app", "presigned")
#: Error codes S3 (and compatible servers) use for a key that is not there.
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
#: Characters kept as they are in an RFC 5987 ``filename*`` value (its ``attr-char``).
ATTR_CHARS = "!#$&+-.^_`|~"

ServeMode = Literal["app", "presigned"]


class S3StorageError(OSError):
    """The object store failed or refused, after botocore's retries. An ``OSError`` like the
    filesystem backend's errors, so callers that clean up files on failure keep working."""


class S3Storage:
    """Objects under ``prefix/`` in ``bucket``.

    ``endpoint_url`` points at an S3-compatible server (``None``: AWS). ``access_key`` and
    ``secret_key`` left ``None`` use boto3's usual chain (environment, config files, instance
    or container role). ``path_style`` addresses ``endpoint/bucket/key`` instead of
    ``bucket.endpoint/key``, which most self-hosted servers need. ``client`` replaces the
    boto3 client built from the other settings (tests, or a host with its own session).
    ``serve`` tells the views whether to stream files themselves (``"app"``) or redirect to
    :meth:`url_for_download` after the permission check (``"presigned"``).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        path_style: bool = False,
        presign_seconds: int = 300,
        client: Any = None,
        *,
        serve: ServeMode = "app",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name.")
        if not 1 <= int(presign_seconds) <= MAX_PRESIGN_SECONDS:
            raise ValueError(
                f"presign_seconds must be between 1 and {MAX_PRESIGN_SECONDS} (seven days)."
            )
        if serve not in SERVE_MODES:
            raise ValueError(f"serve must be one of {SERVE_MODES}, not {serve!r}.")
        if (access_key is None) != (secret_key is None):
            raise ValueError("Give both an access key id and a secret access key, or neither.")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.presign_seconds = int(presign_seconds)
        self.serve: ServeMode = serve
        if client is None:
            # Imported here: boto3 takes a while to import, and the views import this module.
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries=dict(RETRIES),
                max_pool_connections=MAX_POOL_CONNECTIONS,
                signature_version="s3v4",
                s3={"addressing_style": "path" if path_style else "auto"},
            )
            # A session of its own: boto3's default session is shared module state.
            session = boto3.session.Session(
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                region_name=region,
            )
            client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
        self.client = client

    def __repr__(self) -> str:
        endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", None)
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={endpoint!r})"

    # -- keys ------------------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        """The bucket's key for a storage key: ``prefix/key``. Refuses keys that could reach
        outside the prefix or that S3 would treat differently from the filesystem backend."""
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or any(part in ("", ".", "..") for part in parts)
            or any(ord(char) < 32 or ord(char) == 127 for char in key)
        ):
            raise ValueError(f"invalid storage key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- the Storage protocol --------------------------------------------------------------

    def save(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write the object in one PUT (S3 never shows a half-written object). No ACL is sent:
        the object stays private."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "Body": bytes(data),
        }
        if content_type:
            params["ContentType"] = content_type
        self._call("put_object", key, **params)

    def read(self, key: str) -> bytes:
        response = self._call("get_object", key, Bucket=self.bucket, Key=self.object_key(key))
        body = response["Body"]
        try:
            return body.read()
        except (BotoCoreError, OSError) as exc:  # a connection dropped mid-body
            raise S3StorageError(f"Could not read {key} from S3: {exc}") from exc
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Remove the object; a key that is already gone is not an error (as on S3 itself)."""
        with contextlib.suppress(FileNotFoundError):
            self._call("delete_object", key, Bucket=self.bucket, Key=self.object_key(key))

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key, Bucket=self.bucket, Key=self.object_key(key))
        except FileNotFoundError:
            return False
        return True

    # -- serving ---------------------------------------------------------------------------

    def url_for_download(
        self,
        key: str,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        inline: bool = True,
    ) -> str:
        """A presigned GET URL, valid for ``presign_seconds``, whose response carries
        ``content_type`` and an RFC 6266 ``Content-Disposition`` (``inline`` or
        ``attachment``, with ``filename`` as an ASCII fallback and UTF-8 ``filename*``).

        Signing happens locally: no request is made, and a missing key shows as S3's 404 when
        the URL is fetched. Call it only after the permission check; anyone holding the URL
        can fetch the object until it expires.
        """
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": content_disposition(filename, inline=inline),
            # Private: no shared cache may keep it. The URL changes on every redirect anyway.
            "ResponseCacheControl": f"private, max-age={self.presign_seconds}",
        }
        if content_type:
            params["ResponseContentType"] = content_type
        try:
            return self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=self.presign_seconds
            )
        except BotoCoreError as exc:  # no credentials found, bad region, ...
            raise S3StorageError(f"Could not sign a URL for {key}: {exc}") from exc

    # -- helpers ---------------------------------------------------------------------------

    def _call(self, operation: str, key: str, **params: Any) -> Any:
        try:
            return getattr(self.client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in MISSING_CODES or (status == 404 and code != "NoSuchBucket"):
                raise FileNotFoundError(f"No stored file {key!r}") from exc
            message = error.get("Message") or code or "error"
            raise S3StorageError(f"S3 {operation} of {key!r} failed: {code} {message}") from exc
        except BotoCoreError as exc:  # connection refused, timeouts (after retries), ...
            raise S3StorageError(f"S3 {operation} of {key!r} failed: {exc}") from exc


def content_disposition(filename: str | None, *, inline: bool = True) -> str:
    """``inline`` / ``attachment`` with an RFC 6266 filename: a quoted ASCII fallback for old
    clients, and ``filename*=UTF-8''...`` with the real name percent-encoded."""
    kind = "inline" if inline else "attachment"
    if not filename:
        return kind
    # Separators and control characters never belong in a suggested name.
    name = "".join(
        "_" if char in "/\\" else char
        for char in filename
        if unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp")
    ).strip()
    if not name:
        return kind
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dot file
        stem, extension = name, ""
    fallback = _ascii(stem) or "download"
    if _ascii(extension):
        fallback += "." + _ascii(extension)
    encoded = quote(name, safe=ATTR_CHARS)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _ascii(text: str) -> str:
    """The ASCII letters of ``text`` (accents dropped), safe inside a quoted string."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join("_" if char in '"\\%' else char for char in plain).strip()


def _flag(value: object, setting: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"{setting} must be true or false, not {value!r}.")


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def build_s3_storage(config: Mapping[str, Any], *, client: Any = None) -> S3Storage:
    """An :class:`S3Storage` from the ``CMS_MEDIA_S3_*`` settings (an app's ``config``)."""
    bucket = _text(config.get("CMS_MEDIA_S3_BUCKET"))
    if not bucket:
        raise RuntimeError("CMS_MEDIA_STORAGE is 's3' but CMS_MEDIA_S3_BUCKET is not set.")
    serve = (_text(config.get("CMS_MEDIA_S3_SERVE")) or "app").lower()
    if serve not in SERVE_MODES:
        raise RuntimeError(f"CMS_MEDIA_S3_SERVE must be 'app' or 'presigned', not {serve!r}.")
    raw_seconds = config.get("CMS_MEDIA_S3_PRESIGN_SECONDS")
    try:
        seconds = 300 if raw_seconds in (None, "") else int(raw_seconds)
    except (TypeError, ValueError):
        raise RuntimeError(
            f"CMS_MEDIA_S3_PRESIGN_SECONDS must be a whole number, not {raw_seconds!r}."
        ) from None
    access_key = _text(config.get("CMS_MEDIA_S3_ACCESS_KEY_ID"))
    secret_key = _text(config.get("CMS_MEDIA_S3_SECRET_ACCESS_KEY"))
    try:
        return S3Storage(
            bucket,
            prefix=_text(config.get("CMS_MEDIA_S3_PREFIX")) or "",
            endpoint_url=_text(config.get("CMS_MEDIA_S3_ENDPOINT_URL")),
            region=_text(config.get("CMS_MEDIA_S3_REGION")),
            access_key=access_key,
            secret_key=secret_key,
            path_style=_flag(config.get("CMS_MEDIA_S3_PATH_STYLE"), "CMS_MEDIA_S3_PATH_STYLE"),
            presign_seconds=seconds,
            client=client,
            serve=serve,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise RuntimeError(f"S3 storage settings: {exc}") from None


def presigned_redirect(
    storage: object,
    key: str,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    inline: bool = True,
) -> Response | None:
    """For views, after their permission check: a redirect to a presigned URL when
    ``storage`` is an :class:`S3Storage` set to ``serve="presigned"``; ``None`` otherwise
    (stream the bytes as usual). The redirect itself is never stored by any cache, so the
    next view goes through the permission check again."""
    if not isinstance(storage, S3Storage) or storage.serve != "presigned":
        return None
    url = storage.url_for_download(key, filename=filename, content_type=content_type, inline=inline)
    response = Response(status=302, headers={"Location": url})
    response.headers["Cache-Control"] = "private, no-store"
    # The URL is a bearer credential until it expires; keep it out of Referer headers.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
