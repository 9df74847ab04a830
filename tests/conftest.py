"""One app per test, built by the factory, with an in-memory database and a temporary
storage root. Helpers sign users in and make htmx requests."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import create_engine, text

from cms_media.demo import create_app
from cms_media.demo.cli import init_database, seed_accounts
from cms_media.demo.models import Site, db

pytest_plugins = [
    "tests.openai_fixtures",
    "tests.browser_fixtures",
    "tests.service_fixtures",
    "tests.s3_fixtures",
]

CSRF_PATTERN = re.compile(
    r'"X-CSRFToken": "([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"'
)
PASSWORDS = {
    "admin": ("admin@example.com", "admin-demo"),
    "siteadmin": ("siteadmin@example.com", "siteadmin-demo"),
    "editor": ("editor@example.com", "editor-demo"),
    "viewer": ("viewer@example.com", "viewer-demo"),
    "alpine": ("alpine.editor@example.com", "alpine-demo"),
}


# The whole suite runs on SQLite by default and on PostgreSQL with, for example,
# CMS_MEDIA_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test
TEST_DATABASE_URL = os.environ.get("CMS_MEDIA_TEST_DATABASE_URL") or "sqlite://"


def on_postgresql() -> bool:
    return TEST_DATABASE_URL.startswith("postgresql")


def reset_database(url: str = TEST_DATABASE_URL) -> None:
    """A clean PostgreSQL schema for each test (SQLite's in-memory database is new anyway)."""
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()


def make_test_app(tmp_path: Path, **config) -> Flask:
    """The demo app from its factory, with tables and the demo accounts (no sample images)."""
    reset_database()
    os.environ["CMS_MEDIA_INSTANCE_PATH"] = str(tmp_path / "instance")
    try:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test-secret",
                "DEMO_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
                "SQLALCHEMY_DATABASE_URI": TEST_DATABASE_URL,
                "CMS_MEDIA_STORAGE_ROOT": str(tmp_path / "media"),
                "CMS_MEDIA_QUEUE": "immediate",
                "CMS_MEDIA_AI_SANDBOX_DELAY": 0,
                **config,
            }
        )
    finally:
        del os.environ["CMS_MEDIA_INSTANCE_PATH"]
    with app.app_context():
        init_database()
        seed_accounts()
    app.test_client_class = MediaClient
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app_config() -> dict:
    """Settings for the ``app`` fixture; override it in a module (or parametrize it)."""
    return {}


@pytest.fixture
def app(tmp_path, app_config) -> Flask:
    app = make_test_app(tmp_path, **app_config)
    yield app
    dispose(app)


@pytest.fixture
def sites(app) -> dict[str, str]:
    """Site ids by slug: ``harbour`` (site A) and ``alpine`` (site B)."""
    with app.app_context():
        return {site.slug: str(site.id) for site in db.session.scalars(db.select(Site))}


class MediaClient(FlaskClient):
    """A test client that signs in, knows its CSRF token and speaks htmx."""

    csrf: str | None = None

    def login(self, who: str) -> MediaClient:
        email, password = PASSWORDS[who]
        page = self.get("/login")
        token = _find_token(page.get_data(as_text=True))
        response = self.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        self.csrf = None  # the session was renewed at login
        return self

    def token(self) -> str:
        if self.csrf is None:
            self.csrf = _find_token(self.get("/login").get_data(as_text=True))
        return self.csrf

    def switch_site(self, site_id: str):
        return self.post("/switch-site", data={"site_id": site_id, "csrf_token": self.token()})

    def hx_get(self, url: str, **kwargs):
        return self.get(url, headers={"HX-Request": "true"}, **kwargs)

    def hx_post(self, url: str, data=None, **kwargs):
        headers = {"HX-Request": "true", "X-CSRFToken": self.token()}
        return self.post(url, data=data or {}, headers=headers, **kwargs)

    def form_post(self, url: str, data=None, **kwargs):
        """A plain browser form post (no JavaScript): the token travels in the body."""
        return self.post(url, data={"csrf_token": self.token(), **(data or {})}, **kwargs)


def _find_token(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


@pytest.fixture
def client_for(app):
    """``client_for("editor")``: a signed-in client; ``client_for(None)``: anonymous."""
    def make(who: str | None) -> MediaClient:
        client = app.test_client()
        return client.login(who) if who else client

    return make


def image_bytes(fmt: str = "PNG", size=(64, 48), color=(200, 30, 30), **save_args) -> bytes:
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save_args)
    return out.getvalue()


def upload(client: MediaClient, *files: tuple[str, bytes], folder_id: int | str = "", htmx=True):
    data = {"folder_id": str(folder_id), "files": [(io.BytesIO(b), name) for name, b in files]}
    if htmx:
        return client.hx_post("/media/upload", data=data, content_type="multipart/form-data")
    return client.form_post("/media/upload", data=data, content_type="multipart/form-data")
