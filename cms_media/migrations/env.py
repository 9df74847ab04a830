"""Alembic environment for cms_media's own tables (own version table, own metadata)."""

from alembic import context

from cms_media.database import VERSION_TABLE, include_object
from cms_media.models import Base

engine = context.config.attributes["engine"]


with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object,
    )
    context.run_migrations()
