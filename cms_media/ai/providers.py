"""Image providers for the AI image creator: OpenAI GPT image models and an offline sandbox.

One call makes ONE image (the job layer fans out one call per slot so thumbnails arrive one by
one). Every provider failure is translated into a :class:`ProviderError` subclass that carries a
message safe for editors, a message for administrators naming the setting to fix, a stable
``code`` slug and a ``retryable`` flag. Messages never contain the API key or a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import io
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import openai
import pydantic
from openai.types import ImagesResponse
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

__all__ = [
    "BACKGROUNDS",
    "DEFAULT_MODEL",
    "DOWNSCALED_SIZES",
    "MIME_TYPES",
    "MODELS",
    "NATIVE_SIZES",
    "OUTPUT_FORMATS",
    "QUALITIES",
    "RETIRED_MODELS",
    "SETTING_NAMES",
    "SUPPORTED_SIZES",
    "AuthenticationError",
    "BadRequestError",
    "ContentPolicyError",
    "GeneratedImage",
    "GenerationResult",
    "ImageProvider",
    "ImageRequest",
    "InvalidResponseError",
    "ModelNotAvailableError",
    "OpenAIImageProvider",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "RateLimitedError",
    "SandboxImageProvider",
    "Usage",
    "clear_client_cache",
    "fit_to_size",
    "get_openai_client",
    "map_openai_error",
    "native_size_for",
    "safety_identifier_for",
    "validate_request",
]

# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------

#: Sizes every current GPT image model renders natively.
NATIVE_SIZES: tuple[str, ...] = ("1024x1024", "1536x1024", "1024x1536", "auto")
#: Small sizes editors may ask for; GPT image models refuse them, so we request the mapped
#: native size and downscale locally.
DOWNSCALED_SIZES: dict[str, str] = {"256x256": "1024x1024", "512x512": "1024x1024"}
SUPPORTED_SIZES: tuple[str, ...] = NATIVE_SIZES + tuple(DOWNSCALED_SIZES)

QUALITIES: tuple[str, ...] = ("auto", "low", "medium", "high")
BACKGROUNDS: tuple[str, ...] = ("auto", "opaque", "transparent")
OUTPUT_FORMATS: tuple[str, ...] = ("png", "webp", "jpeg")
MIME_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
_PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}

#: GPT image models offered to administrators (from ``openai/types/image_model.py`` of the
#: installed SDK). Left out: ``dall-e-2``/``dall-e-3`` (retired 2026-05-12), ``gpt-image-1``
#: (shut down 2026-10-23), the dated snapshots (pin one through the model setting if needed)
#: and ``chatgpt-image-latest`` (a moving ChatGPT alias, not meant for stable integrations).
MODELS: tuple[str, ...] = (
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-flare",
    "gpt-image-2",
    "gpt-image-1.5",
    "gpt-image-1-mini",
)
#: Models the API refuses now; kept so settings forms can explain why an old value fails.
RETIRED_MODELS: frozenset[str] = frozenset({"dall-e-2", "dall-e-3", "gpt-image-1"})

# The brief suggested gpt-image-1.5. The installed SDK (3.54) documents `gpt-image-2.6-sunburst`
# as the default image model of the `image_generation` tool and names the 2.5 "sunburst"/"flare"
# models as the replacements for gpt-image-1, so the newest sunburst is the better current
# default. gpt-image-1.5 stays in MODELS for sites that prefer it.
DEFAULT_MODEL = "gpt-image-2.6-sunburst"

#: Names of the settings that admin messages point to. The Flask layer may override them per
#: provider (``setting_names=``) if its configuration keys differ.
SETTING_NAMES: dict[str, str] = {
    "api_key": "CMS_MEDIA_OPENAI_API_KEY",
    "base_url": "CMS_MEDIA_OPENAI_BASE_URL",
    "organization": "CMS_MEDIA_OPENAI_ORGANIZATION",
    "project": "CMS_MEDIA_OPENAI_PROJECT",
    "model": "CMS_MEDIA_AI_MODEL",
    "timeout": "CMS_MEDIA_AI_TIMEOUT",
}


# --------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRequest:
    """What the job layer asks for: one image.

    ``variation`` only matters to the sandbox (so the candidates of a batch differ); real
    providers are non-deterministic anyway and never send it.
    """

    prompt: str
    size: str
    model: str
    quality: str = "auto"
    background: str = "auto"
    output_format: str = "png"
    safety_identifier: str | None = None
    variation: int = 0


@dataclass(frozen=True)
class GeneratedImage:
    """Encoded image bytes ready to store, with the facts the media library needs."""

    data: bytes = dataclasses.field(repr=False)
    mime_type: str
    width: int
    height: int
    revised_prompt: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage the provider billed for one call (for per-site accounting)."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of one successful ``generate`` call."""

    image: GeneratedImage
    usage: Usage | None
    model: str
    provider: str


