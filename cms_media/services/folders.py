"""Folders of a site's library."""

from __future__ import annotations

from flask import abort
from sqlalchemy import func, select

from cms_media.access import SiteContext
from cms_media.database import session
from cms_media.models import Document, Folder
from cms_media.services.documents import delete_documents, remove_files
from cms_media.services.errors import ValidationError

MAX_DEPTH = 20


def get_folder(ctx: SiteContext, folder_id: int | None) -> Folder | None:
    """The folder in the current site, ``None`` for the root; 404 for any other id."""
    if folder_id is None:
        return None
    folder = session().get(Folder, folder_id)
    if folder is None or folder.site_id != ctx.site_id:
        abort(404)
    return folder


def breadcrumb(folder: Folder | None) -> list[Folder]:
    """The folder's ancestors, root first, the folder itself last."""
    trail: list[Folder] = []
    while folder is not None and len(trail) <= MAX_DEPTH:
        trail.append(folder)
        folder = folder.parent
    return list(reversed(trail))


def subfolders(ctx: SiteContext, parent: Folder | None) -> list[Folder]:
    return list(
        session().scalars(
            select(Folder)
            .where(Folder.site_id == ctx.site_id, _parent_is(parent))
            .order_by(func.lower(Folder.name), Folder.id)
        )
    )


def all_folders(ctx: SiteContext) -> list[tuple[Folder, str]]:
    """Every folder of the site with its full path, for "move to" choices."""
    folders = list(session().scalars(select(Folder).where(Folder.site_id == ctx.site_id)))
    by_id = {folder.id: folder for folder in folders}

    def path(folder: Folder) -> str:
        names = []
        seen = set()
        while folder is not None and folder.id not in seen:
            seen.add(folder.id)
            names.append(folder.name)
            folder = by_id.get(folder.parent_id)
        return " / ".join(reversed(names))

    return sorted(((folder, path(folder)) for folder in folders), key=lambda item: item[1].lower())


def _parent_is(parent: Folder | None):
    return Folder.parent_id.is_(None) if parent is None else Folder.parent_id == parent.id


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError("Give the folder a name.")
    if len(name) > 255:
        raise ValidationError("Folder names can be at most 255 characters.")
    if "/" in name or "\\" in name:
        raise ValidationError("Folder names cannot contain / or \\.")
    return name


def _check_unique(
    ctx: SiteContext, parent: Folder | None, name: str, exclude_id: int | None
) -> None:
    query = select(Folder.id).where(
        Folder.site_id == ctx.site_id, _parent_is(parent), func.lower(Folder.name) == name.lower()
    )
    if exclude_id is not None:
        query = query.where(Folder.id != exclude_id)
    if session().scalar(query) is not None:
        raise ValidationError(f"A folder named “{name}” already exists here.")


def create_folder(ctx: SiteContext, parent: Folder | None, name: str) -> Folder:
    """Create a folder under ``parent`` (``None``: the library root)."""
    name = _clean_name(name)
    if len(breadcrumb(parent)) >= MAX_DEPTH:
        raise ValidationError(f"Folders can be nested at most {MAX_DEPTH} deep.")
    _check_unique(ctx, parent, name, None)
    folder = Folder(site_id=ctx.site_id, parent=parent, name=name, created_by_id=ctx.user_id)
    session().add(folder)
    session().commit()
    return folder


def rename_folder(ctx: SiteContext, folder: Folder, name: str) -> Folder:
    name = _clean_name(name)
    _check_unique(ctx, folder.parent, name, folder.id)
    folder.name = name
    session().commit()
    return folder


def folder_contents_count(ctx: SiteContext, folder: Folder) -> tuple[int, int]:
    """How many folders and documents lie anywhere below ``folder`` (for the confirmation)."""
    ids = _descendant_ids(ctx, folder)
    documents = session().scalar(
        select(func.count(Document.id)).where(
            Document.site_id == ctx.site_id, Document.folder_id.in_(ids)
        )
    )
    return len(ids) - 1, documents or 0


def _descendant_ids(ctx: SiteContext, folder: Folder) -> list[int]:
    ids, frontier = [folder.id], [folder.id]
    while frontier:
        frontier = list(
            session().scalars(
                select(Folder.id).where(
                    Folder.site_id == ctx.site_id, Folder.parent_id.in_(frontier)
                )
            )
        )
        ids.extend(frontier)
    return ids


def delete_folder(ctx: SiteContext, folder: Folder) -> int:
    """Delete a folder with everything in it; returns how many documents went with it."""
    ids = _descendant_ids(ctx, folder)
    documents = list(
        session().scalars(
            select(Document).where(Document.site_id == ctx.site_id, Document.folder_id.in_(ids))
        )
    )
    keys = delete_documents(documents, commit=False)
    for folder_id in reversed(ids):  # children before parents
        session().delete(session().get(Folder, folder_id))
    session().commit()
    remove_files(keys)
    return len(documents)
