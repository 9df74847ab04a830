"""PostgreSQL and Redis for the service tests: used when they answer on 127.0.0.1, skipped
with a notice when not — unless ``CMS_MEDIA_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which
makes a missing service a failure."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "CMS_MEDIA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("CMS_MEDIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
_skipped: dict[str, str] = {}


def services_required() -> bool:
    return os.environ.get("CMS_MEDIA_REQUIRE_SERVICES", "").strip() in ("1", "true", "yes")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need(name: str, host: str, port: int) -> None:
    if _answers(host, port):
        return
    message = f"{name} does not answer on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} (CMS_MEDIA_REQUIRE_SERVICES=1)")
    _skipped[name] = message
    pytest.skip(f"service tests skipped: {message}")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    need("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    need("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def clean_redis(redis_url):
    """An empty Redis database for the test (database 15, never the default 0)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield redis_url
    client.flushdb()
    client.close()


def pytest_terminal_summary(terminalreporter) -> None:
    for name, message in _skipped.items():
        terminalreporter.write_line(f"NOTE: {name} service tests were skipped: {message}")
