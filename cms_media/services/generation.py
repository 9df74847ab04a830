"""The AI Creator's jobs: start a batch, make each candidate, keep the chosen ones.

Every state lives in the database (the UI reads nothing else). A job is committed before its
slots are queued, the queue carries slot ids only (never keys or prompts), and each result is
stored as a draft file the moment it arrives, so a closed modal or a restart loses nothing.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from flask import abort, current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from cms_media.access import SiteContext
from cms_media.ai.providers import (
    BACKGROUNDS,
    DOWNSCALED_SIZES,
    NATIVE_SIZES,
    OUTPUT_FORMATS,
    QUALITIES,
    ImageRequest,
    ProviderError,
)
from cms_media.database import session
from cms_media.imaging import EXTENSIONS, ImageInfo, InvalidImage
from cms_media.models import Folder, GenerationJob, GenerationSlot, utcnow
from cms_media.services import ai_settings
from cms_media.services.documents import (
    create_document,
    delete_documents,
    inspect_upload,
    remove_files,
    storage,
)
from cms_media.services.errors import ValidationError
from cms_media.storage import new_key

SIZES = NATIVE_SIZES + tuple(sorted(DOWNSCALED_SIZES, reverse=True))  # 512, then 256

SIZE_LABELS = {
    "1024x1024": "Square 1024 × 1024",
    "1536x1024": "Landscape 1536 × 1024",
    "1024x1536": "Portrait 1024 × 1536",
    "auto": "Automatic",
    "512x512": "Square 512 × 512 (downscaled)",
    "256x256": "Square 256 × 256 (downscaled)",
}
FINISHED = ("ready", "saved", "failed", "expired")


@dataclass(frozen=True)
class GenerationOptions:
    prompt: str
    size: str = "1024x1024"
    count: int = 1
    quality: str = "auto"
    background: str = "auto"
    output_format: str = "png"


def check_options(options: GenerationOptions) -> GenerationOptions:
    """Server-side validation of the Create AI Image form."""
    limit = int(current_app.config["CMS_MEDIA_AI_PROMPT_MAX"])
    prompt = (options.prompt or "").strip()
    if not prompt:
        raise ValidationError("Describe the image you want.")
    if len(prompt) > limit:
        raise ValidationError(f"The description can be at most {limit} characters.")
    if options.size not in SIZES:
        raise ValidationError("Choose one of the offered image sizes.")
    maximum = int(current_app.config["CMS_MEDIA_AI_MAX_IMAGES"])
    if not 1 <= options.count <= maximum:
        raise ValidationError(f"Choose between 1 and {maximum} images.")
    if options.quality not in QUALITIES or options.background not in BACKGROUNDS:
        raise ValidationError("Choose one of the offered quality and background options.")
    if options.output_format not in OUTPUT_FORMATS:
        raise ValidationError("Choose PNG, WebP or JPEG.")
    if options.background == "transparent" and options.output_format == "jpeg":
        raise ValidationError(
            "JPEG has no transparency: choose PNG or WebP for a transparent background."
        )
    return GenerationOptions(
        prompt,
        options.size,
        options.count,
        options.quality,
        options.background,
        options.output_format,
    )


def start_generation(
    ctx: SiteContext, folder: Folder | None, options: GenerationOptions
) -> GenerationJob:
    """Record a job and its slots, commit, then queue one task per slot (ids only)."""
    options = check_options(options)
    access = ai_settings.resolve_access(ctx.site_id)
    if not access.available:
        raise ValidationError(access.reason)
    ttl = timedelta(hours=float(current_app.config["CMS_MEDIA_AI_DRAFT_TTL_HOURS"]))
    job = GenerationJob(
        site_id=ctx.site_id,
        folder_id=folder.id if folder else None,
        user_id=ctx.user_id,
        user_name=ctx.user_name,
        prompt=options.prompt,
        provider=access.provider,
        model=access.model,
        size=options.size,
        quality=options.quality,
        background=options.background,
        output_format=options.output_format,
        image_count=options.count,
        expires_at=utcnow() + ttl,
        slots=[GenerationSlot(position=index) for index in range(options.count)],
    )
    session().add(job)
    session().commit()
    queue = current_app.extensions["cms_media"].queue
    for slot in job.slots:
        queue.enqueue_slot(slot.id)
    session().expire_all()  # a fast worker may have moved on already: show what it wrote
    return job


def get_job(ctx: SiteContext, job_id: int) -> GenerationJob:
    """The user's own job in this site; anything else is 404."""
    job = session().get(GenerationJob, job_id)
    if job is None or job.site_id != ctx.site_id or job.user_id != ctx.user_id:
        abort(404)
    return job