@runtime_checkable
class ImageProvider(Protocol):
    """The interface the job layer programs against (OpenAI and sandbox implement it)."""

    name: str
    is_sandbox: bool

    def generate(self, request: ImageRequest) -> GenerationResult:
        """Make one image or raise a :class:`ProviderError`."""
        ...

    def check_credentials(self) -> None:
        """Raise :class:`AuthenticationError` (or another ProviderError) if not usable."""
        ...


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _restore_error(cls: type[ProviderError], state: dict[str, Any]) -> ProviderError:
    """Unpickle helper: errors cross process boundaries when jobs run in a task queue."""
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, state.get("user_message", ""))
    return error


class ProviderError(Exception):
    """Base of all provider failures.

    ``str(error)`` is the editor-safe ``user_message``; log ``admin_message`` for operators.
    Provider text only appears (redacted, as plain text) inside ``admin_message``.
    """

    code: str = "provider_error"
    default_user_message = "AI image creation failed. Try again later."
    default_admin_message = "The image provider failed."
    default_retryable = False

    def __init__(
        self,
        admin_message: str | None = None,
        *,
        user_message: str | None = None,
        retryable: bool | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.user_message: str = user_message or self.default_user_message
        self.admin_message: str = admin_message or self.default_admin_message
        self.retryable: bool = self.default_retryable if retryable is None else retryable
        self.code: str = type(self).code
        self.status_code = status_code
        self.request_id = request_id
        self.provider_code = provider_code
        self.retry_after = retry_after
        super().__init__(self.user_message)

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, retryable={self.retryable!r}, "
            f"status_code={self.status_code!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_error, (type(self), dict(self.__dict__)))


class ContentPolicyError(ProviderError):
    """The prompt (or result) was refused by the provider's moderation."""

    code = "content_policy"
    default_user_message = (
        "The description was refused by the provider's content policy. Rephrase it and try again."
    )
    default_admin_message = "The provider's safety system refused the prompt."


class QuotaExceededError(ProviderError):
    """The account has no credit/quota left; retrying cannot help."""

    code = "quota"
    default_user_message = "This site has reached its AI image quota. Ask a site administrator."
    default_admin_message = (
        "The OpenAI account has no quota left (insufficient_quota). Add credit or raise the "
        "project's budget at platform.openai.com, or configure another key."
    )


class RateLimitedError(ProviderError):
    """Too many requests right now; worth retrying later."""

    code = "rate_limited"
    default_user_message = "The provider is busy; try again in a minute."
    default_admin_message = "The provider rate-limited this site (HTTP 429)."
    default_retryable = True


class AuthenticationError(ProviderError):
    """The key is missing, wrong, revoked or lacks permission."""

    code = "auth"
    default_user_message = "AI image creation is not configured correctly; ask an administrator."
    default_admin_message = "The provider rejected the API key."


class ProviderTimeoutError(ProviderError):
    """No answer within the configured timeout (after the SDK's own retries)."""

    code = "timeout"
    default_user_message = "The image provider took too long to answer. Try again."
    default_admin_message = "The provider did not answer in time."
    default_retryable = True


class ProviderUnavailableError(ProviderError):
    """5xx or no connection: the provider is down or unreachable."""

    code = "unavailable"
    default_user_message = (
        "The image provider is unavailable right now. Try again in a few minutes."
    )
    default_admin_message = "The provider could not be reached or failed (5xx)."
    default_retryable = True


class InvalidResponseError(ProviderError):
    """The provider answered 200 with something that is not a usable image."""

    code = "bad_response"
    default_user_message = "The image provider returned an unusable image. Try again."
    default_admin_message = "The provider returned a malformed response."
    default_retryable = True


class BadRequestError(ProviderError):
    """The provider refused the request parameters (a configuration or code problem)."""

    code = "bad_request"
    default_user_message = (
        "The image request was not accepted. Ask an administrator to check the AI image settings."
    )
    default_admin_message = "The provider refused the request parameters."


class ModelNotAvailableError(BadRequestError):
    """The configured model is unknown, retired or not enabled for this account."""

    code = "model_unavailable"
    default_admin_message = "The configured image model is not available."


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_KEY_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-*.]*[A-Za-z0-9_\-*]"),
    re.compile(r"(?i)(?<=api key provided: )[^\s]*[^\s.]"),
    re.compile(r"(?i)(?<=bearer )\S+"),
)


