"""Documents of a site's library: storing uploads, listing pages, changing and deleting."""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import abort, current_app
from sqlalchemy import Select, select, tuple_

from cms_media.access import SiteContext
from cms_media.database import session
from cms_media.imaging import ImageInfo, InvalidImage, inspect_image
from cms_media.models import Document, Folder, utcnow
from cms_media.services.errors import ValidationError
from cms_media.storage import Storage, new_key

MAX_TITLE = 255
MAX_DESCRIPTION = 5000


def storage() -> Storage:
    return current_app.extensions["cms_media"].storage


def get_document(ctx: SiteContext, document_id: int) -> Document:
    """The document in the current site; 404 for a missing id or another site's."""
    document = session().get(Document, document_id)
    if document is None or document.site_id != ctx.site_id:
        abort(404)
    return document


# -- storing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingFile:
    filename: str
    data: bytes


def clean_filename(filename: str | None) -> str:
    """The last path component of what the browser sent, for display and downloads only."""
    name = posixpath.basename((filename or "").replace("\\", "/")).strip()
    return (name or "untitled")[:MAX_TITLE]


def title_from_filename(filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename.strip(".") else filename
    return " ".join(stem.replace("_", " ").split())[:MAX_TITLE] or "Untitled"


def inspect_upload(data: bytes) -> ImageInfo:
    config = current_app.config
    return inspect_image(
        data,
        max_pixels=config["CMS_MEDIA_MAX_IMAGE_PIXELS"],
        thumbnail_size=config["CMS_MEDIA_THUMBNAIL_SIZE"],
    )


def store_uploads(
    ctx: SiteContext, folder: Folder | None, files: Sequence[IncomingFile]
) -> list[Document]:
    """Check every file, then store them all in one transaction: all or nothing."""
    if not files:
        raise ValidationError("Choose at least one image to upload.")
    checked = []
    for incoming in files:
        name = clean_filename(incoming.filename)
        try:
            checked.append((name, incoming.data, inspect_upload(incoming.data)))
        except InvalidImage as exc:
            raise ValidationError(f"{name}: {exc}") from None
    return _store(
        ctx,
        folder,
        [
            dict(data=data, info=info, title=title_from_filename(name), original_filename=name)
            for name, data, info in checked
        ],
    )


def create_document(
    ctx: SiteContext,
    folder: Folder | None,
    *,
    data: bytes,
    info: ImageInfo,
    title: str,
    original_filename: str,
    description: str = "",
    source: str = "upload",
    generation: dict | None = None,
) -> Document:
    """Store one checked image as a document (files first, then the row, one commit)."""
    (document,) = _store(
        ctx,
        folder,
        [
            dict(
                data=data,
                info=info,
                title=title,
                original_filename=original_filename,
                description=description,
                source=source,
                generation=generation,
            )
        ],
    )
    return document


def _store(ctx: SiteContext, folder: Folder | None, items: Iterable[dict]) -> list[Document]:
    written: list[str] = []
    documents = []
    try:
        for item in items:
            info: ImageInfo = item.pop("info")
            data: bytes = item.pop("data")
            title = _clean_title(item.pop("title"))
            storage_key = new_key(f"documents/{ctx.site_id}", info.extension)
            thumbnail_key = new_key(f"thumbnails/{ctx.site_id}", "webp")
            storage().save(storage_key, data, content_type=info.mime_type)
            written.append(storage_key)
            storage().save(thumbnail_key, info.thumbnail, content_type="image/webp")
            written.append(thumbnail_key)
            document = Document(
                site_id=ctx.site_id,
                folder_id=folder.id if folder else None,
                title=title,
                title_key=title.lower(),
                description=_clean_description(item.pop("description", "")),
                mime_type=info.mime_type,
                byte_size=len(data),
                width=info.width,
                height=info.height,
                checksum=info.checksum,
                storage_key=storage_key,
                thumbnail_key=thumbnail_key,
                created_by_id=ctx.user_id,
                created_by_name=ctx.user_name,
                updated_by_id=ctx.user_id,
                updated_by_name=ctx.user_name,
                **item,
            )
            session().add(document)
            documents.append(document)
        session().commit()
    except BaseException:
        session().rollback()
        remove_files(written)
        raise
    return documents


def remove_files(keys: Iterable[str | None]) -> None:
    for key in keys:
        if key:
            try:
                storage().delete(key)
            except OSError:
                current_app.logger.warning("Could not remove stored file %s", key)


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ValidationError("Give the document a title.")
    if len(title) > MAX_TITLE:
        raise ValidationError(f"Titles can be at most {MAX_TITLE} characters.")
    return title


def _clean_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise ValidationError(f"Descriptions can be at most {MAX_DESCRIPTION} characters.")
    return description


# -- changing -----------------------------------------------------------------------------


def update_document(
    ctx: SiteContext, document: Document, *, title: str, description: str
) -> Document:
    document.title = _clean_title(title)
    document.title_key = document.title.lower()
    document.description = _clean_description(description)
    _touch(ctx, document)
    session().commit()
    return document


def move_document(ctx: SiteContext, document: Document, folder: Folder | None) -> Document:
    if folder is not None and folder.site_id != ctx.site_id:
        abort(404)
    document.folder_id = folder.id if folder else None
    _touch(ctx, document)
    session().commit()
    return document


def _touch(ctx: SiteContext, document: Document) -> None:
    document.updated_at = utcnow()
    document.updated_by_id = ctx.user_id
    document.updated_by_name = ctx.user_name


def delete_documents(documents: Iterable[Document], *, commit: bool = True) -> list[str]:
    """Delete rows; files go once the rows are gone (after the commit when ``commit``).

    Returns the storage keys to remove when the caller commits itself.
    """
    keys = []
    for document in documents:
        keys += [document.storage_key, document.thumbnail_key]
        session().delete(document)
    if commit:
        session().commit()
        remove_files(keys)
    return keys


# -- listing ------------------------------------------------------------------------------

SORTS = {
    "title": ("Title A–Z", Document.title_key, False),
    "newest": ("Newest first", Document.created_at, True),
    "oldest": ("Oldest first", Document.created_at, False),
    "largest": ("Largest first", Document.byte_size, True),
}
DEFAULT_SORT = "title"


@dataclass(frozen=True)
class Page:
    documents: list[Document]
    next_cursor: str | None
    previous_cursor: str | None


def _encode_cursor(document: Document, sort: str) -> str:
    value = getattr(document, SORTS[sort][1].key)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, document.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, document_id = json.loads(raw)
        if sort in ("newest", "oldest"):
            value = datetime.fromisoformat(value)
        if not isinstance(document_id, int):
            raise ValueError
    except (ValueError, TypeError):
        raise ValidationError(
            "That page link is no longer valid; start from the first page."
        ) from None
    return value, document_id


def list_documents(
    ctx: SiteContext,
    folder: Folder | None,
    *,
    query: str = "",
    sort: str = DEFAULT_SORT,
    after: str | None = None,
    before: str | None = None,
    limit: int = 40,
) -> Page:
    """One page of documents, by keyset: every page costs an index range scan, never a count.

    With ``query`` the whole site is searched by title; otherwise one folder is listed.
    """
    if sort not in SORTS:
        sort = DEFAULT_SORT
    _, column, descending = SORTS[sort]
    statement: Select = select(Document).where(Document.site_id == ctx.site_id)
    query = " ".join(query.split()).lower()
    if query:
        pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Document.title_key.like(f"%{pattern}%", escape="\\"))
    elif folder is None:
        statement = statement.where(Document.folder_id.is_(None))
    else:
        statement = statement.where(Document.folder_id == folder.id)

    backwards = before is not None and after is None
    cursor = before if backwards else after
    # Walking backwards is walking forwards in the reverse order.
    reverse = descending != backwards
    key = tuple_(column, Document.id)
    if cursor:
        value = tuple_(*_decode_cursor(cursor, sort))
        statement = statement.where(key < value if reverse else key > value)
    order = (column.desc(), Document.id.desc()) if reverse else (column.asc(), Document.id.asc())
    rows = list(session().scalars(statement.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else True
    has_previous = bool(cursor) if not backwards else more
    return Page(
        documents=rows,
        next_cursor=_encode_cursor(rows[-1], sort) if rows and has_next else None,
        previous_cursor=_encode_cursor(rows[0], sort) if rows and has_previous else None,
    )