def get_slot(ctx: SiteContext, slot_id: int) -> GenerationSlot:
    slot = session().get(GenerationSlot, slot_id)
    if slot is None:
        abort(404)
    get_job(ctx, slot.job_id)
    return slot


def recent_jobs(
    ctx: SiteContext, exclude: int | None = None, limit: int = 10
) -> list[GenerationJob]:
    """The user's batches in this site that still have drafts (newest first)."""
    query = (
        select(GenerationJob)
        .where(
            GenerationJob.site_id == ctx.site_id,
            GenerationJob.user_id == ctx.user_id,
            GenerationJob.expires_at > utcnow(),
        )
        .order_by(GenerationJob.id.desc())
        .limit(limit)
    )
    if exclude is not None:
        query = query.where(GenerationJob.id != exclude)
    return list(session().scalars(query))


# -- the worker side ----------------------------------------------------------------------


def _claim(slot_id: int) -> bool:
    """Move a pending slot to running; False when another delivery already has it (or done)."""
    result = session().execute(
        update(GenerationSlot)
        .where(GenerationSlot.id == slot_id, GenerationSlot.status == "pending")
        .values(
            status="running",
            started_at=utcnow(),
            attempts=GenerationSlot.attempts + 1,
            version=GenerationSlot.version + 1,
        )
    )
    session().commit()
    return result.rowcount == 1


def run_slot(slot_id: int) -> str:
    """Make one candidate. Idempotent: a re-delivered task for a slot that is running or done
    does nothing, so no slot is ever paid for twice."""
    if not _claim(slot_id):
        return "skipped"
    slot = session().get(GenerationSlot, slot_id)
    job = slot.job
    try:
        provider = ai_settings.build_provider(job.site_id)
        result = provider.generate(
            ImageRequest(
                prompt=job.prompt,
                size=job.size,
                model=job.model if not provider.is_sandbox else "sandbox",
                quality=job.quality,
                background=job.background,
                output_format=job.output_format,
                safety_identifier=ai_settings.safety_identifier(job.user_id),
                variation=slot.position + 10 * (slot.attempts - 1),
            )
        )
    except ProviderError as exc:
        return _fail(slot, exc.code, exc.user_message, exc.admin_message)
    draft_key = new_key(f"drafts/{job.site_id}", EXTENSIONS.get(result.image.mime_type, "img"))
    try:
        info = _store_while_checking(draft_key, result.image.data, result.image.mime_type)
    except (ValidationError, InvalidImage) as exc:
        return _fail(
            slot, "bad_response", "The provider returned an unusable image. Try again.", str(exc)
        )
    thumbnail_key = new_key(f"drafts/{job.site_id}", "webp")
    storage().save(thumbnail_key, info.thumbnail, content_type="image/webp")
    slot.status = "ready"
    slot.draft_key, slot.thumbnail_key = draft_key, thumbnail_key
    slot.mime_type, slot.width, slot.height = info.mime_type, info.width, info.height
    slot.byte_size, slot.checksum = len(result.image.data), info.checksum
    slot.revised_prompt = result.image.revised_prompt
    slot.finished_at = utcnow()
    slot.error_code = slot.error_message = slot.admin_message = None
    slot.version += 1
    if result.usage:
        slot.input_tokens = result.usage.input_tokens
        slot.output_tokens = result.usage.output_tokens
        slot.total_tokens = result.usage.total_tokens
        # One UPDATE adds to the totals, so parallel slots never overwrite each other's usage.
        session().execute(
            update(GenerationJob)
            .where(GenerationJob.id == job.id)
            .values(
                input_tokens=GenerationJob.input_tokens + result.usage.input_tokens,
                output_tokens=GenerationJob.output_tokens + result.usage.output_tokens,
                total_tokens=GenerationJob.total_tokens + result.usage.total_tokens,
            )
        )
    try:
        session().commit()
    except BaseException:
        session().rollback()
        remove_files([draft_key, thumbnail_key])
        raise
    return "ready"


