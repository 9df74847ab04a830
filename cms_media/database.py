"""Access to the host's SQLAlchemy session, and the plugin's own migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "cms_media_alembic_version"


def session() -> Session:
    """The host's Flask-SQLAlchemy session, shared so one commit covers host and plugin rows."""
    return current_app.extensions["cms_media"].db.session


def engine() -> Engine:
    return current_app.extensions["cms_media"].db.engine


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate and comparisons look at our tables only, never at the host's."""
    table_name = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return table_name.startswith("cms_media_") and table_name != VERSION_TABLE


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_database(target: str = "head") -> None:
    """Bring the plugin's tables up to date (idempotent)."""
    command.upgrade(alembic_config(engine()), target)
