"""The image provider layer, exercised through the real ``openai`` SDK over HTTP against the
local OpenAI-compatible server (no monkeypatching of SDK functions), plus the offline sandbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import pickle
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from PIL import Image

from cms_media.ai import providers
from cms_media.ai.providers import (
    DEFAULT_MODEL,
    MODELS,
    RETIRED_MODELS,
    SUPPORTED_SIZES,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    GenerationResult,
    ImageProvider,
    ImageRequest,
    InvalidResponseError,
    ModelNotAvailableError,
    OpenAIImageProvider,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitedError,
    SandboxImageProvider,
    fit_to_size,
    get_openai_client,
    native_size_for,
    safety_identifier_for,
)
from cms_media.testing.openai_server import FAILURE_KINDS
from tests.openai_fixtures import FAKE_OPENAI_API_KEY, RETRY_AFTER_SECONDS


def make_request(**overrides: object) -> ImageRequest:
    values: dict[str, object] = {"prompt": "A lighthouse at dusk", "size": "1024x1024"}
    values["model"] = DEFAULT_MODEL
    values.update(overrides)
    return ImageRequest(**values)  # type: ignore[arg-type]


def open_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def generation_bodies(server) -> list[dict]:
    return [r.json for r in server.requests_to("/images/generations")]


def assert_no_secret(error: BaseException, key: str = FAKE_OPENAI_API_KEY) -> None:
    texts = [str(error), repr(error)]
    if isinstance(error, ProviderError):
        texts += [error.user_message, error.admin_message]
    for text in texts:
        assert key not in text
        assert key[-4:] not in text  # not even the masked form the API echoes
        assert "Traceback" not in text


# ------------------------------------------------------------------------------------ success


@pytest.mark.parametrize("size", ["1024x1024", "1536x1024", "1024x1536", "auto"])
def test_native_sizes_are_requested_as_is(openai_provider, openai_server, size):
    result = openai_provider.generate(make_request(size=size))

    expected = (1024, 1024) if size == "auto" else tuple(int(v) for v in size.split("x"))
    assert (result.image.width, result.image.height) == expected
    assert open_image(result.image.data).size == expected
    assert generation_bodies(openai_server)[0]["size"] == size
    assert result.provider == "openai" and result.model == DEFAULT_MODEL


@pytest.mark.parametrize("size", ["256x256", "512x512"])
def test_small_sizes_are_downscaled_locally(openai_provider, openai_server, size):
    result = openai_provider.generate(make_request(size=size))

    side = int(size.split("x")[0])
    assert (result.image.width, result.image.height) == (side, side)
    assert open_image(result.image.data).size == (side, side)
    assert generation_bodies(openai_server)[0]["size"] == "1024x1024"


@pytest.mark.parametrize(
    ("output_format", "pil_format", "mime"),
    [("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp"), ("jpeg", "JPEG", "image/jpeg")],
)
@pytest.mark.parametrize("size", ["1024x1024", "512x512"])
def test_output_formats(openai_provider, openai_server, output_format, pil_format, mime, size):
    result = openai_provider.generate(make_request(output_format=output_format, size=size))

    with Image.open(io.BytesIO(result.image.data)) as image:
        assert image.format == pil_format
    assert result.image.mime_type == mime
    assert generation_bodies(openai_server)[0]["output_format"] == output_format


@pytest.mark.parametrize("output_format", ["png", "webp"])
@pytest.mark.parametrize("size", ["1024x1024", "256x256"])
def test_transparent_background_is_kept(openai_provider, output_format, size):
    result = openai_provider.generate(
        make_request(background="transparent", output_format=output_format, size=size)
    )

    image = open_image(result.image.data)
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0  # corner transparent
    centre = image.getpixel((image.width // 2, image.height // 2))
    assert centre[3] == 255


def test_request_sent_to_the_api(openai_provider, openai_server):
    identifier = safety_identifier_for("user-17", b"site-secret")
    openai_provider.generate(
        make_request(quality="low", background="opaque", safety_identifier=identifier)
    )

    (recorded,) = openai_server.requests_to("/images/generations")
    body = recorded.json
    assert body == {
        "model": DEFAULT_MODEL,
        "prompt": "A lighthouse at dusk",
        "n": 1,
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "safety_identifier": identifier,
    }
    assert "response_format" not in body and "style" not in body and "user" not in body
    assert body["safety_identifier"] != "user-17" and "user-17" not in str(body)
    assert recorded.has_authorization and recorded.authorized
    assert "authorization" not in recorded.headers
    assert FAKE_OPENAI_API_KEY not in repr(openai_server.requests)


def test_safety_identifier_is_omitted_when_not_given(openai_provider, openai_server):
    openai_provider.generate(make_request())
    assert "safety_identifier" not in generation_bodies(openai_server)[0]


def test_usage_and_revised_prompt(openai_provider, openai_server):
    openai_server.revised_prompts = True
    result = openai_provider.generate(make_request(quality="high"))

    assert result.usage is not None
    assert result.usage.output_tokens == 4160
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    assert result.image.revised_prompt == "A lighthouse at dusk (revised)"


def test_parallel_calls_share_one_client(make_openai_provider, openai_server):
    openai_server.latency = 0.3
    provider = make_openai_provider()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(provider.generate, [make_request()] * 4))
    elapsed = time.perf_counter() - started

    assert all(isinstance(r, GenerationResult) for r in results)
    assert openai_server.max_in_flight == 4
    assert elapsed < 1.2  # 4 x 0.3 s in parallel, not in series


# ------------------------------------------------------------------------------------- errors

ERROR_CASES = [
    ("moderation", ContentPolicyError, "content_policy", False),
    ("content_policy", ContentPolicyError, "content_policy", False),
    ("invalid_key", AuthenticationError, "auth", False),
    ("permission", AuthenticationError, "auth", False),
    ("rate_limit", RateLimitedError, "rate_limited", True),
    ("quota", QuotaExceededError, "quota", False),
    ("server_error", ProviderUnavailableError, "unavailable", True),
    ("overloaded", ProviderUnavailableError, "unavailable", True),
    ("disconnect", ProviderUnavailableError, "unavailable", True),
    ("malformed_json", InvalidResponseError, "bad_response", True),
    ("bad_base64", InvalidResponseError, "bad_response", True),
    ("not_image", InvalidResponseError, "bad_response", True),
    ("empty_data", InvalidResponseError, "bad_response", True),
]


def test_every_failure_kind_is_covered():
    assert {case[0] for case in ERROR_CASES} | {"timeout"} == set(FAILURE_KINDS)


@pytest.mark.parametrize(("kind", "error_class", "code", "retryable"), ERROR_CASES)
def test_failures_map_to_provider_errors(
    openai_provider, openai_server, kind, error_class, code, retryable
):
    openai_server.fail_next(kind)
    with pytest.raises(error_class) as caught:
        openai_provider.generate(make_request())

    error = caught.value
    assert type(error) is error_class
    assert error.code == code
    assert error.retryable is retryable
    assert str(error) == error.user_message == error_class.default_user_message
    assert error.admin_message
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert_no_secret(error)


def test_editor_messages(openai_provider, openai_server):
    expected = {
        "moderation": "The description was refused by the provider's content policy. "
        "Rephrase it and try again.",
        "quota": "This site has reached its AI image quota. Ask a site administrator.",
        "rate_limit": "The provider is busy; try again in a minute.",
        "invalid_key": "AI image creation is not configured correctly; ask an administrator.",
    }
    for kind, message in expected.items():
        openai_server.fail_next(kind)
        with pytest.raises(ProviderError) as caught:
            openai_provider.generate(make_request())
        assert caught.value.user_message == message


def test_admin_messages_name_the_setting_and_keep_provider_text(openai_provider, openai_server):
    openai_server.fail_next("invalid_key")
    with pytest.raises(AuthenticationError) as caught:
        openai_provider.generate(make_request())
    error = caught.value
    assert "CMS_MEDIA_OPENAI_API_KEY" in error.admin_message
    assert "Incorrect API key provided" in error.admin_message
    assert error.status_code == 401 and error.provider_code == "invalid_api_key"
    assert error.request_id and error.request_id.startswith("req_")

    custom = OpenAIImageProvider(
        FAKE_OPENAI_API_KEY,
        base_url=openai_server.base_url,
        max_retries=0,
        setting_names={"api_key": "Site settings › OpenAI key"},
    )
    openai_server.fail_next("quota")
    with pytest.raises(QuotaExceededError) as caught:
        custom.generate(make_request())
    assert "Site settings › OpenAI key" in caught.value.admin_message


def test_moderation_directive_in_prompt(openai_provider):
    with pytest.raises(ContentPolicyError) as caught:
        openai_provider.generate(make_request(prompt="a harbour [[fail:moderation]]"))
    assert caught.value.provider_code == "moderation_blocked"


def test_rate_limit_is_retried_by_the_sdk_then_succeeds(make_openai_provider, openai_server):
    provider = make_openai_provider(max_retries=2)
    openai_server.fail_next("rate_limit", times=1)

    result = provider.generate(make_request())

    assert result.image.width == 1024
    attempts = openai_server.requests_to("/images/generations")
    assert len(attempts) == 2
    assert [r.headers["x-stainless-retry-count"] for r in attempts] == ["0", "1"]


def test_rate_limit_directive_fails_only_the_first_attempt(make_openai_provider, openai_server):
    provider = make_openai_provider(max_retries=1)
    provider.generate(make_request(prompt="a pier [[fail:rate_limit:1]]"))
    assert len(openai_server.requests_to("/images/generations")) == 2


def test_rate_limit_exhausting_retries(make_openai_provider, openai_server):
    provider = make_openai_provider(max_retries=2)
    openai_server.fail_next("rate_limit", times=3)

    with pytest.raises(RateLimitedError) as caught:
        provider.generate(make_request())

    assert len(openai_server.requests_to("/images/generations")) == 3
    assert caught.value.retryable
    assert caught.value.retry_after == pytest.approx(RETRY_AFTER_SECONDS)


def test_insufficient_quota_is_not_retried(make_openai_provider, openai_server):
    provider = make_openai_provider(max_retries=3)
    openai_server.fail_next("quota", times=4)

    with pytest.raises(QuotaExceededError) as caught:
        provider.generate(make_request())

    assert len(openai_server.requests_to("/images/generations")) == 1
    assert not caught.value.retryable


def test_server_error_is_retried_then_succeeds(make_openai_provider, openai_server):
    provider = make_openai_provider(max_retries=1)
    openai_server.fail_next("server_error")
    provider.generate(make_request())
    assert len(openai_server.requests_to("/images/generations")) == 2


def test_timeout_maps_to_provider_timeout(make_openai_provider, openai_server):
    provider = make_openai_provider(timeout=0.25, max_retries=0)
    openai_server.fail_next("timeout")
    started = time.perf_counter()

    with pytest.raises(ProviderTimeoutError) as caught:
        provider.generate(make_request())

    assert time.perf_counter() - started < 2
    assert caught.value.retryable and caught.value.code == "timeout"
    assert "CMS_MEDIA_AI_TIMEOUT" in caught.value.admin_message
    assert_no_secret(caught.value)


def test_connection_refused_maps_to_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = OpenAIImageProvider(
        FAKE_OPENAI_API_KEY, base_url=f"http://127.0.0.1:{port}/v1", timeout=2, max_retries=0
    )
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            provider.generate(make_request())
        assert_no_secret(caught.value)
    finally:
        providers.clear_client_cache()


@pytest.mark.parametrize("model", sorted(RETIRED_MODELS))
def test_retired_models_are_refused(openai_provider, openai_server, model):
    with pytest.raises(ModelNotAvailableError) as caught:
        openai_provider.generate(make_request(model=model))
    assert isinstance(caught.value, BadRequestError)
    assert "CMS_MEDIA_AI_MODEL" in caught.value.admin_message
    assert model in caught.value.admin_message


def test_bad_requests_are_refused_before_any_call(openai_provider, openai_server):
    for request in (
        make_request(size="300x300"),
        make_request(background="transparent", output_format="jpeg"),
        make_request(quality="hd"),
        make_request(prompt="   "),
        make_request(safety_identifier="x" * 65),
    ):
        with pytest.raises(BadRequestError):
            openai_provider.generate(request)
    assert openai_server.requests == []


def test_missing_key_is_an_authentication_error():
    with pytest.raises(AuthenticationError) as caught:
        OpenAIImageProvider("")
    assert "CMS_MEDIA_OPENAI_API_KEY" in caught.value.admin_message


def test_errors_survive_pickling():
    error = QuotaExceededError("admin text", status_code=429, request_id="req_1")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is QuotaExceededError
    assert (copy.user_message, copy.admin_message, copy.code, copy.retryable) == (
        error.user_message,
        "admin text",
        "quota",
        False,
    )
    assert copy.request_id == "req_1" and str(copy) == error.user_message


# ----------------------------------------------------------------------- credentials & cache


def test_check_credentials(make_openai_provider, openai_server):
    make_openai_provider().check_credentials()
    assert openai_server.requests[-1].path == f"/v1/models/{DEFAULT_MODEL}"

    wrong = make_openai_provider(api_key="sk-test-" + "W" * 40, max_retries=2)
    with pytest.raises(AuthenticationError) as caught:
        wrong.check_credentials()
    assert_no_secret(caught.value, "sk-test-" + "W" * 40)
    assert len(openai_server.requests) == 2  # never retried

    with pytest.raises(ModelNotAvailableError):
        make_openai_provider().check_credentials(model="dall-e-3")


def test_client_cache(openai_server):
    settings = {"base_url": openai_server.base_url, "timeout": 5.0, "max_retries": 0}
    first = get_openai_client(FAKE_OPENAI_API_KEY, **settings)
    assert get_openai_client(FAKE_OPENAI_API_KEY, **settings) is first
    assert get_openai_client(FAKE_OPENAI_API_KEY, **{**settings, "timeout": 6.0}) is not first
    assert get_openai_client("sk-test-other", **settings) is not first

    one = OpenAIImageProvider(FAKE_OPENAI_API_KEY, **settings)
    two = OpenAIImageProvider(FAKE_OPENAI_API_KEY, **settings)
    assert one._client is two._client is first
    assert FAKE_OPENAI_API_KEY not in repr(providers._CLIENT_CACHE)
    assert all(len(key) == 64 for key in providers._CLIENT_CACHE)
    assert FAKE_OPENAI_API_KEY not in repr(one)


def test_map_openai_error_for_unknown_exceptions():
    error = providers.map_openai_error(RuntimeError("boom " + FAKE_OPENAI_API_KEY))
    assert type(error) is ProviderError
    assert_no_secret(error)


# --------------------------------------------------------------------- the server, directly


def test_server_rejects_what_the_real_api_rejects(openai_server):
    with openai.OpenAI(
        api_key=FAKE_OPENAI_API_KEY, base_url=openai_server.base_url, max_retries=0
    ) as client:
        cases = [
            ({"response_format": "b64_json"}, "unknown_parameter"),
            ({"style": "vivid"}, "unknown_parameter"),
            ({"size": "256x256"}, "invalid_value"),
            ({"n": 11}, "integer_above_max_value"),
            ({"quality": "hd"}, "invalid_value"),
            ({"model": "dall-e-2"}, "model_not_found"),
            ({"model": "no-such-model"}, "invalid_value"),
            ({"background": "transparent", "output_format": "jpeg"}, "invalid_value"),
        ]
        for extra, code in cases:
            params = {"model": DEFAULT_MODEL, "prompt": "x", **extra}
            with pytest.raises(openai.BadRequestError) as caught:
                client.images.generate(**params)
            assert caught.value.code == code, extra
            assert set(caught.value.body) == {"message", "type", "param", "code"}

        # gpt-image-2 takes any WxH in multiples of 16
        response = client.images.generate(model="gpt-image-2", prompt="x", size="1536x864")
        assert response.size == "1536x864"

    with openai.OpenAI(api_key="sk-wrong", base_url=openai_server.base_url, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.models.list()
        assert caught.value.code == "invalid_api_key"


def test_server_response_shape(openai_server):
    with openai.OpenAI(
        api_key=FAKE_OPENAI_API_KEY, base_url=openai_server.base_url, max_retries=0
    ) as client:
        response = client.images.generate(
            model=DEFAULT_MODEL, prompt="two images", n=2, size="1536x1024", quality="low"
        )
        models = [m.id for m in client.models.list()]

    assert len(response.data) == 2 and response.created > 0
    assert (response.size, response.quality, response.output_format) == ("1536x1024", "low", "png")
    assert response.background == "opaque"
    assert response.usage.input_tokens_details.text_tokens >= 1
    assert open_image(base64.b64decode(response.data[0].b64_json)).size == (1536, 1024)
    assert set(MODELS) <= set(models) and not set(RETIRED_MODELS) & set(models)


def test_server_edits_endpoint(openai_server):
    def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size).save(buffer, "PNG")
        return buffer.getvalue()

    with openai.OpenAI(
        api_key=FAKE_OPENAI_API_KEY, base_url=openai_server.base_url, max_retries=0
    ) as client:
        response = client.images.edit(
            model=DEFAULT_MODEL,
            prompt="add a boat",
            image=[("a.png", png((300, 200)), "image/png"), ("b.png", png((64, 64)), "image/png")],
            mask=("mask.png", png((300, 200), "RGBA"), "image/png"),
        )
        assert response.size == "1536x1024"  # "auto" follows the first image's orientation
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.edit(
                model=DEFAULT_MODEL,
                prompt="x",
                image=("a.png", png((300, 200)), "image/png"),
                mask=("mask.png", png((10, 10), "RGBA"), "image/png"),
            )
        assert caught.value.param == "mask"

    recorded = openai_server.requests_to("/images/edits")[0]
    assert recorded.form["prompt"] == "add a boat"
    assert len(recorded.files["image[]"]) == 2 and len(recorded.files["mask"]) == 1


def test_server_streams_partial_images(openai_server):
    with openai.OpenAI(
        api_key=FAKE_OPENAI_API_KEY, base_url=openai_server.base_url, max_retries=0
    ) as client:
        stream = client.images.generate(
            model=DEFAULT_MODEL, prompt="x", stream=True, partial_images=2, size="1024x1024"
        )
        with stream:
            events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert events[-1].usage.total_tokens > 0


def test_server_latency_directive(openai_provider):
    started = time.perf_counter()
    openai_provider.generate(make_request(prompt="slow [[latency:0.3]]"))
    assert time.perf_counter() - started >= 0.3


# ---------------------------------------------------------------------------- image fitting


def test_fit_to_size_keeps_matching_bytes_and_crops_other_aspects():
    buffer = io.BytesIO()
    Image.new("RGB", (1536, 1024), (10, 20, 30)).save(buffer, "PNG")
    source = buffer.getvalue()

    same = fit_to_size(source, "1536x1024", "png")
    assert same.data == source

    square = fit_to_size(source, "256x256", "jpeg")
    assert (square.width, square.height) == (256, 256)
    assert open_image(square.data).size == (256, 256)


def test_fit_to_size_flattens_alpha_for_jpeg():
    buffer = io.BytesIO()
    Image.new("RGBA", (1024, 1024), (0, 0, 0, 0)).save(buffer, "PNG")

    result = fit_to_size(buffer.getvalue(), "512x512", "jpeg")

    image = open_image(result.data)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_fit_to_size_rejects_non_images():
    with pytest.raises(InvalidResponseError):
        fit_to_size(b"not an image at all", "1024x1024", "png")


def test_native_size_for():
    assert native_size_for("512x512") == "1024x1024"
    assert native_size_for("1536x1024") == "1536x1024"
    with pytest.raises(BadRequestError):
        native_size_for("1792x1024")


def test_safety_identifier_for():
    value = safety_identifier_for("42", b"secret")
    assert value == hmac.new(b"secret", b"42", hashlib.sha256).hexdigest()
    assert len(value) == 64 and "42" not in value.replace(value, "")
    assert safety_identifier_for(42, b"secret") == value
    assert safety_identifier_for("42", b"other") != value
    with pytest.raises(ValueError):
        safety_identifier_for("42", b"")


def test_models_offer_only_current_gpt_image_models():
    assert DEFAULT_MODEL in MODELS
    assert not set(MODELS) & set(RETIRED_MODELS)
    assert all(model.startswith("gpt-image-") for model in MODELS)


# ------------------------------------------------------------------------------------ sandbox


def test_sandbox_is_a_provider(sandbox_provider):
    assert isinstance(sandbox_provider, ImageProvider)
    assert sandbox_provider.is_sandbox and sandbox_provider.name == "sandbox"
    sandbox_provider.check_credentials()
    result = sandbox_provider.generate(make_request())
    assert (result.usage, result.model, result.provider) == (None, "sandbox", "sandbox")


def test_sandbox_is_deterministic_per_variation(sandbox_provider):
    first = sandbox_provider.generate(make_request(variation=1)).image.data
    again = sandbox_provider.generate(make_request(variation=1)).image.data
    other = sandbox_provider.generate(make_request(variation=2)).image.data
    other_prompt = sandbox_provider.generate(make_request(prompt="A mill", variation=1)).image.data

    assert first == again
    assert len({first, other, other_prompt}) == 3


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
def test_sandbox_honours_sizes(sandbox_provider, size):
    result = sandbox_provider.generate(make_request(size=size))
    expected = (1024, 1024) if size == "auto" else tuple(int(v) for v in size.split("x"))
    assert (result.image.width, result.image.height) == expected
    assert open_image(result.image.data).size == expected


@pytest.mark.parametrize(
    ("output_format", "pil_format"), [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")]
)
def test_sandbox_formats_and_background(sandbox_provider, output_format, pil_format):
    background = "opaque" if output_format == "jpeg" else "transparent"
    result = sandbox_provider.generate(
        make_request(size="256x256", output_format=output_format, background=background)
    )
    with Image.open(io.BytesIO(result.image.data)) as image:
        assert image.format == pil_format
        if background == "transparent":
            assert image.mode == "RGBA"
            assert image.convert("RGBA").getchannel("A").getextrema()[0] == 0


def test_sandbox_refuses_forbidden(sandbox_provider):
    with pytest.raises(ContentPolicyError) as caught:
        sandbox_provider.generate(make_request(prompt="Something Forbidden here"))
    assert "forbidden" in caught.value.admin_message
    sandbox_provider.generate(make_request(prompt="forbiddenness is fine as a longer word"))


def test_sandbox_delay():
    provider = SandboxImageProvider(delay_seconds=0.2)
    started = time.perf_counter()
    provider.generate(make_request(size="256x256"))
    assert time.perf_counter() - started >= 0.2
