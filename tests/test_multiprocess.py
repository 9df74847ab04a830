"""Beyond one machine: two web servers and two workers (separate processes) on PostgreSQL,
Redis and S3, the OpenAI-compatible test server standing in for the provider."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from cms_media.database import session
from cms_media.demo import create_app
from cms_media.demo.cli import init_database, seed_accounts
from cms_media.models import AiSettings, Document, GenerationSlot
from cms_media.testing.openai_server import OpenAICompatibleServer
from tests.conftest import dispose, reset_database
from tests.openai_fixtures import FAKE_OPENAI_API_KEY

pytestmark = pytest.mark.service
ENCRYPTION_KEY = Fernet.generate_key().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browserless:
    """A cookie-keeping HTTP client that signs in and posts like the htmx front end."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.token = ""

    def request(self, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        with self.opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()

    def login(self, email: str, password: str) -> Browserless:
        _, page = self.request("/login")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        self.request("/login", {"email": email, "password": password, "csrf_token": token})
        _, library = self.request("/media/")
        self.token = re.search(r'"X-CSRFToken": "([^"]+)"', library).group(1)
        return self

    def hx_post(self, path: str, data: dict):
        return self.request(path, data, {"HX-Request": "true", "X-CSRFToken": self.token})


class Stack:
    """The processes of one installation, and the settings they share."""

    def __init__(
        self, root: Path, postgres_url: str, redis_url: str, provider_url: str, s3_config: dict
    ) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "FLASK_SQLALCHEMY_DATABASE_URI": postgres_url,
            "FLASK_SECRET_KEY": "multi-process-secret",
            "FLASK_DEMO_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "CMS_MEDIA_INSTANCE_PATH": str(root / "instance"),
            "CMS_MEDIA_STORAGE": "s3",
            **{
                key: json.dumps(value) if not isinstance(value, str) else value
                for key, value in s3_config.items()
            },
            "CMS_MEDIA_QUEUE": "redis",
            "CMS_MEDIA_QUEUE_NAME": f"cms-media-test-{uuid.uuid4().hex[:8]}",
            "CMS_MEDIA_REDIS_URL": redis_url,
            "CMS_MEDIA_RATELIMIT_STORAGE_URI": redis_url,
            "CMS_MEDIA_AI_LIMIT_PER_USER": "1000 per minute",
            "CMS_MEDIA_AI_LIMIT_PER_SITE": "1000 per minute",
            "CMS_MEDIA_AI_SANDBOX": "false",
            "CMS_MEDIA_AI_MAX_RETRIES": "0",
            "CMS_MEDIA_ENCRYPTION_KEYS": json.dumps([ENCRYPTION_KEY]),
        }
        self.processes: list[subprocess.Popen] = []
        self.logs: list = []
        self.app = self._setup(postgres_url, provider_url)

    def _setup(self, postgres_url: str, provider_url: str):
        """The schema, the demo accounts and an instance key for the test provider."""
        reset_database(postgres_url)
        keys = ("FLASK_", "CMS_MEDIA_")
        saved = {k: os.environ.get(k) for k in self.env if k.startswith(keys)}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(keys)})
        try:
            app = create_app({"TESTING": True})
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        with app.app_context():
            init_database()
            seed_accounts()
            row = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
            row.base_url = provider_url
            row.api_key_encrypted = app.extensions["cms_media"].secret_box.encrypt(
                FAKE_OPENAI_API_KEY
            )
            row.api_key_last4 = FAKE_OPENAI_API_KEY[-4:]
            session().commit()
        return app

    def spawn(self, *args: str) -> subprocess.Popen:
        log = (self.root / f"process-{len(self.processes)}.log").open("w")
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, *args], env=self.env, stdout=subprocess.DEVNULL, stderr=log
        )
        self.processes.append(process)
        return process

    def web(self) -> str:
        port = free_port()
        self.spawn(
            "-m",
            "waitress",
            f"--listen=127.0.0.1:{port}",
            "--threads=8",
            "--call",
            "cms_media.demo:create_app",
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return url
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"web server on {port} did not start; see {self.root}")

    def worker(self, workers: int = 4) -> subprocess.Popen:
        return self.spawn(
            "-m",
            "flask",
            "--app",
            "cms_media.demo",
            "cms-media",
            "worker",
            "--workers",
            str(workers),
        )

    def slots(self) -> list[GenerationSlot]:
        with self.app.app_context():
            session().expire_all()
            return list(session().scalars(select(GenerationSlot).order_by(GenerationSlot.id)))

    def wait_until(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.slots()):
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out; slots: {[s.status for s in self.slots()]}")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()
        dispose(self.app)


