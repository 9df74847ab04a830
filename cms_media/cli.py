"""``flask cms-media …`` commands."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from cms_media.database import upgrade_database

cli = AppGroup("cms-media", help="Documents and Media maintenance.")


@cli.command("upgrade")
def upgrade_command() -> None:
    """Create or migrate the plugin's tables."""
    upgrade_database()
    click.echo("cms_media tables are up to date.")
