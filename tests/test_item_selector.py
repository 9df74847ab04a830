"""The item selector: browse, upload and create inside it, then the alt-text step and the
payload the editor receives."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import select

from cms_media.database import session
from cms_media.models import AiSettings, Document, Folder
from tests.conftest import image_bytes, upload


@pytest.fixture
def editor(client_for):
    return client_for("editor")


def the_documents(app) -> list[Document]:
    with app.app_context():
        return list(session().scalars(select(Document).order_by(Document.id)))


def payload(html: str) -> list[dict]:
    match = re.search(
        r'<script type="application/json" id="cm-selection">(.*?)</script>', html, re.S
    )
    assert match, html
    return json.loads(match.group(1))


def test_tabs_follow_rights_and_settings(app, client_for, sites):
    html = client_for("editor").get("/media/selector/").get_data(as_text=True)
    assert all(tab in html for tab in ("cm-tab-browse", "cm-tab-upload", "cm-tab-ai"))
    viewer = client_for("viewer").get("/media/selector/").get_data(as_text=True)
    assert "cm-tab-browse" in viewer and "cm-tab-upload" not in viewer and "cm-tab-ai" not in viewer
    with app.app_context():
        session().add(AiSettings(site_id=sites["harbour"], enabled=False))
        session().commit()
    assert "cm-tab-ai" not in client_for("editor").get("/media/selector/").get_data(as_text=True)
    assert client_for(None).get("/media/selector/").status_code == 303


def test_browse_folders_and_search(app, editor):
    editor.hx_post("/media/folders", data={"name": "Boats"})
    with app.app_context():
        boats = session().scalar(select(Folder))
    upload(editor, ("sailboat.png", image_bytes()), folder_id=boats.id)
    upload(editor, ("logo.png", image_bytes()))
    root = editor.hx_get("/media/selector/browse").get_data(as_text=True)
    assert "Boats" in root and "logo" in root and "sailboat" not in root
    inside = editor.hx_get(f"/media/selector/browse?folder_id={boats.id}").get_data(as_text=True)
    assert "sailboat" in inside and "logo" not in inside
    found = editor.hx_get("/media/selector/browse?q=sail").get_data(as_text=True)
    assert "sailboat" in found and "logo" not in found


def test_other_sites_ids_are_refused_everywhere(app, client_for, editor):
    upload(editor, ("harbour.png", image_bytes()))
    (document,) = the_documents(app)
    alpine = client_for("alpine")
    assert alpine.get(f"/media/selector/chosen?ids={document.id}").status_code == 404
    response = alpine.form_post(
        "/media/selector/chosen", data={"ids": str(document.id), f"alt-{document.id}": "x"}
    )
    assert response.status_code == 404
    alpine_folder = alpine.hx_get("/media/selector/browse?folder_id=999")
    assert alpine_folder.status_code == 404


def test_a_mix_of_own_and_foreign_ids_is_refused(app, client_for, editor):
    upload(editor, ("harbour.png", image_bytes()))
    alpine = client_for("alpine")
    upload(alpine, ("alpine.png", image_bytes()))
    harbour_doc, alpine_doc = the_documents(app)
    url = f"/media/selector/chosen?multiple=1&ids={alpine_doc.id},{harbour_doc.id}"
    assert alpine.get(url).status_code == 404


def test_alt_text_step_and_payload(app, editor):
    upload(editor, ("Harbour.png", image_bytes(size=(1600, 800))))
    (document,) = the_documents(app)
    form = editor.get(f"/media/selector/chosen?ids={document.id}").get_data(as_text=True)
    assert f'name="alt-{document.id}"' in form and "Decorative image" in form

    missing = editor.form_post(
        "/media/selector/chosen", data={"ids": str(document.id), f"alt-{document.id}": " "}
    )
    assert missing.status_code == 400
    assert "or mark it decorative" in missing.get_data(as_text=True)

    chosen = editor.form_post(
        "/media/selector/chosen",
        data={
            "ids": str(document.id),
            f"alt-{document.id}": "Boats at dawn",
            f"size-{document.id}": "medium",
        },
    )
    assert chosen.status_code == 200
    (item,) = payload(chosen.get_data(as_text=True))
    assert item == {
        "id": document.id,
        "url": f"/media/documents/{document.id}/file",
        "alt": "Boats at dawn",
        "width": 640,
        "height": 320,
        "title": "Harbour",
        "decorative": False,
    }

    decorative = editor.form_post(
        "/media/selector/chosen",
        data={
            "ids": str(document.id),
            f"alt-{document.id}": "ignored",
            f"decorative-{document.id}": "on",
        },
    )
    (item,) = payload(decorative.get_data(as_text=True))
    assert item["alt"] == "" and item["decorative"] is True and item["width"] == 1600


def test_single_selection_keeps_only_the_first(app, editor):
    upload(editor, ("a.png", image_bytes()), ("b.png", image_bytes()))
    first, second = the_documents(app)
    html = editor.get(f"/media/selector/chosen?ids={first.id},{second.id}").get_data(as_text=True)
    assert f"alt-{first.id}" in html and f"alt-{second.id}" not in html
    several = editor.get(f"/media/selector/chosen?multiple=1&ids={first.id},{second.id}")
    assert f"alt-{second.id}" in several.get_data(as_text=True)


def test_titles_cannot_break_out_of_the_payload(app, editor):
    upload(editor, ("x.png", image_bytes()))
    (document,) = the_documents(app)
    title = "</script><script>alert(1)</script>"
    editor.hx_post(f"/media/documents/{document.id}/edit", data={"title": title})
    html = editor.form_post(
        "/media/selector/chosen", data={"ids": str(document.id), f"alt-{document.id}": "</script>x"}
    ).get_data(as_text=True)
    assert "<script>alert(1)" not in html
    (item,) = payload(html)
    assert item["title"] == "</script><script>alert(1)</script>"


def test_answer_goes_only_to_allowed_origins(app, editor):
    page = editor.get("/media/selector/?origin=https://evil.example").get_data(as_text=True)
    assert 'data-parent-origin="http://localhost"' in page
    app.config["CMS_MEDIA_SELECTOR_ORIGINS"] = ["https://cms.example"]
    page = editor.get("/media/selector/?origin=https://cms.example/path").get_data(as_text=True)
    assert 'data-parent-origin="https://cms.example"' in page


def test_upload_inside_the_selector_goes_to_the_alt_step(app, editor):
    data = {
        "mode": "selector",
        "multiple": "",
        "origin": "http://localhost",
        "folder_id": "",
        "files": [(io.BytesIO(image_bytes()), "new.png")],
    }
    response = editor.hx_post("/media/upload", data=data, content_type="multipart/form-data")
    (document,) = the_documents(app)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith(f"/media/selector/chosen?ids={document.id}")


def test_create_ai_image_inside_the_selector_picks_the_saved_image(app, editor):
    panel = editor.hx_get("/media/ai/create?mode=selector&origin=http://localhost").get_data(
        as_text=True
    )
    assert 'name="mode" value="selector"' in panel
    created = editor.hx_post(
        "/media/ai/jobs",
        data={
            "prompt": "A red kite",
            "count": "2",
            "size": "256x256",
            "quality": "auto",
            "background": "auto",
            "output_format": "png",
            "mode": "selector",
        },
    ).get_data(as_text=True)
    assert "Add Selected and insert" in created
    job_id = re.search(r"/media/ai/jobs/(\d+)/save", created).group(1)
    slot_ids = re.findall(r'name="slot" value="(\d+)"', created)
    saved = editor.hx_post(
        f"/media/ai/jobs/{job_id}/save",
        data={"slot": slot_ids[:1], "mode": "selector", "origin": "http://localhost"},
    )
    (document,) = the_documents(app)
    assert document.source == "ai"
    assert saved.status_code == 204
    assert saved.headers["HX-Redirect"].startswith(f"/media/selector/chosen?ids={document.id}")
    alt_step = editor.get(saved.headers["HX-Redirect"]).get_data(as_text=True)
    assert "A red kite" in alt_step  # alt text prefilled from the prompt
