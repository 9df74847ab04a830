from __future__ import annotations

from flask import current_app, render_template, url_for
from htmx_flask import request
from jinja2_fragments.flask import render_block
from wtforms import SelectChoice

from cms_media.access import site_context
from cms_media.blueprints.documents import bp
from cms_media.blueprints.documents.forms import ROOT_CHOICE, DocumentForm, MoveForm
from cms_media.blueprints.library.forms import ConfirmForm
from cms_media.blueprints.library.views import folder_url
from cms_media.host import CHANGE, DELETE
from cms_media.models import Document
from cms_media.responses import hx_redirect, send_stored
from cms_media.services import documents as document_service
from cms_media.services import folders as folder_service
from cms_media.services.errors import ValidationError

# Images are shown inline; anything else is only ever offered as a download.
INLINE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
DETAIL = "cms_media/documents/detail.html"


def _move_form(ctx, document: Document, formdata=None) -> MoveForm:
    form = (
        MoveForm(formdata=formdata)
        if formdata is not None
        else MoveForm(folder_id=str(document.folder_id or ROOT_CHOICE))
    )
    form.folder_id.choices = [SelectChoice(ROOT_CHOICE, "Documents and Media (top level)")] + [
        SelectChoice(str(folder.id), path) for folder, path in folder_service.all_folders(ctx)
    ]
    return form


def _detail_context(ctx, document: Document, **overrides) -> dict:
    context = dict(
        ctx=ctx,
        document=document,
        trail=folder_service.breadcrumb(document.folder),
        folder_url=folder_url,
        edit_form=DocumentForm(obj=document, formdata=None),
        move_form=_move_form(ctx, document),
        delete_form=ConfirmForm(),
    )
    context.update(overrides)
    return context


@bp.get("/<int:document_id>")
def detail(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    return render_template(DETAIL, **_detail_context(ctx, document))


@bp.post("/<int:document_id>/edit")
def edit(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    ctx.require(CHANGE)
    form = DocumentForm()
    status = 200
    notice = None
    if form.validate_on_submit():
        try:
            document_service.update_document(
                ctx, document, title=form.data["title"], description=form.data["description"] or ""
            )
        except ValidationError as exc:
            form.title.errors.append(str(exc))
            status = 400
        else:
            if not request.htmx:
                return hx_redirect(url_for("cms_media_documents.detail", document_id=document.id))
            notice = "Saved."
            form = DocumentForm(obj=document, formdata=None)
    else:
        status = 400
    context = _detail_context(ctx, document, edit_form=form, notice=notice)
    if request.htmx:
        return render_block(DETAIL, "details", **context), status
    return render_template(DETAIL, **context), status


@bp.post("/<int:document_id>/move")
def move(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    ctx.require(CHANGE)
    form = _move_form(ctx, document, formdata=request.form)
    if not form.validate_on_submit():
        message = "Choose a folder of this site to move the document to."
        form.folder_id.errors = [message]
        context = _detail_context(ctx, document, move_form=form)
        if request.htmx:
            return render_block(DETAIL, "move", **context), 400
        return render_template(DETAIL, **context), 400
    raw = form.folder_id.data
    target = folder_service.get_folder(ctx, int(raw)) if raw else None
    document_service.move_document(ctx, document, target)
    return hx_redirect(folder_url(target))


@bp.post("/<int:document_id>/delete")
def delete(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    ctx.require(DELETE)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return render_template(DETAIL, **_detail_context(ctx, document)), 400
    folder = document.folder
    document_service.delete_documents([document])
    return hx_redirect(folder_url(folder))


@bp.get("/<int:document_id>/file")
def file(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    if document.mime_type in INLINE_TYPES:
        return send_stored(document.storage_key, document.mime_type, etag=document.checksum)
    return send_stored(
        document.storage_key,
        "application/octet-stream",
        etag=document.checksum,
        download_name=document.original_filename,
    )


@bp.get("/<int:document_id>/download")
def download(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    return send_stored(
        document.storage_key,
        document.mime_type,
        etag=document.checksum,
        download_name=document.original_filename,
    )


@bp.get("/<int:document_id>/thumbnail")
def thumbnail(document_id: int):
    ctx = site_context()
    document = document_service.get_document(ctx, document_id)
    size = current_app.config["CMS_MEDIA_THUMBNAIL_SIZE"]
    return send_stored(
        document.thumbnail_key or document.storage_key,
        "image/webp" if document.thumbnail_key else document.mime_type,
        etag=f"t{size}-{document.checksum[:32]}",
    )