def _plain(text: object, secrets: Iterable[str] = (), limit: int = 400) -> str:
    """Provider text as one redacted plain-text line (no keys, no control characters)."""
    value = str(text)
    for secret in secrets:
        if secret:
            value = value.replace(secret, "[redacted]")
    for pattern in _KEY_PATTERNS:
        value = pattern.sub("[redacted]", value)
    value = "".join(ch if ch.isprintable() else " " for ch in value)
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def safety_identifier_for(user_id: str | int, secret: bytes) -> str:
    """HMAC-SHA256 (hex, 64 chars = the API's maximum) of the user id.

    Lets OpenAI tell abusive users apart without us sending a name, e-mail or raw id; the
    secret keeps the mapping from being reversed by hashing candidate ids.
    """
    if not secret:
        raise ValueError("safety_identifier_for needs a non-empty secret")
    return hmac.new(secret, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()


def native_size_for(size: str) -> str:
    """The size to request from the provider for a requested output size."""
    if size in NATIVE_SIZES:
        return size
    if size in DOWNSCALED_SIZES:
        return DOWNSCALED_SIZES[size]
    raise BadRequestError(
        f"Unsupported image size {_plain(size, limit=40)!r}; use one of "
        f"{', '.join(SUPPORTED_SIZES)}."
    )


def _parse_size(size: str) -> tuple[int, int] | None:
    """``"WxH"`` → (W, H); ``"auto"`` → None."""
    if size == "auto":
        return None
    width, _, height = size.partition("x")
    return int(width), int(height)


def validate_request(request: ImageRequest) -> None:
    """Refuse bad parameters before spending a (billed) API call; raises BadRequestError."""
    problems = []
    if not request.prompt or not request.prompt.strip():
        problems.append("the description is empty")
    elif len(request.prompt) > 32000:
        problems.append("the description is longer than 32000 characters")
    if request.size not in SUPPORTED_SIZES:
        problems.append(f"size must be one of {', '.join(SUPPORTED_SIZES)}")
    if request.quality not in QUALITIES:
        problems.append(f"quality must be one of {', '.join(QUALITIES)}")
    if request.background not in BACKGROUNDS:
        problems.append(f"background must be one of {', '.join(BACKGROUNDS)}")
    if request.output_format not in OUTPUT_FORMATS:
        problems.append(f"output format must be one of {', '.join(OUTPUT_FORMATS)}")
    if request.background == "transparent" and request.output_format == "jpeg":
        problems.append("a transparent background needs png or webp output")
    if request.safety_identifier is not None and len(request.safety_identifier) > 64:
        problems.append("safety_identifier is longer than 64 characters")
    if not request.model:
        problems.append("no model is configured")
    if problems:
        user_message = None
        if problems == ["the description is empty"]:
            user_message = "Describe the image you want first."
        raise BadRequestError(
            "Invalid image request: " + "; ".join(problems) + ".", user_message=user_message
        )


def _encode(image: Image.Image, output_format: str) -> bytes:
    """Encode with settings that keep quality high and files reasonably small."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", compress_level=6)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=90, method=4)
    else:
        image.save(buffer, "JPEG", quality=90, optimize=True)
    return buffer.getvalue()


def _fit_image(
    image: Image.Image, size: str, output_format: str, background: str = "auto"
) -> GeneratedImage:
    """Resize (centre-crop to the aspect first if needed) and convert to the output mode."""
    target = _parse_size(size)
    keep_alpha = output_format in ("png", "webp") and background != "opaque"
    has_alpha = image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    work = image.convert("RGBA") if has_alpha else image.convert("RGB")
    if target is not None and work.size != target:
        src_w, src_h = work.size
        dst_w, dst_h = target
        # Crop the source to the target aspect ratio so nothing is distorted.
        if src_w * dst_h > dst_w * src_h:
            crop_w = src_h * dst_w / dst_h
            left = (src_w - crop_w) / 2
            box = (left, 0.0, left + crop_w, float(src_h))
        else:
            crop_h = src_w * dst_h / dst_w
            top = (src_h - crop_h) / 2
            box = (0.0, top, float(src_w), top + crop_h)
        # LANCZOS for quality; reducing_gap does a fast integer pre-shrink on big reductions
        # without visible loss. Pillow premultiplies alpha for RGBA, so edges stay clean.
        work = work.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if work.mode == "RGBA" and work.getchannel("A").getextrema() == (255, 255):
        work = work.convert("RGB")  # fully opaque: an alpha channel only costs bytes
    if work.mode == "RGBA" and not keep_alpha:
        flat = Image.new("RGB", work.size, (255, 255, 255))
        flat.paste(work, mask=work.getchannel("A"))
        work = flat
    data = _encode(work, output_format)
    return GeneratedImage(
        data=data,
        mime_type=MIME_TYPES[output_format],
        width=work.width,
        height=work.height,
    )


def fit_to_size(
    image_bytes: bytes, size: str, output_format: str, background: str = "auto"
) -> GeneratedImage:
    """Verify provider bytes with Pillow and deliver exactly ``size`` in ``output_format``.

    GPT image models only render 1024+ px, so 256x256/512x512 are downscaled here. When the
    bytes already have the right size and format they are returned unchanged (no re-encode
    loss) after a structural check (header, and for PNG every chunk's CRC up to IEND): the
    pixels are decoded once, by whoever stores the image (the library's ``inspect_image``
    decodes every byte before anything is written). JPEG has no alpha: transparent pixels are
    flattened onto white.
    Raises InvalidResponseError when the bytes are not an image (or a damaged one).
    """
    if output_format not in OUTPUT_FORMATS:
        raise BadRequestError(f"Unsupported output format {_plain(output_format, limit=20)!r}.")
    if size not in SUPPORTED_SIZES:
        native_size_for(size)  # raises BadRequestError with the list of sizes
    try:
        with Image.open(io.BytesIO(image_bytes)) as opened:
            source_format = (opened.format or "").upper()
            target = _parse_size(size)
            has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
            if (
                source_format == _PIL_FORMATS[output_format]
                and (target is None or opened.size == target)
                and not (has_alpha and background == "opaque")
            ):
                opened.verify()
                return GeneratedImage(
                    data=bytes(image_bytes),
                    mime_type=MIME_TYPES[output_format],
                    width=opened.width,
                    height=opened.height,
                )
            opened.load()
            return _fit_image(opened, size, output_format, background)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        raise InvalidResponseError(
            f"The provider's image data could not be decoded ({type(exc).__name__})."
        ) from None


# --------------------------------------------------------------------------------------------
# OpenAI
# --------------------------------------------------------------------------------------------

_CLIENT_CACHE: OrderedDict[str, openai.OpenAI] = OrderedDict()
_CLIENT_LOCK = threading.Lock()
_CLIENT_CACHE_MAX = 16


class _HttpClient(openai.DefaultHttpxClient):
    """SDK-default HTTP client that closes its sockets when garbage collected (cache eviction
    must not close a client another thread may still be using)."""

    def __del__(self) -> None:
        try:
            if not self.is_closed:
                self.close()
        except Exception:  # best effort in a finaliser
            pass


def _error_object(body: Any) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return inner
    return None


def _no_retry_on_insufficient_quota(response: Any) -> None:
    """httpx response hook: the SDK retries every 429, but a 429 ``insufficient_quota`` will
    not go away by retrying; ``x-should-retry: false`` is the SDK's documented opt-out."""
    if response.status_code != 429 or "x-should-retry" in response.headers:
        return
    try:
        response.read()
        error = _error_object(json.loads(response.content or b"null"))
    except Exception:  # a body we cannot read is handled by the normal error path
        return
    if error and "insufficient_quota" in (error.get("code"), error.get("type")):
        response.headers["x-should-retry"] = "false"


def _cache_key(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def get_openai_client(
    api_key: str,
    *,
    base_url: str | None = None,
    organization: str | None = None,
    project: str | None = None,
    timeout: float = 60.0,
    max_retries: int = 2,
) -> openai.OpenAI:
    """Return the shared ``openai.OpenAI`` client for these settings (created once).

    Reusing one client keeps its connection pool warm across the parallel slot calls. The
    cache is keyed by a SHA-256 of the settings, so dumping it never shows a key. Settings
    left as None fall back to the SDK's environment variables (OPENAI_BASE_URL, OPENAI_ORG_ID,
    OPENAI_PROJECT_ID).
    """
    key = _cache_key(api_key, base_url, organization, project, float(timeout), int(max_retries))
    with _CLIENT_LOCK:
        client = _CLIENT_CACHE.get(key)
        if client is not None:
            _CLIENT_CACHE.move_to_end(key)
            return client
        client_timeout = openai.Timeout(timeout, connect=min(timeout, 10.0))
        http_client = _HttpClient(
            timeout=client_timeout,
            event_hooks={"response": [_no_retry_on_insufficient_quota]},
        )
        try:
            client = openai.OpenAI(
                api_key=api_key,
                base_url=base_url,
                organization=organization,
                project=project,
                timeout=client_timeout,
                max_retries=max_retries,
                http_client=http_client,
            )
        except Exception:
            http_client.close()
            raise
        _CLIENT_CACHE[key] = client
        while len(_CLIENT_CACHE) > _CLIENT_CACHE_MAX:
            # Dropped, not closed: an in-flight call may still hold it; GC closes it.
            _CLIENT_CACHE.popitem(last=False)
        return client


def clear_client_cache() -> None:
    """Close and forget every cached client (tests, key rotation, app shutdown)."""
    with _CLIENT_LOCK:
        clients = list(_CLIENT_CACHE.values())
        _CLIENT_CACHE.clear()
    for client in clients:
        client.close()


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def map_openai_error(
    exc: BaseException,
    *,
    secrets: Iterable[str] = (),
    setting_names: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> ProviderError:
    """Translate an ``openai`` SDK exception into the matching :class:`ProviderError`.

    Public so a streaming or edit call made elsewhere can reuse the same mapping.
    """
    names = {**SETTING_NAMES, **(setting_names or {})}
    secrets = tuple(secrets)
    error = _error_object(getattr(exc, "body", None))
    provider_code = getattr(exc, "code", None) or (error or {}).get("code")
    provider_code = str(provider_code) if provider_code else None
    provider_type = getattr(exc, "type", None) or (error or {}).get("type")
    param = getattr(exc, "param", None)
    status = getattr(exc, "status_code", None)
    request_id = getattr(exc, "request_id", None)
    raw_message = (error or {}).get("message") if error else None
    said = _plain(raw_message, secrets) if isinstance(raw_message, str) and raw_message else ""
    detail = f" Provider said: {said}" if said else ""
    ref = f" (request id {_plain(request_id, limit=80)})" if request_id else ""
    common: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id,
        "provider_code": provider_code,
    }

    if isinstance(exc, openai.APITimeoutError):
        seconds = f" within {timeout:g} s" if timeout else ""
        return ProviderTimeoutError(
            f"The provider did not answer{seconds}, including the SDK's retries. Try again "
            f"later or raise {names['timeout']}.",
            **common,
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailableError(
            "Could not connect to the image provider, or the connection dropped mid-answer "
            "(network, DNS, TLS or proxy problem), even after the SDK's retries. Check the "
            f"server's outbound network and {names['base_url']}.",
            **common,
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return InvalidResponseError(
            f"The provider's answer did not match the expected schema.{ref}", **common
        )
    if isinstance(exc, openai.BadRequestError):
        if provider_code in ("moderation_blocked", "content_policy_violation"):
            return ContentPolicyError(
                f"The provider's safety system refused the prompt ({provider_code}).{ref}{detail}",
                **common,
            )
        if param == "model" or provider_code in ("model_not_found", "invalid_model"):
            return ModelNotAvailableError(
                f"The image model was refused; choose a current model in {names['model']}."
                f"{ref}{detail}",
                **common,
            )
        return BadRequestError(
            f"The provider refused the request (HTTP 400).{ref}{detail}", **common
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        what = "rejected the API key" if status == 401 else "denied access for the API key"
        return AuthenticationError(
            f"OpenAI {what} (HTTP {status}). Check {names['api_key']} (and "
            f"{names['organization']}/{names['project']} if set).{ref}{detail}",
            **common,
        )
    if isinstance(exc, openai.NotFoundError):
        return ModelNotAvailableError(
            f"The provider answered 404: the model in {names['model']} does not exist or this "
            f"key has no access to it, or {names['base_url']} is wrong.{ref}{detail}",
            **common,
        )
    if isinstance(exc, openai.RateLimitError):
        if "insufficient_quota" in (provider_code, provider_type):
            return QuotaExceededError(
                "The OpenAI account behind the key in "
                f"{names['api_key']} has no quota left (insufficient_quota). Add credit or "
                f"raise the project's budget, or set another key.{ref}{detail}",
                **common,
            )
        return RateLimitedError(
            f"The provider rate-limited this site (HTTP 429) even after the SDK's retries. "
            f"Lower the parallelism or ask OpenAI for a higher tier.{ref}{detail}",
            retry_after=_retry_after(exc),
            **common,
        )
    if isinstance(exc, openai.InternalServerError):
        return ProviderUnavailableError(
            f"The provider failed with HTTP {status} (after the SDK's retries).{ref}{detail}",
            **common,
        )
    if isinstance(exc, openai.APIStatusError):
        if status in (408, 409):
            return ProviderUnavailableError(
                f"The provider answered HTTP {status}.{ref}{detail}", **common
            )
        return BadRequestError(
            f"The provider refused the request (HTTP {status}).{ref}{detail}", **common
        )
    if isinstance(exc, openai.OpenAIError):
        # e.g. the client refusing to start without credentials.
        return AuthenticationError(
            f"The OpenAI client could not be used: {_plain(exc, secrets)} Check {names['api_key']}."
        )
    return ProviderError(f"Unexpected provider failure ({type(exc).__name__}).")


class OpenAIImageProvider:
    """GPT image models through the official SDK (one image per call)."""

    name = "openai"
    is_sandbox = False

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        *,
        model: str = DEFAULT_MODEL,
        setting_names: Mapping[str, str] | None = None,
    ) -> None:
        self._setting_names = {**SETTING_NAMES, **(setting_names or {})}
        if not api_key or not api_key.strip():
            raise AuthenticationError(
                f"No OpenAI API key is configured; set {self._setting_names['api_key']}."
            )
        if timeout <= 0 or max_retries < 0:
            raise BadRequestError(
                f"Invalid client settings: timeout must be > 0 and retries >= 0 (check "
                f"{self._setting_names['timeout']})."
            )
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.base_url = base_url
        self._secrets = (api_key,)
        try:
            self._client = get_openai_client(
                api_key,
                base_url=base_url,
                organization=organization,
                project=project,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        except openai.OpenAIError as exc:
            raise self._map(exc) from None

    def __repr__(self) -> str:
        return (
            f"OpenAIImageProvider(base_url={self.base_url!r}, model={self.model!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    def _map(self, exc: BaseException) -> ProviderError:
        return map_openai_error(
            exc, secrets=self._secrets, setting_names=self._setting_names, timeout=self.timeout
        )

    def check_credentials(self, model: str | None = None) -> None:
        """Cheap authenticated call (GET /models/{model}, not billed). Also proves the model
        is available to this key. No retries: an admin is waiting on the settings page."""
        try:
            self._client.with_options(max_retries=0).models.retrieve(model or self.model)
        except openai.OpenAIError as exc:
            raise self._map(exc) from None
        except (json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError):
            raise InvalidResponseError(
                "The provider answered the model lookup with an unreadable body."
            ) from None

    def generate(self, request: ImageRequest) -> GenerationResult:
        """Generate one image. Never sends ``response_format``/``style`` (legacy, refused)."""
        validate_request(request)
        params: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "n": 1,
            "size": native_size_for(request.size),
            "quality": request.quality,
            "background": request.background,
            "output_format": request.output_format,
        }
        if request.safety_identifier:
            params["safety_identifier"] = request.safety_identifier
        try:
            response = self._client.images.generate(**params)
        except openai.OpenAIError as exc:
            raise self._map(exc) from None
        except (json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError) as exc:
            raise InvalidResponseError(
                f"The provider answered 200 with a body that is not valid JSON "
                f"({type(exc).__name__})."
            ) from None
        image = self._decode(response, request)
        return GenerationResult(
            image=image,
            usage=self._usage(response),
            model=request.model,
            provider=self.name,
        )

    @staticmethod
    def _decode(response: object, request: ImageRequest) -> GeneratedImage:
        if not isinstance(response, ImagesResponse):
            raise InvalidResponseError(
                "The provider answered with something other than a JSON images response."
            )
        data = response.data
        if not isinstance(data, list) or not data:
            raise InvalidResponseError("The provider's response contained no image.")
        item = data[0]
        b64 = getattr(item, "b64_json", None)
        if not isinstance(b64, str) or not b64:
            hint = " (it sent a URL: a legacy model?)" if getattr(item, "url", None) else ""
            raise InvalidResponseError(f"The provider's response had no base64 image{hint}.")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidResponseError("The provider's image was not valid base64.") from None
        image = fit_to_size(raw, request.size, request.output_format, request.background)
        revised = getattr(item, "revised_prompt", None)
        if isinstance(revised, str) and revised:
            image = dataclasses.replace(image, revised_prompt=revised)
        return image

    @staticmethod
    def _usage(response: ImagesResponse) -> Usage | None:
        usage = getattr(response, "usage", None)
        if usage is None:
            return None
        values = [
            getattr(usage, name, None) for name in ("input_tokens", "output_tokens", "total_tokens")
        ]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return None
        return Usage(*values)


# --------------------------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------------------------

SANDBOX_LABEL = "Sandbox — not AI"
_FORBIDDEN = re.compile(r"\bforbidden\b", re.IGNORECASE)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _render_sandbox(
    prompt: str, variation: int, width: int, height: int, transparent: bool
) -> Image.Image:
    """Deterministic placeholder art: colours and shapes derive from sha256(prompt, slot)."""
    digest = hashlib.sha256(f"{variation}\x00{prompt}".encode()).digest()

    def colour(offset: int) -> tuple[int, int, int]:
        return digest[offset % 32], digest[(offset + 1) % 32], digest[(offset + 2) % 32]

    size = (width, height)
    if transparent:
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    else:
        mask = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
        if digest[31] % 2:
            mask = mask.transpose(Image.Transpose.ROTATE_90).resize(size)
        canvas = Image.composite(
            Image.new("RGBA", size, colour(0) + (255,)),
            Image.new("RGBA", size, colour(3) + (255,)),
            mask,
        )
    draw = ImageDraw.Draw(canvas, "RGBA")
    unit = min(width, height)
    for index in range(5):
        base = 6 + index * 5
        cx = digest[base % 32] / 255 * width
        cy = digest[(base + 1) % 32] / 255 * height
        radius = unit * (0.08 + digest[(base + 2) % 32] / 255 * 0.22)
        fill = colour(base + 3) + (200 if not transparent else 255,)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if (digest[(base + 4) % 32] + index) % 2:
            draw.ellipse(box, fill=fill)
        else:
            draw.rounded_rectangle(box, radius=radius / 4, fill=fill)

    label_font = _font(max(12, width // 14))
    small_font = _font(max(10, width // 40))
    excerpt = " ".join(prompt.split())
    if len(excerpt) > 60:
        excerpt = excerpt[:59] + "…"
    band_top = int(height * 0.72)
    band = height - band_top
    white = (255, 255, 255, 255)
    draw.rectangle((0, band_top, width, height), fill=(20, 20, 28, 190))
    # Pillow's bundled font has no em dash glyph, so the dash is drawn as a bar.
    before, _, after = SANDBOX_LABEL.partition("—")
    before, after = before.strip(), after.strip()
    gap = label_font.size if isinstance(label_font, ImageFont.FreeTypeFont) else 12
    parts = [draw.textbbox((0, 0), part, font=label_font) for part in (before, after)]
    widths = [box[2] - box[0] for box in parts]
    x = (width - (widths[0] + widths[1] + gap * 1.5)) / 2
    y = band_top + band * 0.18
    draw.text((x - parts[0][0], y - parts[0][1]), before, font=label_font, fill=white)
    text_mid = y + (parts[0][3] - parts[0][1]) * 0.55
    bar = max(2, gap // 12)
    dash_left = x + widths[0] + gap * 0.25
    draw.rectangle((dash_left, text_mid - bar / 2, dash_left + gap, text_mid + bar / 2), fill=white)
    draw.text(
        (dash_left + gap * 1.25 - parts[1][0], y - parts[1][1]), after, font=label_font, fill=white
    )
    left, top, right, _bottom = draw.textbbox((0, 0), excerpt, font=small_font)
    draw.text(
        ((width - (right - left)) / 2 - left, band_top + band * 0.62 - top),
        excerpt,
        font=small_font,
        fill=white,
    )
    return canvas


class SandboxImageProvider:
    """Offline provider for demos, development and tests: no key, no network, no cost.

    Images are deterministic for (prompt, size, format, background, variation), carry the
    label "Sandbox — not AI", and a prompt containing the word "forbidden" raises
    ContentPolicyError so the refusal path can be seen offline.
    """

    name = "sandbox"
    is_sandbox = True

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = max(0.0, float(delay_seconds))

    def __repr__(self) -> str:
        return f"SandboxImageProvider(delay_seconds={self.delay_seconds!r})"

    def check_credentials(self) -> None:
        """Always usable: there is nothing to authenticate."""
        return None

    def generate(self, request: ImageRequest) -> GenerationResult:
        """Render one deterministic placeholder image (optionally after a visible delay)."""
        validate_request(request)
        if _FORBIDDEN.search(request.prompt):
            raise ContentPolicyError(
                "Sandbox refusal: the prompt contains the word 'forbidden' (the sandbox's "
                "documented trigger for the content-policy path)."
            )
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        native = native_size_for(request.size)
        width, height = _parse_size(native) or (1024, 1024)
        transparent = request.background == "transparent" and request.output_format != "jpeg"
        with _render_sandbox(
            request.prompt, request.variation, width, height, transparent
        ) as canvas:
            image = _fit_image(canvas, request.size, request.output_format, request.background)
        return GenerationResult(image=image, usage=None, model="sandbox", provider=self.name)
