"""A local OpenAI-compatible Images API server for tests, benchmarks and the offline demo.

It speaks the subset of the API the ``openai`` SDK uses for images, validates requests the way
the real API does for GPT image models, returns real base64 PNG/WEBP/JPEG images and can
inject every failure the real API produces, either programmatically::

    with OpenAICompatibleServer(api_keys={"sk-test-..."}) as server:
        server.fail_next("rate_limit", times=1)
        client = openai.OpenAI(api_key="sk-test-...", base_url=server.base_url)

or from another process / a browser test through a directive in the prompt, e.g.
``"a fox [[fail:moderation]]"``, ``"a fox [[fail:rate_limit:1]]"`` (only the first request with
this exact prompt fails, so an SDK retry succeeds) or ``"a fox [[latency:2.5]]"``.

Run it in the foreground with ``python -m cms_media.testing.openai_server --port 8765
--latency 2``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import io
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "FAILURE_KINDS",
    "GPT_IMAGE_MODELS",
    "RETIRED_MODELS",
    "OpenAICompatibleServer",
    "RecordedRequest",
    "main",
]

#: Image models the server accepts (current GPT image models of the installed SDK).
GPT_IMAGE_MODELS: tuple[str, ...] = (
    "gpt-image-1.5",
    "gpt-image-1-mini",
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
    "chatgpt-image-latest",
)
#: Models that take any ``WIDTHxHEIGHT`` (multiples of 16, aspect 1:3..3:1, ≤ 3840x2160).
_FLEXIBLE_SIZE_MODELS = frozenset(
    {
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5-sunburst",
        "gpt-image-2.5-sunburst-2026-09-08",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-flare-2026-09-08",
    }
)
#: Models that also accept quality ``xhigh`` and ``max``.
_EXTENDED_QUALITY_MODELS = frozenset(
    {
        "gpt-image-2.5-sunburst",
        "gpt-image-2.5-sunburst-2026-09-08",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-flare-2026-09-08",
    }
)
#: Retired models and the message the API gives for them.
RETIRED_MODELS: dict[str, str] = {
    "dall-e-2": "The model `dall-e-2` was retired on May 12, 2026. Use a GPT image model instead.",
    "dall-e-3": "The model `dall-e-3` was retired on May 12, 2026. Use a GPT image model instead.",
    "gpt-image-1": (
        "The model `gpt-image-1` was shut down on October 23, 2026. Use gpt-image-2.5-sunburst "
        "or gpt-image-2.5-flare instead."
    ),
}
_STANDARD_SIZES = ("1024x1024", "1536x1024", "1024x1536")
_QUALITIES = ("low", "medium", "high", "auto")
_BACKGROUNDS = ("transparent", "opaque", "auto")
_OUTPUT_FORMATS = ("png", "jpeg", "webp")
_GENERATION_FIELDS = frozenset(
    {
        "prompt",
        "model",
        "n",
        "quality",
        "response_format",
        "output_format",
        "output_compression",
        "stream",
        "partial_images",
        "size",
        "moderation",
        "background",
        "style",
        "user",
        "safety_identifier",
        "complexity",
    }
)
_EDIT_FIELDS = (_GENERATION_FIELDS - {"style", "moderation"}) | {"input_fidelity"}
_EDIT_FILE_FIELDS = frozenset({"image", "image[]", "mask"})

#: Failure kinds for ``fail_next`` and ``[[fail:KIND]]`` (aliases in ``_ALIASES``).
FAILURE_KINDS: tuple[str, ...] = (
    "moderation",  # 400 moderation_blocked (GPT image models)
    "content_policy",  # 400 content_policy_violation (legacy DALL·E wording)
    "invalid_key",  # 401 invalid_api_key
    "permission",  # 403 organization must be verified
    "rate_limit",  # 429 rate_limit_exceeded, with retry-after headers
    "quota",  # 429 insufficient_quota
    "server_error",  # 500 server_error
    "overloaded",  # 503 server overloaded
    "timeout",  # no answer for `hang_seconds` (longer than the client's timeout)
    "disconnect",  # headers then a truncated body: the connection drops mid-response
    "malformed_json",  # 200 with a body that is not valid JSON
    "bad_base64",  # 200 with b64_json that is not base64
    "not_image",  # 200 with valid base64 of bytes that are not an image
    "empty_data",  # 200 with "data": []
)
_ALIASES = {
    "auth": "invalid_key",
    "401": "invalid_key",
    "403": "permission",
    "429": "rate_limit",
    "rate_limited": "rate_limit",
    "insufficient_quota": "quota",
    "500": "server_error",
    "503": "overloaded",
    "moderation_blocked": "moderation",
    "malformed": "malformed_json",
    "bad_image": "not_image",
}
_DIRECTIVE = re.compile(r"\[\[\s*(fail|latency)\s*:\s*([A-Za-z0-9_.]+)\s*(?::\s*(\d+)\s*)?\]\]")
_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}


def _normalise_kind(kind: str) -> str:
    name = _ALIASES.get(kind.strip().lower(), kind.strip().lower())
    if name not in FAILURE_KINDS:
        raise ValueError(f"unknown failure kind {kind!r}; use one of {', '.join(FAILURE_KINDS)}")
    return name


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (the Authorization header only as present/absent)."""

    method: str
    path: str
    headers: dict[str, str]
    has_authorization: bool
    authorized: bool
    json: Any = None
    form: dict[str, Any] | None = None
    files: dict[str, list[dict[str, Any]]] | None = None
    received_at: float = field(default_factory=time.time)

    @property
    def body(self) -> dict[str, Any]:
        """JSON body or form fields, whichever the request had."""
        if isinstance(self.json, dict):
            return self.json
        return dict(self.form or {})


