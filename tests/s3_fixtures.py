"""Pytest plugin: an S3-compatible server on 127.0.0.1 for the S3 storage tests.

Load it with ``-p tests.s3_fixtures`` or list it in ``tests/conftest.py``'s
``pytest_plugins``. By default the server is moto's server mode, started in this process on a
free loopback port once per session (no Debian package provides an S3 server). To test
against another server instead (SeaweedFS, MinIO, ...) that is already listening, set
``CMS_MEDIA_TEST_S3_ENDPOINT_URL`` (plus ``CMS_MEDIA_TEST_S3_ACCESS_KEY_ID``,
``CMS_MEDIA_TEST_S3_SECRET_ACCESS_KEY`` and ``CMS_MEDIA_TEST_S3_REGION`` where it needs
them); the session then works in a bucket of its own there and removes it at the end.

Tests that use the server (directly or through ``s3_prefix``) get the ``service`` marker.
Where no server can be had they are skipped with the reason, unless
``CMS_MEDIA_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which makes that a failure.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

REQUIRE_ENV = "CMS_MEDIA_REQUIRE_SERVICES"
ENDPOINT_ENV = "CMS_MEDIA_TEST_S3_ENDPOINT_URL"
START_TIMEOUT = 15.0
_skipped: list[str] = []
# moto accepts any credentials; these only have to look like keys.
MOTO_ACCESS_KEY = "cms-media-test-key"
MOTO_SECRET_KEY = "cms-media-test-secret"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip (or, where services are required, fail) the test asking for the server."""
    message = f"S3 server unavailable: {reason}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 makes this a failure)", pytrace=False)
    _skipped.append(reason)
    pytest.skip(f"{message} (set {REQUIRE_ENV}=1 to fail instead of skipping)")


@dataclass(frozen=True)
class S3Server:
    """Where the test server listens, and a bucket created for this session."""

    endpoint_url: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    kind: str  # "moto" or "external"

    def client(self, **config: Any) -> Any:
        """A plain boto3 client for checking what is in the bucket behind the backend's back."""
        import boto3
        from botocore.config import Config

        settings: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "connect_timeout": 5,
            "read_timeout": 30,
            "retries": {"mode": "standard", "max_attempts": 3},
            **config,
        }
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**settings),
        )

    def storage_settings(self, prefix: str = "") -> dict[str, Any]:
        """Keyword arguments for :class:`cms_media.storage_s3.S3Storage`."""
        return dict(
            bucket=self.bucket,
            prefix=prefix,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            path_style=True,
        )

    def app_config(self, prefix: str = "", serve: str = "app") -> dict[str, Any]:
        """The same as ``CMS_MEDIA_S3_*`` settings of an app."""
        return {
            "CMS_MEDIA_S3_BUCKET": self.bucket,
            "CMS_MEDIA_S3_PREFIX": prefix,
            "CMS_MEDIA_S3_ENDPOINT_URL": self.endpoint_url,
            "CMS_MEDIA_S3_REGION": self.region,
            "CMS_MEDIA_S3_ACCESS_KEY_ID": self.access_key,
            "CMS_MEDIA_S3_SECRET_ACCESS_KEY": self.secret_key,
            "CMS_MEDIA_S3_PATH_STYLE": True,
            "CMS_MEDIA_S3_PRESIGN_SECONDS": 120,
            "CMS_MEDIA_S3_SERVE": serve,
        }

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket that starts with ``prefix``, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def empty_bucket(self) -> None:
        client = self.client()
        for key in self.keys():
            client.delete_object(Bucket=self.bucket, Key=key)


def _loopback_works() -> str | None:
    """Why nothing can listen on 127.0.0.1, or ``None`` when something can."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            probe.listen()
    except OSError as exc:
        return f"cannot listen on 127.0.0.1 ({exc})"
    return None


def _start_moto() -> tuple[Any, str]:
    """moto's threaded server on a free loopback port: ``(server, endpoint_url)``."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        unavailable(f"moto's server mode is not installed ({exc}); pip install 'moto[server]'")
    problem = _loopback_works()
    if problem:
        unavailable(problem)
    # Port 0: the system picks a free port, so parallel runs never collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # start() waits for the server without a time limit; wait in a thread of our own instead.
    starter = threading.Thread(target=server.start, name="moto-start", daemon=True)
    starter.start()
    starter.join(START_TIMEOUT)
    if starter.is_alive():
        unavailable(f"moto's server did not start within {START_TIMEOUT:.0f} s")
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the S3 server is a service test (``-m "not service"`` drops it)."""
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.service)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A running S3-compatible server with an empty bucket for this session."""
    moto_server = None
    external = os.environ.get(ENDPOINT_ENV, "").strip()
    if external:
        endpoint_url, kind = external, "external"
        access_key = os.environ.get("CMS_MEDIA_TEST_S3_ACCESS_KEY_ID", MOTO_ACCESS_KEY)
        secret_key = os.environ.get("CMS_MEDIA_TEST_S3_SECRET_ACCESS_KEY", MOTO_SECRET_KEY)
        region = os.environ.get("CMS_MEDIA_TEST_S3_REGION", "us-east-1")
    else:
        moto_server, endpoint_url = _start_moto()
        kind, access_key, secret_key, region = "moto", MOTO_ACCESS_KEY, MOTO_SECRET_KEY, "us-east-1"
    server = S3Server(
        endpoint_url=endpoint_url,
        bucket=f"cms-media-test-{uuid.uuid4().hex[:12]}",
        region=region,
        access_key=access_key,
        secret_key=secret_key,
        kind=kind,
    )
    try:
        try:
            server.client(retries={"mode": "standard", "max_attempts": 1}).create_bucket(
                Bucket=server.bucket
            )
        except Exception as exc:  # any failure here means: no usable server
            unavailable(f"could not create a bucket at {endpoint_url} ({exc})")
        yield server
        if kind == "external":
            server.empty_bucket()
            server.client().delete_bucket(Bucket=server.bucket)
    finally:
        if moto_server is not None:
            moto_server.stop()


@pytest.fixture
def s3_prefix(s3_server: S3Server) -> str:
    """A prefix no other test uses, so each test sees an empty corner of the bucket."""
    return f"t-{uuid.uuid4().hex[:12]}"


def pytest_terminal_summary(terminalreporter) -> None:
    """Say plainly at the end of the run that the S3 tests did not run, and why."""
    if _skipped:
        terminalreporter.write_line(f"NOTE: S3 service tests were skipped: {_skipped[0]}")
