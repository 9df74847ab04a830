"""Views for the AI Creator. The page and the modal share one template; htmx gets blocks."""

from __future__ import annotations

from flask import abort, current_app, render_template, url_for
from htmx_flask import request
from jinja2_fragments.flask import render_block

from cms_media.access import SiteContext, site_context
from cms_media.blueprints.ai_creator import bp
from cms_media.blueprints.ai_creator.forms import GenerateForm, SaveForm
from cms_media.blueprints.item_selector.views import in_selector, redirect_to_chosen
from cms_media.blueprints.library.views import LIBRARY_CHANGED, folder_url
from cms_media.host import ADD
from cms_media.models import Folder, GenerationJob
from cms_media.responses import hx_redirect, hx_trigger, send_stored
from cms_media.services import ai_settings, generation
from cms_media.services import folders as folder_service
from cms_media.services.errors import ValidationError

PAGE = "cms_media/ai_creator/create.html"
SLOT = "cms_media/ai_creator/_slot.html"


def creator_context() -> SiteContext:
    """The user may create AI images here: the feature is on for the site and they may add."""
    ctx = site_context()
    access = ai_settings.resolve_access(ctx.site_id)
    if not access.available:
        abort(404, description=access.reason)
    ctx.require(ADD)
    return ctx


def _folder(ctx: SiteContext, raw: str | None) -> Folder | None:
    return folder_service.get_folder(ctx, int(raw)) if raw and raw.isdigit() else None


def _render(ctx: SiteContext, form: GenerateForm, job: GenerationJob | None, **extra):
    """The creator: the form, the current batch, and the user's earlier batches."""
    context = dict(
        ctx=ctx,
        form=form,
        job=job,
        earlier=generation.recent_jobs(ctx, exclude=job.id if job else None),
        access=ai_settings.resolve_access(ctx.site_id),
        save_form=SaveForm(formdata=None, folder_id=form.folder_id.data or ""),
        is_admin=ctx.can("manage"),
        mode="selector" if in_selector() else "",
        multiple=request.values.get("multiple", ""),
        origin=request.values.get("origin", ""),
        **extra,
    )
    if request.htmx and not request.htmx.history_restore_request:
        return render_block(PAGE, "creator", **context)
    return render_template(PAGE, **context)


@bp.get("/create")
def create():
    ctx = creator_context()
    folder = _folder(ctx, request.args.get("folder_id"))
    latest = next(iter(generation.recent_jobs(ctx, limit=1)), None)
    # Reopened: the last batch, and its description ready to edit for Try Again.
    form = GenerateForm(
        formdata=None,
        obj=latest,
        count=latest.image_count if latest else 4,
        folder_id=folder.id if folder else "",
    )
    return _render(ctx, form, latest)


@bp.post("/jobs")
def start():
    ctx = creator_context()
    form = GenerateForm()
    folder = _folder(ctx, form.folder_id.data)
    error = None
    if form.validate_on_submit():
        try:
            job = generation.start_generation(ctx, folder, form.options())
        except ValidationError as exc:
            error = str(exc)
        else:
            if not request.htmx:
                return hx_redirect(url_for(".job", job_id=job.id))
            return _render(ctx, form, job)
    else:
        error = _first_error(form)
    return _render(ctx, form, None, error=error), 400


def _first_error(form: GenerateForm) -> str:
    if form.csrf_token.errors:
        return "Your session expired or the form is stale. Reload the page and try again."
    if form.count.errors:
        return f"Choose between 1 and {form.max_images} images."
    return "Check the highlighted choices and try again."


@bp.get("/jobs/<int:job_id>")
def job(job_id: int):
    ctx = creator_context()
    current = generation.get_job(ctx, job_id)
    form = GenerateForm(
        formdata=None,
        obj=current,
        count=current.image_count,
        folder_id=current.folder_id or "",
    )
    return _render(ctx, form, current)


@bp.get("/jobs/<int:job_id>/poll")
def poll(job_id: int):
    """Long-poll: answers as soon as a candidate changed, with just the changed slots."""
    ctx = creator_context()
    current = generation.get_job(ctx, job_id)
    known = _parse_versions(request.args.get("v", ""))
    generation.wait_for_change(
        current, known, float(current_app.config["CMS_MEDIA_AI_POLL_SECONDS"])
    )
    changed = [slot for slot in current.slots if known.get(slot.id) != slot.version]
    return render_template(
        "cms_media/ai_creator/_poll.html", job=current, changed=changed, is_admin=ctx.can("manage")
    )


def _parse_versions(raw: str) -> dict[int, int]:
    versions = {}
    for pair in raw.split(",")[:16]:
        slot_id, _, version = pair.partition(":")
        if slot_id.isdigit() and version.isdigit():
            versions[int(slot_id)] = int(version)
    return versions


@bp.post("/slots/<int:slot_id>/retry")
def retry(slot_id: int):
    ctx = creator_context()
    slot = generation.get_slot(ctx, slot_id)
    try:
        generation.retry_slot(ctx, slot)
    except ValidationError as exc:
        return render_template(SLOT, slot=slot, error=str(exc), is_admin=ctx.can("manage")), 400
    return render_template(
        "cms_media/ai_creator/_poll.html", job=slot.job, changed=[slot], is_admin=ctx.can("manage")
    )


@bp.post("/jobs/<int:job_id>/save")
def save(job_id: int):
    ctx = creator_context()
    current = generation.get_job(ctx, job_id)
    form = SaveForm()
    if not form.validate_on_submit():
        abort(400, description="Your session expired or the form is stale. Reload the page.")
    folder = _folder(ctx, form.folder_id.data)
    selections = [
        generation.Selection(
            slot_id=int(raw),
            title=request.form.get(f"title-{raw}", "").strip(),
            description=request.form.get(f"description-{raw}", "").strip(),
        )
        for raw in request.form.getlist("slot")
        if raw.isdigit()
    ]
    try:
        documents = generation.save_selected(ctx, current, selections, folder)
    except ValidationError as exc:
        body = render_template("cms_media/ai_creator/_save_result.html", error=str(exc))
        return body, 400
    if in_selector():
        picked = {selection.slot_id for selection in selections}
        return redirect_to_chosen(
            [slot.document_id for slot in current.slots if slot.id in picked and slot.document_id]
        )
    if not request.htmx:
        return hx_redirect(folder_url(folder))
    body = render_template(
        "cms_media/ai_creator/_save_result.html",
        documents=documents,
        saved_slots=[slot for slot in current.slots if slot.status == "saved"],
        is_admin=ctx.can("manage"),
    )
    return hx_trigger(LIBRARY_CHANGED, status=200, body=body)


def _send_draft(slot_id: int, thumbnail: bool):
    ctx = creator_context()
    slot = generation.get_slot(ctx, slot_id)
    key = slot.thumbnail_key if thumbnail else slot.draft_key
    if slot.status != "ready" or not key:
        abort(404)
    mime_type = "image/webp" if thumbnail else slot.mime_type
    return send_stored(key, mime_type, etag=f"{slot.checksum}-{int(thumbnail)}")


@bp.get("/slots/<int:slot_id>/thumbnail")
def slot_thumbnail(slot_id: int):
    return _send_draft(slot_id, thumbnail=True)


@bp.get("/slots/<int:slot_id>/image")
def slot_image(slot_id: int):
    return _send_draft(slot_id, thumbnail=False)
