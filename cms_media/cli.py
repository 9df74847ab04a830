"""``flask cms-media …`` commands."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from cms_media.database import upgrade_database
from cms_media.services.ai_settings import rotate_encryption
from cms_media.services.generation import expire_drafts, recover_interrupted

cli = AppGroup("cms-media", help="Documents and Media maintenance.")


@cli.command("upgrade")
def upgrade_command() -> None:
    """Create or migrate the plugin's tables."""
    upgrade_database()
    click.echo("cms_media tables are up to date.")


@cli.command("worker")
@click.option("--workers", type=int, default=None, help="Worker threads (CMS_MEDIA_QUEUE_WORKERS).")
def worker_command(workers: int | None) -> None:
    """Run the job queue's worker in the foreground (Ctrl+C stops it)."""
    queue = current_app.extensions["cms_media"].queue
    if queue.kind == "sqlite":
        queue.recover_on_start()
    consumer = queue.consumer(workers, embedded=False)
    click.echo(f"cms_media worker: {consumer.workers} threads on the {queue.kind} queue")
    consumer.run()


@cli.command("recover")
@click.option(
    "--older-than",
    type=float,
    default=None,
    help="Seconds a slot may have been running (default: a provider call's longest time).",
)
def recover_command(older_than: float | None) -> None:
    """Queue again (or fail) image slots whose worker died mid-job (also runs every minute)."""
    click.echo(f"Recovered {recover_interrupted(orphaned_after=older_than)} interrupted slots.")


@cli.command("cleanup-drafts")
def cleanup_drafts_command() -> None:
    """Remove unsaved AI drafts whose batches have expired (also runs every 15 minutes)."""
    click.echo(f"Expired {expire_drafts()} draft images.")


@cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """Re-encrypt stored API keys with the first of CMS_MEDIA_ENCRYPTION_KEYS."""
    click.echo(f"Re-encrypted {rotate_encryption()} stored API keys.")
