"""choose → results → chosen(ids) → alt text and size → one small payload for the editor.

The selector runs in an iframe (or a tab of its own); it hands the result to the page that
opened it by ``postMessage`` to an allowed origin (see ``item_selector.js``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, current_app, render_template, url_for
from htmx_flask import request
from jinja2_fragments.flask import render_block

from cms_media.access import SiteContext, site_context
from cms_media.blueprints.item_selector import bp
from cms_media.blueprints.library.forms import ConfirmForm, UploadForm
from cms_media.host import ADD
from cms_media.responses import hx_redirect
from cms_media.services import ai_settings
from cms_media.services import documents as document_service
from cms_media.services import folders as folder_service
from cms_media.services.errors import ValidationError

PAGE = "cms_media/item_selector/index.html"
CHOSEN = "cms_media/item_selector/chosen.html"
DISPLAY_SIZES = {"original": None, "large": 1024, "medium": 640, "small": 320}
MAX_ALT = 300


def _selector_state() -> dict:
    """What every selector URL carries along: one or several, and who to answer."""
    return {
        "multiple": request.values.get("multiple") == "1",
        "origin": _allowed_origin(request.values.get("origin", "")),
    }


def _allowed_origin(origin: str) -> str:
    """The page that may receive the result: this app's own origin, or one configured in
    ``CMS_MEDIA_SELECTOR_ORIGINS``. Anything else falls back to our own origin."""
    own = f"{request.scheme}://{request.host}"
    parts = urlsplit(origin)
    candidate = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    allowed = set(current_app.config["CMS_MEDIA_SELECTOR_ORIGINS"]) | {own}
    return candidate if candidate in allowed else own


def _state_params(state: dict) -> dict:
    return {"multiple": "1" if state["multiple"] else None, "origin": state["origin"]}


@bp.get("/")
def index():
    ctx = site_context()
    state = _selector_state()
    context = _browse_context(ctx, state)
    context.update(
        ai_available=ai_settings.can_create(ctx),
        can_add=ctx.can(ADD),
    )
    return render_template(PAGE, **context)


def _browse_context(ctx: SiteContext, state: dict) -> dict:
    args = request.args
    raw_folder = args.get("folder_id", "")
    folder = folder_service.get_folder(ctx, int(raw_folder)) if raw_folder.isdigit() else None
    query = args.get("q", "").strip()[:200]
    try:
        page = document_service.list_documents(
            ctx,
            folder,
            query=query,
            sort="newest",
            after=args.get("after"),
            before=args.get("before"),
            limit=int(current_app.config["CMS_MEDIA_SELECTOR_PAGE_SIZE"]),
        )
    except ValidationError:
        page = document_service.list_documents(ctx, folder, query=query, sort="newest")
    first_page = not args.get("after") and not args.get("before")
    return dict(
        ctx=ctx,
        state=state,
        params=_state_params(state),
        folder=folder,
        trail=folder_service.breadcrumb(folder),
        subfolders=folder_service.subfolders(ctx, folder) if first_page and not query else [],
        page=page,
        query=query,
    )


@bp.get("/browse")
def browse():
    ctx = site_context()
    context = _browse_context(ctx, _selector_state())
    if request.htmx:
        return render_block(PAGE, "browse", **context)
    return render_template(PAGE, **context, ai_available=ai_settings.can_create(ctx))


@bp.get("/upload")
def upload():
    ctx = site_context()
    ctx.require(ADD)
    state = _selector_state()
    return render_template(
        "cms_media/item_selector/_upload.html",
        form=UploadForm(formdata=None),
        folders=folder_service.all_folders(ctx),
        state=state,
    )


def chosen_url(document_ids: list[int], state: dict) -> str:
    """Where the selector goes once documents are picked, uploaded or created."""
    return url_for(
        "cms_media_selector.chosen",
        ids=",".join(str(i) for i in document_ids),
        **_state_params(state),
    )


def _chosen_documents(ctx: SiteContext, raw_ids: str, multiple: bool) -> list:
    ids = [int(part) for part in raw_ids.split(",") if part.strip().isdigit()][:50]
    if not ids:
        raise ValidationError("Pick an image first.")
    if not multiple:
        ids = ids[:1]
    # 404 for any id that is not a document of this site, whatever else was picked.
    return [document_service.get_document(ctx, document_id) for document_id in ids]


@bp.route("/chosen", methods=["GET", "POST"])
def chosen():
    """The last step: alt text (or "decorative") and display size for each picked image."""
    ctx = site_context()
    state = _selector_state()
    documents = _chosen_documents(ctx, request.values.get("ids", ""), state["multiple"])
    context = dict(documents=documents, state=state, sizes=DISPLAY_SIZES, form=ConfirmForm())
    if request.method == "GET":
        return render_template(CHOSEN, **context)
    items, errors = [], {}
    for document in documents:
        decorative = request.form.get(f"decorative-{document.id}") == "on"
        alt = " ".join(request.form.get(f"alt-{document.id}", "").split())
        size = request.form.get(f"size-{document.id}", "original")
        if size not in DISPLAY_SIZES:
            errors[document.id] = "Choose one of the offered display sizes."
        elif not decorative and not alt:
            errors[document.id] = (
                "Describe the image for people who cannot see it, or mark it decorative."
            )
        elif len(alt) > MAX_ALT:
            errors[document.id] = f"Alt text can be at most {MAX_ALT} characters."
        items.append(selection_item(document, "" if decorative else alt, size, decorative))
    if errors:
        return render_template(CHOSEN, **context, errors=errors), 400
    return render_template(CHOSEN, **context, items=items)


def redirect_to_chosen(document_ids: list[int]) -> Response:
    """After an upload or Add Selected inside the selector: straight to the chosen step."""
    return hx_redirect(chosen_url(document_ids, _selector_state()))


def in_selector() -> bool:
    return request.values.get("mode") == "selector"


def selection_item(document, alt: str, size: str, decorative: bool) -> dict:
    """The payload an editor receives: ``{id, url, alt, width, height, title, decorative}``.

    ``url`` is the stable, authorised URL of the document (by id, so renaming the document
    never breaks an article); width and height are the chosen display size.
    """
    width, height = document.width or 0, document.height or 0
    limit = DISPLAY_SIZES.get(size)
    if limit and width > limit:
        height = round(height * limit / width)
        width = limit
    return {
        "id": document.id,
        "url": url_for("cms_media_documents.file", document_id=document.id),
        "alt": alt,
        "width": width,
        "height": height,
        "title": document.title,
        "decorative": decorative,
    }
