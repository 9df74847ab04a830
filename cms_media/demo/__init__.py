"""A small CMS host that shows cms_media at work: sites, users, roles and a login.

``create_app`` layers its settings: the defaults below, then ``instance/config.py``, then the
environment (``FLASK_*`` and ``CMS_MEDIA_*``), then ``test_config``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask
from flask_login import LoginManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from cms_media import CmsMedia
from cms_media.config import load_environment
from cms_media.demo.host import DemoHost
from cms_media.demo.models import User, db

media = CmsMedia()
login_manager = LoginManager()
login_manager.login_view = "demo.login"
login_manager.login_message = "Sign in to continue."


@event.listens_for(Engine, "connect")
def _sqlite_for_two_processes(dbapi_connection, _record) -> None:
    """The web server and the worker share one SQLite file: WAL lets readers and one writer
    work at once, and a busy timeout makes a writer wait instead of failing. In WAL mode
    ``synchronous=NORMAL`` cannot corrupt the database; it saves an fsync per commit."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def _secret_key(instance_path: str) -> str:
    """A per-installation key kept in ``instance/`` so it is never committed."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.environ.get("CMS_MEDIA_INSTANCE_PATH") or None,
        instance_relative_config=True,
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{os.path.join(app.instance_path, 'cms_media_demo.db')}",
        CMS_MEDIA_BASE_TEMPLATE="demo/layout.html",
        # The demo shows the AI Creator on a fresh machine: released, and with the offline
        # sandbox (slowed down a little so the progress can be seen) until a key is set.
        CMS_MEDIA_AI_FEATURE=True,
        CMS_MEDIA_AI_SANDBOX=True,
        CMS_MEDIA_AI_SANDBOX_DELAY=1.5,
    )
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env()
    load_environment(app)
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)

    db.init_app(app)
    login_manager.init_app(app)
    media.init_app(app, db=db, host=DemoHost())

    from cms_media.demo.articles import bp as articles_bp
    from cms_media.demo.cli import demo_cli
    from cms_media.demo.views import bp

    app.register_blueprint(bp)
    app.register_blueprint(articles_bp)
    app.cli.add_command(demo_cli)
    return app
