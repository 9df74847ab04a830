"""Folders, uploads, the grid and the document page, through the routes a browser uses."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from cms_media.database import session
from cms_media.models import Document, Folder
from tests.conftest import image_bytes, upload


def documents(app, **where) -> list[Document]:
    with app.app_context():
        query = select(Document).filter_by(**where).order_by(Document.id)
        return list(session().scalars(query))


def folder_named(app, name: str) -> Folder:
    with app.app_context():
        return session().scalar(select(Folder).where(Folder.name == name))


def stored_files(app) -> list[str]:
    root = app.extensions["cms_media"].storage.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_library_page_lists_nothing_yet(client_for):
    response = client_for("editor").get("/media/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "This folder is empty" in html
    assert 'hx-headers=\'{"X-CSRFToken"' in html


def test_create_folder_with_htmx_returns_fresh_form_and_refresh_event(app, client_for):
    client = client_for("editor")
    response = client.hx_post("/media/folders", data={"name": "  Press   kit ", "parent_id": ""})
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "cms-media:changed"
    assert "Folder “Press kit” created." in response.get_data(as_text=True)
    assert folder_named(app, "Press kit") is not None
    assert "Press kit" in client.hx_get("/media/").get_data(as_text=True)


def test_create_folder_plain_post_redirects(app, client_for):
    client = client_for("editor")
    response = client.form_post("/media/folders", data={"name": "Logos"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/media/")


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the folder a name."), ("a/b", "cannot contain"), ("x" * 256, "at most 255")],
)
def test_bad_folder_names_are_refused_with_a_message(app, client_for, name, message):
    response = client_for("editor").hx_post("/media/folders", data={"name": name})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert session().scalar(select(func.count(Folder.id))) == 0


def test_duplicate_folder_name_in_the_same_parent(client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Logos"})
    response = client.hx_post("/media/folders", data={"name": "LOGOS"})
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


def test_nested_folders_show_a_breadcrumb(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Events"})
    events = folder_named(app, "Events")
    client.hx_post("/media/folders", data={"name": "2026", "parent_id": str(events.id)})
    inner = folder_named(app, "2026")
    html = client.get(f"/media/folders/{inner.id}").get_data(as_text=True)
    crumbs = re.search(r'<nav class="cm-breadcrumb".*?</nav>', html, re.S).group(0)
    assert crumbs.index("Documents and Media") < crumbs.index("Events") < crumbs.index("2026")


def test_upload_several_images_stores_originals_and_thumbnails(app, client_for):
    client = client_for("editor")
    png, jpeg = image_bytes("PNG"), image_bytes("JPEG", size=(800, 600))
    response = upload(client, ("logo.png", png), ("Team photo.jpg", jpeg))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "2 images uploaded." in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "cms-media:changed"
    logo, photo = documents(app)
    assert (logo.title, logo.mime_type, logo.width, logo.height) == ("logo", "image/png", 64, 48)
    assert (photo.title, photo.mime_type, photo.width, photo.height) == (
        "Team photo",
        "image/jpeg",
        800,
        600,
    )
    assert photo.created_by_name == "Eve Editor" and photo.source == "upload"
    assert client.get(f"/media/documents/{logo.id}/file").data == png  # bytes kept exactly
    thumb = client.get(f"/media/documents/{photo.id}/thumbnail")
    assert thumb.mimetype == "image/webp"
    # Stored names are generated, never the user's filename.
    assert not any("logo" in name or "Team" in name for name in stored_files(app))
    assert len(stored_files(app)) == 4


def test_upload_into_a_folder_and_plain_post(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Events"})
    events = folder_named(app, "Events")
    response = upload(client, ("a.png", image_bytes()), folder_id=events.id, htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/media/folders/{events.id}")
    (document,) = documents(app)
    assert document.folder_id == events.id


def test_exif_orientation_is_honoured(app, client_for):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = image_bytes("JPEG", size=(120, 40), exif=exif)
    upload(client_for("editor"), ("rotated.jpg", data))
    (document,) = documents(app)
    assert (document.width, document.height) == (40, 120)


def test_detail_rename_move_and_delete(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Archive"})
    archive = folder_named(app, "Archive")
    upload(client, ("first.png", image_bytes()))
    (document,) = documents(app)

    page = client.get(f"/media/documents/{document.id}")
    assert page.status_code == 200 and "first.png" in page.get_data(as_text=True)

    renamed = client.hx_post(
        f"/media/documents/{document.id}/edit", data={"title": "Harbour", "description": "Boats"}
    )
    assert renamed.status_code == 200 and "Saved." in renamed.get_data(as_text=True)
    assert 'id="cm-details"' in renamed.get_data(as_text=True)
    assert "<html" not in renamed.get_data(as_text=True)

    moved = client.hx_post(
        f"/media/documents/{document.id}/move", data={"folder_id": str(archive.id)}
    )
    assert moved.status_code == 204
    assert moved.headers["HX-Redirect"].endswith(f"/media/folders/{archive.id}")
    (document,) = documents(app)
    assert (document.title, document.description, document.folder_id) == (
        "Harbour",
        "Boats",
        archive.id,
    )

    deleted = client.hx_post(f"/media/documents/{document.id}/delete")
    assert deleted.status_code == 204
    assert documents(app) == []
    assert stored_files(app) == []


def test_rename_with_an_empty_title_keeps_the_old_one(app, client_for):
    client = client_for("editor")
    upload(client, ("first.png", image_bytes()))
    (document,) = documents(app)
    response = client.hx_post(f"/media/documents/{document.id}/edit", data={"title": "  "})
    assert response.status_code == 400
    assert "Give the document a title." in response.get_data(as_text=True)
    assert documents(app)[0].title == "first"


def test_move_to_an_unknown_folder_is_refused(app, client_for):
    client = client_for("editor")
    upload(client, ("first.png", image_bytes()))
    (document,) = documents(app)
    response = client.hx_post(f"/media/documents/{document.id}/move", data={"folder_id": "999"})
    assert response.status_code == 400
    assert "Choose a folder of this site" in response.get_data(as_text=True)


def test_delete_folder_asks_first_then_removes_everything_inside(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Old"})
    old = folder_named(app, "Old")
    client.hx_post("/media/folders", data={"name": "Older", "parent_id": str(old.id)})
    older = folder_named(app, "Older")
    upload(client, ("a.png", image_bytes()), folder_id=old.id)
    upload(client, ("b.png", image_bytes()), folder_id=older.id)

    confirm = client.hx_get(f"/media/folders/{old.id}/delete").get_data(as_text=True)
    assert "1 folder and 2 documents" in confirm

    response = client.hx_post(f"/media/folders/{old.id}/delete")
    assert response.status_code == 204
    assert documents(app) == [] and stored_files(app) == []
    assert folder_named(app, "Older") is None


def test_rename_folder(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Old"})
    old = folder_named(app, "Old")
    response = client.hx_post(f"/media/folders/{old.id}/rename", data={"name": "New"})
    assert response.status_code == 204
    assert folder_named(app, "New").id == old.id


def _titles(html: str) -> list[str]:
    return re.findall(r'<span class="cm-card-title">([^<]*)</span>', html)


def test_search_sort_and_keyset_pages(app, client_for):
    app.config["CMS_MEDIA_PAGE_SIZE"] = 3
    client = client_for("editor")
    names = ["delta", "alpha", "echo", "charlie", "bravo", "foxtrot", "golf"]
    for name in names:
        upload(client, (f"{name}.png", image_bytes()))

    seen, url = [], "/media/?sort=title"
    pages = []
    while url:
        html = client.hx_get(url).get_data(as_text=True)
        pages.append(html)
        seen += _titles(html)
        match = re.search(r'href="([^"]+after=[^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert seen == sorted(names)
    assert len(pages) == 3

    back = re.search(r'href="([^"]+before=[^"]+)"', pages[-1]).group(1).replace("&amp;", "&")
    assert _titles(client.hx_get(back).get_data(as_text=True)) == ["delta", "echo", "foxtrot"]

    newest = _titles(client.hx_get("/media/?sort=newest").get_data(as_text=True))
    assert newest == ["golf", "foxtrot", "bravo"]
    found = _titles(client.hx_get("/media/?q=PH").get_data(as_text=True))
    assert found == ["alpha"]  # case-insensitive title search
    assert _titles(client.hx_get("/media/?q=%25").get_data(as_text=True)) == []  # % is literal


def test_search_reaches_documents_in_every_folder(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "Deep"})
    upload(client, ("needle.png", image_bytes()), folder_id=folder_named(app, "Deep").id)
    assert _titles(client.hx_get("/media/?q=needle").get_data(as_text=True)) == ["needle"]


def test_list_view_and_htmx_fragment(client_for):
    client = client_for("editor")
    upload(client, ("one.png", image_bytes()))
    fragment = client.hx_get("/media/?view=list").get_data(as_text=True)
    assert fragment.strip().startswith('<section id="cm-results"')
    assert '<table class="cm-table">' in fragment
    # A history restore asks for the whole page.
    restored = client.get(
        "/media/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restored.get_data(as_text=True)


def test_a_tampered_page_cursor_starts_over(client_for):
    response = client_for("editor").get("/media/?after=not-a-cursor")
    assert response.status_code == 303
