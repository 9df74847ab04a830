"""The job queue (Huey). The web process only enqueues slot ids; workers run the tasks, each
inside an app context of its own.

``CMS_MEDIA_QUEUE``: ``sqlite`` (default: a file in ``instance/``, survives restarts, needs
``flask cms-media worker`` or the demo's worker), ``redis`` (``CMS_MEDIA_REDIS_URL``: several
web servers and workers on several machines), ``memory`` (in-process consumer threads, for
tests and benchmarks), ``immediate`` (run at once in the caller; unit tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from flask import Flask
from huey import MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer

log = logging.getLogger(__name__)


class QuietConsumer(Consumer):
    """A consumer that can run in threads of another program (no signal handlers)."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.kind = app.config["CMS_MEDIA_QUEUE"]
        self.huey = self._build_huey(app)
        self._run_slot = self.huey.task(name="cms_media.run_slot")(self._in_app(_run_slot))
        self.huey.periodic_task(crontab(minute="*"), name="cms_media.recover")(
            self._in_app(_recover)
        )
        self.huey.periodic_task(crontab(minute="*/15"), name="cms_media.expire_drafts")(
            self._in_app(_expire)
        )

    def _build_huey(self, app: Flask) -> Huey:
        name = app.config["CMS_MEDIA_QUEUE_NAME"]
        if self.kind == "sqlite":
            path = app.config["CMS_MEDIA_QUEUE_PATH"] or os.path.join(
                app.instance_path, "cms_media_queue.db"
            )
            return SqliteHuey(name, filename=path)
        if self.kind == "redis":
            # Blocking pops: a worker picks a task up the moment it is queued.
            return RedisHuey(name, url=app.config["CMS_MEDIA_REDIS_URL"], blocking=True)
        if self.kind == "memory":
            return MemoryHuey(name)
        if self.kind == "immediate":
            return MemoryHuey(name, immediate=True)
        raise RuntimeError(
            f"Unknown CMS_MEDIA_QUEUE {self.kind!r}; expected sqlite, redis, memory or immediate."
        )

    def _in_app(self, function: Callable) -> Callable:
        app = self.app

        def task(*args):
            with app.app_context():
                return function(*args)

        task.__name__ = function.__name__
        return task

    def enqueue_slot(self, slot_id: int) -> None:
        self._run_slot(slot_id)

    def recover_on_start(self) -> None:
        """A single-machine worker that starts owns every slot still marked running."""
        with self.app.app_context():
            from cms_media.services.generation import recover_interrupted

            count = recover_interrupted(orphaned_after=0)
        if count:
            log.warning("Recovered %d interrupted image slots", count)

    def consumer(self, workers: int | None = None, *, embedded: bool = True) -> Consumer:
        """A consumer with short polling delays, so a queued slot starts within about 50 ms.

        ``embedded``: runs in threads of another program (tests, benchmarks), so it leaves
        signal handling to that program.
        """
        consumer_class = QuietConsumer if embedded else Consumer
        return consumer_class(
            self.huey,
            workers=workers or int(self.app.config["CMS_MEDIA_QUEUE_WORKERS"]),
            worker_type="thread",
            initial_delay=0.05,
            backoff=1.2,
            max_delay=0.05,
            periodic=True,
        )


def _run_slot(slot_id: int) -> str:
    from cms_media.services.generation import run_slot

    return run_slot(slot_id)


def _recover() -> int:
    from cms_media.services.generation import recover_interrupted

    return recover_interrupted()


def _expire() -> int:
    from cms_media.services.generation import expire_drafts

    return expire_drafts()
