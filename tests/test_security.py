"""Every route × every role × both sites, CSRF, and what is served how."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from cms_media.database import session
from cms_media.models import Document, Folder
from tests.conftest import image_bytes, upload

# (method, url template, the right it needs, form data)
ROUTES = [
    ("GET", "/media/folders/{folder}", "view", None),
    ("GET", "/media/documents/{document}", "view", None),
    ("GET", "/media/documents/{document}/file", "view", None),
    ("GET", "/media/documents/{document}/download", "view", None),
    ("GET", "/media/documents/{document}/thumbnail", "view", None),
    ("GET", "/media/folders/{folder}/delete", "delete", None),
    ("POST", "/media/folders", "add", {"name": "New one", "parent_id": "{folder}"}),
    ("POST", "/media/upload", "add", {"folder_id": "{folder}"}),
    ("POST", "/media/folders/{folder}/rename", "change", {"name": "Renamed"}),
    ("POST", "/media/documents/{document}/edit", "change", {"title": "T", "description": ""}),
    ("POST", "/media/documents/{document}/move", "change", {"folder_id": ""}),
    ("POST", "/media/documents/{document}/delete", "delete", None),
    ("POST", "/media/folders/{folder}/delete", "delete", None),
]
RIGHTS = {
    "admin": {"view", "add", "change", "delete"},
    "siteadmin": {"view", "add", "change", "delete"},
    "editor": {"view", "add", "change", "delete"},
    "viewer": {"view"},
    "alpine": set(),  # a member of the other site only
}


@pytest.fixture
def harbour_items(app, client_for):
    """A folder with one document in site A (Harbour News)."""
    editor = client_for("editor")
    editor.hx_post("/media/folders", data={"name": "Shared"})
    with app.app_context():
        folder = session().scalar(select(Folder))
    upload(editor, ("pic.png", image_bytes()), folder_id=folder.id)
    with app.app_context():
        document = session().scalar(select(Document))
    return {"folder": folder.id, "document": document.id}


def _request(client, method, template, data, ids, htmx):
    url = template.format(**ids)
    if method == "GET":
        return client.hx_get(url) if htmx else client.get(url)
    form = {key: value.format(**ids) for key, value in (data or {}).items()}
    if url.endswith("/upload"):
        form["files"] = [(io.BytesIO(image_bytes()), "x.png")]
        kwargs = {"content_type": "multipart/form-data"}
    else:
        kwargs = {}
    return (
        client.hx_post(url, data=form, **kwargs)
        if htmx
        else client.form_post(url, data=form, **kwargs)
    )


@pytest.mark.parametrize("who", sorted(RIGHTS))
@pytest.mark.parametrize(
    ("method", "template", "right", "data"), ROUTES, ids=[f"{m} {u}" for m, u, *_ in ROUTES]
)
def test_role_route_site_matrix(
    app, client_for, sites, harbour_items, who, method, template, right, data
):
    client = client_for(who)
    if who == "admin":  # instance administrators start in the first site by name
        client.switch_site(sites["harbour"])
    response = _request(client, method, template, data, harbour_items, htmx=True)
    if who == "alpine":
        # Another site's ids answer exactly like ids that do not exist.
        assert response.status_code == 404
        missing = _request(client, method, template, data, {"folder": 9999, "document": 9999}, True)
        assert missing.status_code == 404
        assert response.get_data() == missing.get_data()
    elif right in RIGHTS[who]:
        assert response.status_code in (200, 204, 303), response.get_data(as_text=True)
    else:
        assert response.status_code == 403
        assert "Ask a site administrator" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "template", "right", "data"), ROUTES, ids=[f"{m} {u}" for m, u, *_ in ROUTES]
)
def test_anonymous_users_are_sent_to_the_login(
    app, client_for, harbour_items, method, template, right, data
):
    client = client_for(None)
    response = _request(client, method, template, data, harbour_items, htmx=False)
    assert response.status_code == 303
    assert "/login?next=" in response.headers["Location"]
    hx = _request(client, method, template, data, harbour_items, htmx=True)
    assert hx.status_code == 204 and "/login?next=" in hx.headers["HX-Redirect"]


def test_library_root_needs_login_and_shows_only_the_users_site(client_for, harbour_items):
    assert client_for(None).get("/media/").status_code == 303
    assert "Shared" in client_for("editor").get("/media/").get_data(as_text=True)
    assert "Shared" not in client_for("alpine").get("/media/").get_data(as_text=True)


def test_viewer_sees_no_buttons_that_would_be_refused(client_for, harbour_items):
    html = (
        client_for("viewer").get(f"/media/folders/{harbour_items['folder']}").get_data(as_text=True)
    )
    assert "cm-new-folder" not in html and "Delete folder" not in html
    detail = client_for("viewer").get(f"/media/documents/{harbour_items['document']}")
    assert 'id="cm-move"' not in detail.get_data(as_text=True)


def test_instance_admin_can_switch_to_any_site_members_cannot(client_for, sites, harbour_items):
    admin = client_for("admin")
    assert admin.switch_site(sites["alpine"]).status_code == 302
    # In site B the ids of site A are not found, even for an instance administrator.
    assert admin.get(f"/media/documents/{harbour_items['document']}").status_code == 404
    editor = client_for("editor")
    assert editor.switch_site(sites["alpine"]).status_code == 404


@pytest.mark.parametrize("htmx", [True, False])
def test_posts_without_a_csrf_token_are_refused(app, client_for, harbour_items, htmx):
    client = client_for("editor")
    headers = {"HX-Request": "true"} if htmx else {}
    url = f"/media/documents/{harbour_items['document']}/delete"
    response = client.post(url, headers=headers)
    assert response.status_code == 400
    assert "Reload the page and try again" in response.get_data(as_text=True)
    forged = client.post(url, headers={**headers, "X-CSRFToken": "forged"})
    assert forged.status_code == 400
    with app.app_context():
        assert session().get(Document, harbour_items["document"]) is not None


def test_image_file_headers(client_for, harbour_items):
    client = client_for("viewer")
    url = f"/media/documents/{harbour_items['document']}"
    inline = client.get(f"{url}/file")
    assert inline.mimetype == "image/png"
    assert inline.headers["X-Content-Type-Options"] == "nosniff"
    assert "attachment" not in inline.headers.get("Content-Disposition", "")
    download = client.get(f"{url}/download")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "pic.png" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_thumbnail_revalidates_with_a_304(client_for, harbour_items):
    client = client_for("viewer")
    url = f"/media/documents/{harbour_items['document']}/thumbnail"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/webp"
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    second = client.get(url, headers={"If-None-Match": etag})
    assert second.status_code == 304 and second.data == b""
    # The permission check still runs before a 304.
    assert client_for("alpine").get(url, headers={"If-None-Match": etag}).status_code == 404


def test_login_redirects_only_to_local_paths(client_for):
    client = client_for(None)
    token = client.token()
    response = client.post(
        "/login",
        data={
            "email": "editor@example.com",
            "password": "editor-demo",
            "next": "https://evil.example/",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_wrong_password_is_refused_with_a_message(client_for):
    client = client_for(None)
    response = client.post(
        "/login",
        data={"email": "editor@example.com", "password": "nope", "csrf_token": client.token()},
    )
    assert response.status_code == 400
    assert "do not match" in response.get_data(as_text=True)