@pytest.fixture
def provider():
    with OpenAICompatibleServer(api_keys={FAKE_OPENAI_API_KEY}, latency=0.3) as server:
        yield server


@pytest.fixture
def stack(tmp_path, postgres_url, clean_redis, provider, s3_server, s3_prefix):
    stack = Stack(
        tmp_path, postgres_url, clean_redis, provider.base_url, s3_server.app_config(s3_prefix)
    )
    yield stack
    stack.stop()


FORM = {"size": "256x256", "quality": "low", "background": "auto", "output_format": "png"}


def test_two_web_servers_two_workers_every_image_exactly_once(
    stack, provider, s3_server, s3_prefix
):
    servers = [stack.web(), stack.web()]
    stack.worker()
    stack.worker()
    clients = [Browserless(url).login("editor@example.com", "editor-demo") for url in servers]

    def start(index: int) -> int:
        client = clients[index % 2]
        data = {**FORM, "prompt": f"Harbour scene {index}", "count": "2"}
        status, html = client.hx_post("/media/ai/jobs", data)
        assert status == 200
        return int(re.search(r"/media/ai/jobs/(\d+)/save", html).group(1))

    with ThreadPoolExecutor(max_workers=8) as pool:
        job_ids = list(pool.map(start, range(20)))
    assert len(set(job_ids)) == 20

    stack.wait_until(lambda slots: len(slots) == 40 and all(s.status == "ready" for s in slots))
    assert len(provider.requests_to("/images/generations")) == 40  # one paid call per image

    # A re-delivered task (the queue may deliver twice) costs nothing and changes nothing.
    queue = stack.app.extensions["cms_media"].queue
    for slot in stack.slots():
        queue.enqueue_slot(slot.id)
    time.sleep(2)
    assert len(provider.requests_to("/images/generations")) == 40

    # Either web server shows every job's true state.
    for job_id in job_ids:
        for client in clients:
            _, page = client.request(f"/media/ai/jobs/{job_id}")
            batch = re.search(rf'id="cm-batch-{job_id}".*?</section>', page, re.S).group(0)
            assert batch.count("cm-slot cm-slot-ready") == 2

    def save(job_id: int, client: Browserless) -> None:
        ids = [str(s.id) for s in stack.slots() if s.job_id == job_id]
        status, _ = client.hx_post(f"/media/ai/jobs/{job_id}/save", {"slot": ids})
        assert status == 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Every job saved from both servers at once: each image still lands exactly once.
        list(pool.map(save, job_ids + job_ids, clients * 20))
    with stack.app.app_context():
        documents = session().scalar(select(func.count(Document.id)))
    saved = stack.slots()
    assert documents == 40
    assert all(s.status == "saved" for s in saved)
    assert len({s.document_id for s in saved}) == 40
    # In the bucket: an original and a thumbnail per document; the drafts are gone.
    keys = s3_server.keys(s3_prefix)
    assert len([k for k in keys if "/documents/" in k]) == 40
    assert len([k for k in keys if "/thumbnails/" in k]) == 40
    assert not [k for k in keys if "/drafts/" in k]
    assert not (stack.root / "instance" / "media").exists()  # nothing on local disk


def test_a_killed_worker_leaves_its_slot_retried_not_stuck(stack, provider):
    provider.latency = 3
    server = stack.web()
    victim = stack.worker(workers=1)
    client = Browserless(server).login("editor@example.com", "editor-demo")
    status, _ = client.hx_post("/media/ai/jobs", {**FORM, "prompt": "A storm", "count": "1"})
    assert status == 200
    stack.wait_until(lambda slots: slots and slots[0].status == "running", timeout=30)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    # A new worker starts; the periodic recovery (run here at once) queues the orphan again.
    stack.worker(workers=1)
    provider.latency = 0.1
    with stack.app.app_context():
        from cms_media.services.generation import recover_interrupted

        assert recover_interrupted(orphaned_after=0) == 1
    stack.wait_until(lambda slots: slots[0].status == "ready", timeout=30)
    (slot,) = stack.slots()
    assert slot.attempts == 2