def _store_while_checking(key: str, data: bytes, mime_type: str) -> ImageInfo:
    """Write the draft while it is decoded and checked (the write is then off the path from
    the provider's answer to a visible candidate); a draft that fails the check is removed."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        writing = pool.submit(storage().save, key, data, content_type=mime_type)
        try:
            info = inspect_upload(data)
        except BaseException:
            if writing.exception() is None:
                remove_files([key])
            raise
        writing.result()
    return info


def _fail(slot: GenerationSlot, code: str, user_message: str, admin_message: str) -> str:
    slot.status = "failed"
    slot.error_code, slot.error_message, slot.admin_message = code, user_message, admin_message
    slot.finished_at = utcnow()
    slot.version += 1
    session().commit()
    current_app.logger.info("AI slot %s failed: %s", slot.id, code)
    return "failed"


def retry_slot(ctx: SiteContext, slot: GenerationSlot) -> GenerationSlot:
    """Queue a failed candidate again (the others of its batch are kept)."""
    if slot.status != "failed":
        raise ValidationError("Only a failed image can be retried.")
    if not ai_settings.resolve_access(ctx.site_id).available:
        raise ValidationError("AI image creation is not available in this site any more.")
    slot.status = "pending"
    slot.error_code = slot.error_message = slot.admin_message = None
    slot.version += 1
    session().commit()
    current_app.extensions["cms_media"].queue.enqueue_slot(slot.id)
    session().expire_all()
    return slot


def recover_interrupted(orphaned_after: float | None = None) -> int:
    """Slots left ``running`` by a worker that died: queue them once more, or fail them.

    Runs every minute: "running" for longer than a provider call can take (with its retries)
    means nobody works on it any more. A single-machine worker that starts passes 0: whatever
    is "running" then was interrupted by the restart.
    """
    config = current_app.config
    if orphaned_after is None:
        orphaned_after = (
            float(config["CMS_MEDIA_AI_TIMEOUT"]) * (int(config["CMS_MEDIA_AI_MAX_RETRIES"]) + 1)
            + 60
        )
    cutoff = utcnow() - timedelta(seconds=orphaned_after)
    stuck = list(
        session().scalars(
            select(GenerationSlot).where(
                GenerationSlot.status == "running", GenerationSlot.started_at <= cutoff
            )
        )
    )
    requeue = []
    for slot in stuck:
        slot.version += 1
        if slot.attempts < int(config["CMS_MEDIA_AI_MAX_ATTEMPTS"]):
            slot.status = "pending"
            requeue.append(slot.id)
        else:
            slot.status = "failed"
            slot.error_code = "interrupted"
            slot.error_message = "Generation was interrupted (the server restarted). Try again."
            slot.admin_message = slot.error_message
    session().commit()
    for slot_id in requeue:
        current_app.extensions["cms_media"].queue.enqueue_slot(slot_id)
    return len(stuck)


# -- keeping what the editor chose ---------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    slot_id: int
    title: str
    description: str


def save_selected(
    ctx: SiteContext, job: GenerationJob, selections: Iterable[Selection], folder: Folder | None
) -> list:
    """Turn the chosen candidates into documents in ``folder``, with the generation kept as
    metadata. A slot already saved is not saved again (the database enforces it)."""
    selections = list(selections)
    if not selections:
        raise ValidationError("Tick at least one image to add.")
    slots = {slot.id: slot for slot in job.slots}
    documents = []
    for selection in selections:
        slot = slots.get(selection.slot_id)
        if slot is None:
            abort(404)
        if slot.status == "saved":
            continue
        if slot.status != "ready":
            raise ValidationError(f"Image {slot.position + 1} is not ready to be added.")
        data = storage().read(slot.draft_key)
        info = inspect_upload(data)
        extension = info.extension
        document = create_document(
            ctx,
            folder,
            data=data,
            info=info,
            title=(selection.title or job.prompt)[:255],
            description=selection.description if selection.description is not None else job.prompt,
            original_filename=f"ai-image-{job.id}-{slot.position + 1}.{extension}",
            source="ai",
            generation=generation_metadata(job, slot, ctx),
        )
        claimed = session().execute(
            update(GenerationSlot)
            .where(GenerationSlot.id == slot.id, GenerationSlot.document_id.is_(None))
            .values(status="saved", document_id=document.id, version=GenerationSlot.version + 1)
        )
        if claimed.rowcount != 1:  # saved meanwhile by a second click: undo this copy
            session().rollback()
            delete_documents([document])
            continue
        try:
            session().commit()
        except IntegrityError:
            session().rollback()
            continue
        documents.append(document)
        remove_files([slot.draft_key, slot.thumbnail_key])
    return documents


def generation_metadata(job: GenerationJob, slot: GenerationSlot, ctx: SiteContext) -> dict:
    """What a saved AI image keeps about how it was made (see ``METADATA_LABELS``)."""
    metadata = {
        "generated_by_ai": True,
        "prompt": job.prompt,
        "provider": job.provider,
        "model": job.model,
        "size": job.size,
        "quality": job.quality,
        "background": job.background,
        "output_format": job.output_format,
        "job_id": job.id,
        "candidate": slot.position + 1,
        "created_by": ctx.user_name,
        "usage_total_tokens": slot.total_tokens,
        "usage_input_tokens": slot.input_tokens,
        "usage_output_tokens": slot.output_tokens,
    }
    if job.provider == "sandbox":
        metadata["sandbox"] = "Sandbox — not AI"
    if slot.revised_prompt:
        metadata["revised_prompt"] = slot.revised_prompt
    return metadata


# How the document page names each metadata key, in this order; others are not shown.
METADATA_LABELS = {
    "sandbox": "Note",
    "prompt": "Prompt",
    "revised_prompt": "Prompt as the provider revised it",
    "provider": "Provider",
    "model": "Model",
    "size": "Requested size",
    "quality": "Quality",
    "background": "Background",
    "output_format": "File format",
    "usage_total_tokens": "Tokens used",
    "job_id": "Generation job",
    "candidate": "Candidate",
}


def describe_generation(metadata: dict | None) -> list[tuple[str, str]]:
    """The metadata as (label, value) rows for people; empty usage is left out."""
    metadata = metadata or {}
    rows = []
    for key, label in METADATA_LABELS.items():
        value = metadata.get(key)
        if value in (None, "", 0):
            continue
        if key == "usage_total_tokens":
            value = (
                f"{value} ({metadata.get('usage_input_tokens', 0)} in, "
                f"{metadata.get('usage_output_tokens', 0)} out)"
            )
        rows.append((label, str(value)))
    return rows


def expire_drafts() -> int:
    """Remove the draft files of expired batches (the job rows stay, for usage records)."""
    slots = list(
        session().scalars(
            select(GenerationSlot)
            .join(GenerationJob)
            .where(
                GenerationJob.expires_at <= utcnow(),
                GenerationSlot.status.in_(("ready", "failed", "pending")),
            )
        )
    )
    keys = []
    for slot in slots:
        keys += [slot.draft_key, slot.thumbnail_key]
        slot.status = "expired"
        slot.draft_key = slot.thumbnail_key = None
        slot.version += 1
    session().commit()
    remove_files(keys)
    return len(slots)


POLL_INTERVAL = 0.1


class _SlotWatch:
    """The long-polls of one app in one process share their reads: one query every
    ``POLL_INTERVAL`` covers every job a browser waits on (not one query per browser)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.watched: collections.Counter[int] = collections.Counter()  # job id -> polls
        self.seen: dict[int, dict[int, int]] = {}  # job id -> {slot id: version}
        self.seen_at = 0.0

    def versions(self, job_id: int) -> dict[int, int]:
        """``{slot id: version}`` of a watched job, at most ``POLL_INTERVAL`` old."""
        with self.lock:
            if time.monotonic() - self.seen_at >= POLL_INTERVAL or job_id not in self.seen:
                rows = session().execute(
                    select(GenerationSlot.job_id, GenerationSlot.id, GenerationSlot.version).where(
                        GenerationSlot.job_id.in_(list(self.watched))
                    )
                )
                fresh: dict[int, dict[int, int]] = {}
                for watched_job, slot_id, version in rows:
                    fresh.setdefault(watched_job, {})[slot_id] = version
                session().rollback()  # end the read: the next sees what workers committed
                self.seen = fresh
                self.seen_at = time.monotonic()
            return self.seen.get(job_id, {})


_watch_lock = threading.Lock()


def _slot_watch() -> _SlotWatch:
    """This app's watch (an app's own: a process may run several apps, as the tests do)."""
    with _watch_lock:
        return current_app.extensions.setdefault("cms_media_slot_watch", _SlotWatch())


def wait_for_change(job: GenerationJob, versions: dict[int, int], timeout: float) -> None:
    """Long-poll: return as soon as a slot's version differs from ``versions`` (or timeout).

    The browser sees a finished candidate within ``POLL_INTERVAL``. While it waits the request
    holds no database connection, and the process reads once per interval for all waiting
    browsers together.
    """
    deadline = time.monotonic() + timeout
    job_id = job.id  # read before the rollback, which expires ``job`` (a reload per look)
    # Give this request's connection back to the pool first: the one read below may need one,
    # and it must never wait for a connection that a request queued on the lock holds.
    session().rollback()
    watch = _slot_watch()
    with watch.lock:
        watch.watched[job_id] += 1
    try:
        while True:
            if watch.versions(job_id) != versions or time.monotonic() >= deadline:
                return
            time.sleep(POLL_INTERVAL)
    finally:
        with watch.lock:
            watch.watched[job_id] -= 1
            if not watch.watched[job_id]:
                del watch.watched[job_id]
