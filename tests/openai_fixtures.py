"""Pytest plugin: a local OpenAI-compatible server and providers wired to it.

Listed in ``tests/conftest.py`` as ``pytest_plugins = ["tests.openai_fixtures"]``. The server
is started once per session (binding a port and a thread per test would be slow) and reset
before and after every test, so each test sees no recorded requests, no queued failures and
the default latency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cms_media.ai.providers import (
    OpenAIImageProvider,
    SandboxImageProvider,
    clear_client_cache,
)
from cms_media.testing.openai_server import OpenAICompatibleServer

#: A fake key shaped like a real one; tests assert it never leaks into messages.
FAKE_OPENAI_API_KEY = "sk-test-" + "Zq7XbN2kLw9PvR4sTy6UaC8dEf1GhJ3mKo5QiW0x"
#: Announced in retry-after(-ms) on 429 so SDK retries stay fast.
RETRY_AFTER_SECONDS = 0.01


@pytest.fixture(scope="session")
def _openai_server_session() -> Iterator[OpenAICompatibleServer]:
    server = OpenAICompatibleServer(
        api_keys={FAKE_OPENAI_API_KEY},
        retry_after=RETRY_AFTER_SECONDS,
        hang_seconds=5.0,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_server(
    _openai_server_session: OpenAICompatibleServer,
) -> Iterator[OpenAICompatibleServer]:
    """The running local server, clean for this test (requests, failures and settings reset)."""
    server = _openai_server_session
    server.reset()
    try:
        yield server
    finally:
        server.reset()
        clear_client_cache()


@pytest.fixture
def openai_api_key() -> str:
    """The key the local server accepts."""
    return FAKE_OPENAI_API_KEY


@pytest.fixture
def make_openai_provider(
    openai_server: OpenAICompatibleServer,
) -> Callable[..., OpenAIImageProvider]:
    """Factory for providers pointed at the local server; short timeouts, no retries unless
    asked (``max_retries=``), so failure tests stay fast."""

    def factory(**overrides: Any) -> OpenAIImageProvider:
        settings: dict[str, Any] = {
            "api_key": FAKE_OPENAI_API_KEY,
            "base_url": openai_server.base_url,
            "timeout": 5.0,
            "max_retries": 0,
        }
        settings.update(overrides)
        return OpenAIImageProvider(**settings)

    return factory


@pytest.fixture
def openai_provider(
    make_openai_provider: Callable[..., OpenAIImageProvider],
) -> OpenAIImageProvider:
    """A provider for the local server with the default model and no retries."""
    return make_openai_provider()


@pytest.fixture
def sandbox_provider() -> SandboxImageProvider:
    """The offline provider without delay."""
    return SandboxImageProvider()
