"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from cms_media.database import VERSION_TABLE, alembic_config, include_object
from cms_media.models import Base
from tests.conftest import TEST_DATABASE_URL, on_postgresql, reset_database


def test_migrations_match_the_models(tmp_path):
    reset_database()
    url = TEST_DATABASE_URL if on_postgresql() else f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_object}
        )
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    assert {"cms_media_folder", "cms_media_document", VERSION_TABLE} <= tables
    # Down and up again: every migration is reversible.
    command.downgrade(alembic_config(engine), "base")
    command.upgrade(alembic_config(engine), "head")
    engine.dispose()
