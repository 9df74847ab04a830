"""Views are thin: parse the request, call a service, render the page or the fragment."""

from __future__ import annotations

from flask import current_app, render_template, url_for
from htmx_flask import request
from jinja2_fragments.flask import render_block

from cms_media.access import site_context
from cms_media.blueprints.item_selector.views import in_selector, redirect_to_chosen
from cms_media.blueprints.library import bp
from cms_media.blueprints.library.forms import ConfirmForm, FolderForm, UploadForm
from cms_media.host import ADD, CHANGE, DELETE
from cms_media.models import Folder
from cms_media.responses import hx_redirect, hx_trigger
from cms_media.services import ai_settings
from cms_media.services import documents as document_service
from cms_media.services import folders as folder_service
from cms_media.services.errors import ValidationError

LIBRARY_CHANGED = "cms-media:changed"
VIEWS = ("grid", "list")


def folder_url(folder: Folder | None, **params) -> str:
    if folder is None:
        return url_for("cms_media_library.index", **params)
    return url_for("cms_media_library.folder", folder_id=folder.id, **params)


def wants_fragment() -> bool:
    """An htmx request gets the fragment; a history restore needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


@bp.get("/")
def index():
    return _library(None)


@bp.get("/folders/<int:folder_id>")
def folder(folder_id: int):
    ctx = site_context()
    return _library(folder_service.get_folder(ctx, folder_id))


def _library(folder: Folder | None):
    ctx = site_context()
    args = request.args
    query = args.get("q", "").strip()[:200]
    sort = args.get("sort", document_service.DEFAULT_SORT)
    view = args.get("view") if args.get("view") in VIEWS else "grid"
    try:
        page = document_service.list_documents(
            ctx,
            folder,
            query=query,
            sort=sort,
            after=args.get("after"),
            before=args.get("before"),
            limit=_page_size(),
        )
    except ValidationError:
        return hx_redirect(folder_url(folder, q=query or None, sort=sort, view=view))
    on_first_page = not args.get("after") and not args.get("before")
    context = dict(
        ctx=ctx,
        folder=folder,
        trail=folder_service.breadcrumb(folder),
        subfolders=folder_service.subfolders(ctx, folder) if on_first_page and not query else [],
        page=page,
        query=query,
        sort=sort if sort in document_service.SORTS else document_service.DEFAULT_SORT,
        sorts=document_service.SORTS,
        view=view,
        folder_url=folder_url,
        folder_form=FolderForm(parent_id=folder.id if folder else ""),
        upload_form=UploadForm(folder_id=folder.id if folder else ""),
        ai_available=ai_settings.can_create(ctx),
    )
    template = "cms_media/library/index.html"
    if wants_fragment():
        return render_block(template, "results", **context)
    return render_template(template, **context)


def _page_size() -> int:
    return int(current_app.config["CMS_MEDIA_PAGE_SIZE"])


def _form_error(template: str, status: int = 400, **context):
    """The form again with its errors: as a fragment for htmx, as a small page otherwise."""
    if request.htmx:
        return render_template(template, **context), status
    return render_template("cms_media/form_page.html", form_template=template, **context), status


def _target_folder(ctx, raw_id: str | None) -> Folder | None:
    return folder_service.get_folder(ctx, int(raw_id)) if raw_id and raw_id.isdigit() else None


@bp.post("/folders")
def create_folder():
    ctx = site_context()
    form = FolderForm()
    parent = _target_folder(ctx, form.parent_id.data)
    ctx.require(ADD)
    if form.validate_on_submit():
        try:
            created = folder_service.create_folder(ctx, parent, form.name.data)
        except ValidationError as exc:
            form.name.errors.append(str(exc))
        else:
            if request.htmx:
                fresh = FolderForm(formdata=None, parent_id=parent.id if parent else "")
                body = render_template(
                    "cms_media/library/_folder_form.html",
                    form=fresh,
                    notice=f"Folder “{created.name}” created.",
                )
                return hx_trigger(LIBRARY_CHANGED, status=200, body=body)
            return hx_redirect(folder_url(parent))
    return _form_error("cms_media/library/_folder_form.html", form=form)


@bp.post("/upload")
def upload():
    ctx = site_context()
    form = UploadForm()
    folder = _target_folder(ctx, form.folder_id.data)
    ctx.require(ADD)
    if form.validate_on_submit():
        incoming = [
            document_service.IncomingFile(storage.filename or "", storage.read())
            for storage in form.files.data or []
            if storage and (storage.filename or storage.content_length)
        ]
        try:
            stored = document_service.store_uploads(ctx, folder, incoming)
        except ValidationError as exc:
            form.files.errors.append(str(exc))
        else:
            if in_selector():
                return redirect_to_chosen([document.id for document in stored])
            if request.htmx:
                fresh = UploadForm(formdata=None, folder_id=folder.id if folder else "")
                count = len(stored)
                notice = f"{count} image{'s' if count != 1 else ''} uploaded."
                body = render_template(
                    "cms_media/library/_upload_form.html", form=fresh, notice=notice
                )
                return hx_trigger(LIBRARY_CHANGED, status=200, body=body)
            return hx_redirect(folder_url(folder))
    return _form_error("cms_media/library/_upload_form.html", form=form)


@bp.post("/folders/<int:folder_id>/rename")
def rename_folder(folder_id: int):
    ctx = site_context()
    target = folder_service.get_folder(ctx, folder_id)
    ctx.require(CHANGE)
    form = FolderForm()
    if form.validate_on_submit():
        try:
            folder_service.rename_folder(ctx, target, form.name.data)
        except ValidationError as exc:
            form.name.errors.append(str(exc))
        else:
            return hx_redirect(folder_url(target))
    return _form_error("cms_media/library/_folder_rename_form.html", form=form, folder=target)


@bp.route("/folders/<int:folder_id>/delete", methods=["GET", "POST"])
def delete_folder(folder_id: int):
    ctx = site_context()
    target = folder_service.get_folder(ctx, folder_id)
    ctx.require(DELETE)
    form = ConfirmForm()
    if form.validate_on_submit():
        parent = target.parent
        folder_service.delete_folder(ctx, target)
        return hx_redirect(folder_url(parent))
    folders, documents = folder_service.folder_contents_count(ctx, target)
    template = "cms_media/library/_folder_delete.html"
    context = dict(form=form, folder=target, folders=folders, documents=documents)
    if request.htmx:
        return render_template(template, **context)
    return render_template("cms_media/form_page.html", form_template=template, **context)