class _APIError(Exception):
    """An error answer in the API's shape ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"message": message, "type": type_, "param": param, "code": code}
        self.headers = headers or {}


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not print one log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _mask_key(key: str) -> str:
    if len(key) <= 12:
        return "*" * len(key)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def _invalid_value(param: str, value: object, allowed: Iterable[str]) -> _APIError:
    options = ", ".join(f"'{item}'" for item in allowed)
    return _APIError(
        400,
        f"Invalid value: '{value}'. Supported values are: {options}.",
        param=param,
        code="invalid_value",
    )


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _APIError(
            400,
            f"Invalid type for '{name}': expected an integer, but got "
            f"{type(value).__name__} instead.",
            param=name,
            code="invalid_type",
        )
    if value < low:
        raise _APIError(
            400,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    if value > high:
        raise _APIError(
            400,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
            f"but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    return value


def _check_string(name: str, value: object, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise _APIError(
            400,
            f"Invalid type for '{name}': expected a string, but got {type(value).__name__} "
            "instead.",
            param=name,
            code="invalid_type",
        )
    if max_length is not None and len(value) > max_length:
        raise _APIError(
            400,
            f"Invalid '{name}': string too long. Expected a string with maximum length "
            f"{max_length}, but got a string with length {len(value)} instead.",
            param=name,
            code="string_above_max_length",
        )
    return value


def _check_size(model: str, size: str) -> None:
    if size == "auto" or size in _STANDARD_SIZES:
        return
    if model in _FLEXIBLE_SIZE_MODELS:
        match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", size)
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            if (
                width % 16 == 0
                and height % 16 == 0
                and 1 / 3 <= width / height <= 3
                and max(width, height) <= 3840
                and width * height <= 3840 * 2160
            ):
                return
        raise _APIError(
            400,
            f"Invalid size '{size}'. Width and height must be multiples of 16, the aspect ratio "
            "between 1:3 and 3:1 and the resolution at most 3840x2160.",
            param="size",
            code="invalid_value",
        )
    raise _invalid_value("size", size, (*_STANDARD_SIZES, "auto"))


def _error_body(payload: dict[str, Any]) -> bytes:
    return json.dumps({"error": payload}).encode()


class OpenAICompatibleServer:
    """Threaded local server for ``/v1/images/generations``, ``/v1/images/edits`` and
    ``/v1/models``. Thread-safe; ``latency`` (seconds per image) may be changed while running.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        api_keys: Iterable[str] | None = None,
        *,
        retry_after: float = 0.01,
        hang_seconds: float = 30.0,
        revised_prompts: bool = False,
        quiet: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = float(latency)
        self.api_keys: frozenset[str] | None = frozenset(api_keys) if api_keys else None
        #: Seconds announced in ``retry-after-ms``/``retry-after`` on 429 (SDK honours it).
        self.retry_after = float(retry_after)
        #: How long a ``timeout`` failure keeps the client waiting (woken early by stop/reset).
        self.hang_seconds = float(hang_seconds)
        self.revised_prompts = revised_prompts
        self._initial = (self.latency, self.retry_after, self.hang_seconds, revised_prompts)
        self.quiet = quiet
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: collections.deque[str] = collections.deque()
        self._directive_hits: collections.Counter[str] = collections.Counter()
        self._wake = threading.Event()
        self._image_cache: dict[tuple[int, int, str, bool, int], str] = {}
        self._images_lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def _make_server(self) -> BaseWSGIServer:
        handler = _QuietHandler if self.quiet else None
        return make_server(self.host, self.port, self, threaded=True, request_handler=handler)

    def start(self) -> OpenAICompatibleServer:
        """Bind (port 0 = a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        if self._wake.is_set():  # restarted after stop()
            self._wake = threading.Event()
        self._server = self._make_server()
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"openai-test-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake requests that are sleeping and close the socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._wake.set()
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join(timeout=5)
        server.server_close()

    def serve_forever(self) -> None:
        """Serve in the current thread until interrupted (used by ``python -m``)."""
        self._server = self._make_server()
        self.port = self._server.server_address[1]
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._wake.set()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` (without the ``/v1`` prefix)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.OpenAI``."""
        return f"{self.url}/v1"

    # ------------------------------------------------------------------- control

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` image requests fail with ``kind`` (see FAILURE_KINDS)."""
        name = _normalise_kind(kind)
        with self._lock:
            self._failures.extend([name] * int(times))

    def reset(self) -> None:
        """Back to the constructor's settings (latency, retry_after, hang_seconds,
        revised_prompts); forget requests, queued failures and directive counts; wake
        requests that are still sleeping."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._directive_hits.clear()
            old_wake, self._wake = self._wake, threading.Event()
            self.latency, self.retry_after, self.hang_seconds, self.revised_prompts = self._initial
            self.max_in_flight = 0
        old_wake.set()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (oldest first)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``path_suffix`` (e.g. ``images/generations``)."""
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    @property
    def pending_failures(self) -> list[str]:
        """Failures queued by ``fail_next`` that no request has consumed yet."""
        with self._lock:
            return list(self._failures)

    # -------------------------------------------------------------------- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.max_content_length = 800 * 1024 * 1024
        request.max_form_memory_size = 2 * 1024 * 1024
        started = time.perf_counter()
        request_id = f"req_{uuid.uuid4().hex}"
        try:
            response = self._dispatch(request, request_id)
        except _APIError as error:
            response = Response(_error_body(error.payload), error.status, error.headers)
            response.content_type = "application/json"
        finally:
            request.close()  # uploaded files are spooled to temporary files
        response.headers.setdefault("x-request-id", request_id)
        response.headers.setdefault(
            "openai-processing-ms", str(int((time.perf_counter() - started) * 1000))
        )
        return response(environ, start_response)

    def _record(self, request: Request) -> tuple[RecordedRequest, str | None]:
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        authorized = bool(key) and (self.api_keys is None or key in self.api_keys)
        headers = {
            name.lower(): value
            for name, value in request.headers.items()
            if name.lower() not in ("authorization", "cookie")
        }
        body_json: Any = None
        form: dict[str, Any] | None = None
        files: dict[str, list[dict[str, Any]]] | None = None
        if request.mimetype == "multipart/form-data":
            form = {name: request.form.get(name) for name in request.form}
            files = {}
            for name, storage in request.files.items(multi=True):
                content = storage.read()
                storage.stream.seek(0)
                files.setdefault(name, []).append(
                    {
                        "filename": storage.filename,
                        "content_type": storage.mimetype,
                        "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(),
                    }
                )
        else:
            data = request.get_data(cache=True)
            if data:
                try:
                    body_json = json.loads(data)
                except ValueError:
                    body_json = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=headers,
            has_authorization=bool(auth),
            authorized=authorized,
            json=body_json,
            form=form,
            files=files,
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded, key

    def _dispatch(self, request: Request, request_id: str) -> Response:
        recorded, key = self._record(request)
        path = request.path.rstrip("/")
        method = request.method
        if not path.startswith("/v1/"):
            raise _APIError(404, f"Invalid URL ({method} {request.path})")
        if not key:
            raise _APIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
                "You can obtain an API key from https://platform.openai.com/account/api-keys.",
            )
        if not recorded.authorized:
            raise self._failure_error("invalid_key", key=key)
        if method == "GET" and path == "/v1/models":
            return self._json(
                {"object": "list", "data": [self._model(m) for m in GPT_IMAGE_MODELS]}
            )
        if method == "GET" and path.startswith("/v1/models/"):
            model = path[len("/v1/models/") :]
            if model not in GPT_IMAGE_MODELS:
                raise _APIError(
                    404,
                    f"The model `{model}` does not exist or you do not have access to it.",
                    param="model",
                    code="model_not_found",
                )
            return self._json(self._model(model))
        if method == "POST" and path == "/v1/images/generations":
            return self._images(request, recorded, key, edit=False, request_id=request_id)
        if method == "POST" and path == "/v1/images/edits":
            return self._images(request, recorded, key, edit=True, request_id=request_id)
        raise _APIError(404, f"Invalid URL ({method} {request.path})")

    @staticmethod
    def _json(payload: object, status: int = 200) -> Response:
        return Response(json.dumps(payload), status, content_type="application/json")

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1767225600, "owned_by": "system"}

    # ------------------------------------------------------------------ failures

    def _failure_error(
        self, kind: str, *, key: str = "", model: str = "", request_id: str = ""
    ) -> _APIError:
        if kind == "moderation":
            return _APIError(
                400,
                "Your request was rejected by the safety system. If you believe this is an "
                "error, contact us at help.openai.com and include the request ID "
                f"{request_id or 'req_unknown'}.",
                type_="image_generation_user_error",
                code="moderation_blocked",
            )
        if kind == "content_policy":
            return _APIError(
                400,
                "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.",
                code="content_policy_violation",
            )
        if kind == "invalid_key":
            return _APIError(
                401,
                f"Incorrect API key provided: {_mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if kind == "permission":
            return _APIError(
                403,
                f"Your organization must be verified to use the model `{model or 'unknown'}`. "
                "Please go to: https://platform.openai.com/settings/organization/general and "
                "click on Verify Organization.",
            )
        if kind == "rate_limit":
            wait = max(self.retry_after, 0.0)
            return _APIError(
                429,
                f"Rate limit reached for {model or 'images'} in organization org-test on images "
                f"per minute (IPM): Limit 5, Used 5, Requested 1. Please try again in "
                f"{wait:g}s. Visit https://platform.openai.com/account/rate-limits to learn more.",
                type_="requests",
                code="rate_limit_exceeded",
                headers={
                    "retry-after-ms": str(int(math.ceil(wait * 1000))),
                    "retry-after": str(int(math.ceil(wait))),
                    "x-ratelimit-limit-requests": "5",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{wait:g}s",
                },
            )
        if kind == "quota":
            return _APIError(
                429,
                "You exceeded your current quota, please check your plan and billing details. "
                "For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                type_="insufficient_quota",
                code="insufficient_quota",
            )
        if kind == "server_error":
            return _APIError(
                500,
                "The server had an error while processing your request. Sorry about that!",
                type_="server_error",
            )
        if kind == "overloaded":
            return _APIError(
                503, "The server is overloaded or not ready yet.", type_="server_error"
            )
        raise ValueError(kind)

    def _failure_response(self, kind: str, params: dict[str, Any], ctx: dict[str, Any]) -> Response:
        created = int(time.time())
        if kind == "timeout":
            ctx["wake"].wait(self.hang_seconds)
            return self._success(params, ctx)
        if kind == "disconnect":
            response = Response(b'{"created": ', 200, content_type="application/json")
            response.headers["Content-Length"] = "4096"
            return response
        if kind == "malformed_json":
            return Response(
                b'{"created": %d, "data": [{"b64_json": "iVBORw0KGgo' % created,
                200,
                content_type="application/json",
            )
        data: list[dict[str, Any]]
        if kind == "bad_base64":
            data = [{"b64_json": "%%% this is not base64 %%%"}]
        elif kind == "not_image":
            data = [{"b64_json": base64.b64encode(b"definitely not an image").decode()}]
        elif kind == "empty_data":
            data = []
        else:
            raise self._failure_error(
                kind, key=ctx["key"], model=params.get("model", ""), request_id=ctx["request_id"]
            )
        return self._json({"created": created, "data": data})

    def _pick_failure(self, prompt: str) -> tuple[str | None, float | None]:
        """Queued failure first, then a ``[[fail:...]]`` directive; also ``[[latency:...]]``."""
        latency = None
        directive_failure = None
        for match in _DIRECTIVE.finditer(prompt):
            verb, value, count = match.groups()
            if verb == "latency":
                try:
                    latency = max(0.0, float(value))
                except ValueError:
                    continue
            elif directive_failure is None:
                try:
                    kind = _normalise_kind(value)
                except ValueError:
                    continue
                if count is None:
                    directive_failure = kind
                else:
                    with self._lock:
                        self._directive_hits[match.group(0) + "\x00" + prompt] += 1
                        hits = self._directive_hits[match.group(0) + "\x00" + prompt]
                    if hits <= int(count):
                        directive_failure = kind
        with self._lock:
            if self._failures:
                return self._failures.popleft(), latency
        return directive_failure, latency

    # -------------------------------------------------------------------- images

    def _images(
        self, request: Request, recorded: RecordedRequest, key: str, *, edit: bool, request_id: str
    ) -> Response:
        params, inputs = self._edit_params(request) if edit else self._generation_params(recorded)
        failure, latency = self._pick_failure(params["prompt"])
        ctx = {
            "key": key,
            "request_id": request_id,
            "wake": self._wake,
            "edit": edit,
            "inputs": inputs,
            "latency": self.latency if latency is None else latency,
        }
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if failure is not None:
                return self._failure_response(failure, params, ctx)
            return self._success(params, ctx)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _common_params(self, raw: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise _APIError(400, f"Unrecognized request argument supplied: {unknown[0]}")
        body = {name: value for name, value in raw.items() if value is not None}
        if "prompt" not in body:
            raise _APIError(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        prompt = _check_string("prompt", body["prompt"], 32000)
        if not prompt:
            raise _APIError(
                400,
                "Invalid 'prompt': empty string. Expected a string with minimum length 1, but got "
                "an empty string instead.",
                param="prompt",
                code="empty_string",
            )
        model = body.get("model")
        if model is None:
            raise _APIError(
                400,
                "Missing required parameter: 'model'. Specify a GPT image model.",
                param="model",
                code="missing_required_parameter",
            )
        model = _check_string("model", model)
        if model in RETIRED_MODELS:
            raise _APIError(400, RETIRED_MODELS[model], param="model", code="model_not_found")
        if model not in GPT_IMAGE_MODELS:
            raise _invalid_value("model", model, GPT_IMAGE_MODELS)
        for legacy in ("response_format", "style"):
            if legacy in body:
                raise _APIError(
                    400,
                    f"Unknown parameter: '{legacy}'. It is not supported by GPT image models.",
                    param=legacy,
                    code="unknown_parameter",
                )
        n = _check_int("n", body.get("n", 1), 1, 10)
        size = _check_string("size", body.get("size", "auto"))
        _check_size(model, size)
        qualities = _QUALITIES + (("xhigh", "max") if model in _EXTENDED_QUALITY_MODELS else ())
        quality = _check_string("quality", body.get("quality", "auto"))
        if quality not in qualities:
            raise _invalid_value("quality", quality, qualities)
        background = _check_string("background", body.get("background", "auto"))
        if background not in _BACKGROUNDS:
            raise _invalid_value("background", background, _BACKGROUNDS)
        output_format = _check_string("output_format", body.get("output_format", "png"))
        if output_format not in _OUTPUT_FORMATS:
            raise _invalid_value("output_format", output_format, _OUTPUT_FORMATS)
        if background == "transparent" and output_format == "jpeg":
            raise _APIError(
                400,
                "Transparent background is not supported for the 'jpeg' output format; use "
                "'png' or 'webp'.",
                param="background",
                code="invalid_value",
            )
        if "output_compression" in body:
            _check_int("output_compression", body["output_compression"], 0, 100)
        if "moderation" in body and body["moderation"] not in ("low", "auto"):
            raise _invalid_value("moderation", body["moderation"], ("low", "auto"))
        if "complexity" in body and body["complexity"] not in ("low", "medium", "high"):
            raise _invalid_value("complexity", body["complexity"], ("low", "medium", "high"))
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _APIError(
                400,
                "Invalid type for 'stream': expected a boolean.",
                param="stream",
                code="invalid_type",
            )
        partial_images = _check_int("partial_images", body.get("partial_images", 0), 0, 3)
        if "safety_identifier" in body:
            _check_string("safety_identifier", body["safety_identifier"], 64)
        if "user" in body:
            _check_string("user", body["user"])
        return {
            "prompt": prompt,
            "model": model,
            "n": n,
            "size": size,
            "quality": quality,
            "background": background,
            "output_format": output_format,
            "stream": stream,
            "partial_images": partial_images,
            "safety_identifier": body.get("safety_identifier") or body.get("user"),
        }

    def _generation_params(self, recorded: RecordedRequest) -> tuple[dict[str, Any], list[Any]]:
        if not isinstance(recorded.json, dict):
            raise _APIError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)",
            )
        return self._common_params(recorded.json, _GENERATION_FIELDS), []

    def _edit_params(self, request: Request) -> tuple[dict[str, Any], list[tuple[int, int]]]:
        if request.mimetype != "multipart/form-data":
            raise _APIError(
                400,
                "Invalid Content-Type header (" + (request.mimetype or "none") + "), expected "
                "multipart/form-data.",
            )
        raw: dict[str, Any] = {
            name: request.form.get(name) for name in request.form if name not in _EDIT_FILE_FIELDS
        }
        for name in ("n", "output_compression", "partial_images"):
            if name in raw:
                try:
                    raw[name] = int(raw[name])
                except (TypeError, ValueError):
                    raise _APIError(
                        400,
                        f"Invalid type for '{name}': expected an integer.",
                        param=name,
                        code="invalid_type",
                    ) from None
        if "stream" in raw:
            raw["stream"] = str(raw["stream"]).lower() == "true"
        params = self._common_params(raw, _EDIT_FIELDS)
        fidelity = raw.get("input_fidelity")
        if fidelity is not None and fidelity not in ("high", "low"):
            raise _invalid_value("input_fidelity", fidelity, ("high", "low"))
        images = request.files.getlist("image[]") + request.files.getlist("image")
        if not images:
            raise _APIError(
                400,
                "Missing required parameter: 'image'.",
                param="image",
                code="missing_required_parameter",
            )
        if len(images) > 16:
            raise _APIError(
                400,
                f"Too many images: {len(images)}. You can provide up to 16 images.",
                param="image",
                code="invalid_value",
            )
        sizes: list[tuple[int, int]] = []
        for storage in images:
            content = storage.read()
            storage.stream.seek(0)
            if len(content) > 50 * 1024 * 1024:
                raise _APIError(
                    400, "Image file is larger than 50MB.", param="image", code="invalid_value"
                )
            sizes.append(self._probe(content, "image", ("PNG", "WEBP", "JPEG"))[0])
        mask = request.files.get("mask")
        if mask is not None:
            content = mask.read()
            (width, height), mode = self._probe(content, "mask", ("PNG",))
            if mode not in ("RGBA", "LA", "PA") and not (mode == "P"):
                raise _APIError(
                    400,
                    f"Invalid mask image format - mask must have an alpha channel, got {mode}.",
                    param="mask",
                    code="invalid_value",
                )
            if (width, height) != sizes[0]:
                raise _APIError(
                    400,
                    "Invalid mask image - mask size does not match the size of the first image.",
                    param="mask",
                    code="invalid_value",
                )
        return params, sizes

    @staticmethod
    def _probe(content: bytes, param: str, formats: tuple[str, ...]) -> tuple[tuple[int, int], str]:
        try:
            with Image.open(io.BytesIO(content)) as image:
                image.load()
                if (image.format or "").upper() not in formats:
                    raise ValueError(image.format)
                return image.size, image.mode
        except Exception:
            allowed = ", ".join(f"'{f.lower()}'" for f in formats)
            raise _APIError(
                400,
                f"Invalid image file or mode for '{param}'. Supported formats are {allowed}.",
                param=param,
                code="invalid_image_format",
            ) from None

    def _resolved_size(self, params: dict[str, Any], inputs: list[tuple[int, int]]) -> str:
        size = params["size"]
        if size != "auto":
            return size
        if inputs:
            width, height = inputs[0]
            if width > height * 1.2:
                return "1536x1024"
            if height > width * 1.2:
                return "1024x1536"
        return "1024x1024"

    def _image_b64(self, width: int, height: int, fmt: str, transparent: bool, variant: int) -> str:
        """Base64 image for the request, cached (rendering is not what we measure)."""
        key = (width, height, fmt, transparent, variant)
        with self._images_lock:
            cached = self._image_cache.get(key)
        if cached is not None:
            return cached
        palette = [(52, 101, 164), (204, 0, 0), (78, 154, 6), (196, 160, 0), (117, 80, 123)]
        top, bottom = palette[variant % 5], palette[(variant + 2) % 5]
        mask = Image.linear_gradient("L").resize((width, height))
        image = Image.composite(
            Image.new("RGBA", (width, height), bottom + (255,)),
            Image.new("RGBA", (width, height), top + (255,)),
            mask,
        )
        if transparent:
            image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            ImageDraw.Draw(image).ellipse(
                (width * 0.2, height * 0.2, width * 0.8, height * 0.8), fill=top + (255,)
            )
        elif fmt == "jpeg":
            image = image.convert("RGB")
        buffer = io.BytesIO()
        if fmt == "png":
            image.save(buffer, "PNG", compress_level=1)
        elif fmt == "webp":
            image.save(buffer, "WEBP", quality=80, method=0)
        else:
            image.convert("RGB").save(buffer, "JPEG", quality=85)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        with self._images_lock:
            self._image_cache[key] = encoded
        return encoded

    @staticmethod
    def _usage(params: dict[str, Any], size: str, n: int, input_images: int) -> dict[str, Any]:
        text_tokens = max(1, math.ceil(len(params["prompt"]) / 4))
        image_tokens = 323 * input_images
        quality = "medium" if params["quality"] == "auto" else params["quality"]
        width, _, height = size.partition("x")
        scale = max(1.0, (int(width) * int(height)) / (1024 * 1024))
        output_tokens = int(_OUTPUT_TOKENS[quality] * scale) * n
        input_tokens = text_tokens + image_tokens
        return {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        }

    def _success(self, params: dict[str, Any], ctx: dict[str, Any]) -> Response:
        size = self._resolved_size(params, ctx["inputs"])
        width, _, height = size.partition("x")
        transparent = params["background"] == "transparent"
        variant = int(hashlib.sha256(params["prompt"].encode()).hexdigest()[:4], 16)
        images = [
            self._image_b64(
                int(width), int(height), params["output_format"], transparent, (variant + index) % 5
            )
            for index in range(params["n"])
        ]
        quality = "medium" if params["quality"] == "auto" else params["quality"]
        usage = self._usage(params, size, params["n"], len(ctx["inputs"]))
        common = {
            "background": "transparent" if transparent else "opaque",
            "output_format": params["output_format"],
            "quality": quality,
            "size": size,
        }
        if params["stream"]:
            return self._stream(params, ctx, images, common, usage)
        ctx["wake"].wait(ctx["latency"] * params["n"])
        data = []
        for b64 in images:
            item: dict[str, Any] = {"b64_json": b64}
            if self.revised_prompts:
                item["revised_prompt"] = f"{params['prompt']} (revised)"
            data.append(item)
        payload: dict[str, Any] = {"created": int(time.time()), "data": data, **common}
        payload["usage"] = usage
        if params.get("safety_identifier"):
            payload["safety_identifier"] = params["safety_identifier"]
        return self._json(payload)

    def _stream(
        self,
        params: dict[str, Any],
        ctx: dict[str, Any],
        images: list[str],
        common: dict[str, Any],
        usage: dict[str, Any],
    ) -> Response:
        prefix = "image_edit" if ctx["edit"] else "image_generation"
        partials = params["partial_images"]
        steps = max(1, partials + 1)
        wake = ctx["wake"]
        pause = ctx["latency"] / steps

        def event(kind: str, b64: str, **fields: Any) -> bytes:
            """One server-sent event as the API frames it."""
            payload = {
                "type": f"{prefix}.{kind}",
                "b64_json": b64,
                "created_at": int(time.time()),
                **fields,
                **common,
            }
            return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()

        def events() -> Iterator[bytes]:
            for b64 in images:
                for index in range(partials):
                    wake.wait(pause)
                    yield event("partial_image", b64, partial_image_index=index)
                wake.wait(pause)
                yield event("completed", b64, usage=usage)

        response = Response(events(), 200, content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        return response


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground: ``python -m cms_media.testing.openai_server``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per image")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="accept only this key (repeatable); default: any non-empty key",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds announced on 429")
    parser.add_argument("--hang-seconds", type=float, default=120.0, help="for [[fail:timeout]]")
    parser.add_argument("--revised-prompts", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = OpenAICompatibleServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        api_keys=args.api_keys,
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        revised_prompts=args.revised_prompts,
        quiet=not args.verbose,
    )
    print(
        f"OpenAI-compatible test server on http://{args.host}:{args.port}/v1 "
        f"(latency {args.latency:g} s/image; failures: {', '.join(FAILURE_KINDS)}). "
        "Ctrl-C stops.",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
