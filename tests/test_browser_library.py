"""The library in a real browser: the foundation flow, site isolation, escaping and search."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser_fixtures import login

pytestmark = pytest.mark.browser

EDITOR = ("editor@example.com", "editor-demo")
ALPINE = ("alpine.editor@example.com", "alpine-demo")
XSS_NAME = "<img src=x onerror=alert(1)>.png"

ALL_THUMBNAILS_LOADED = """
(count) => {
  const images = [...document.querySelectorAll('#cm-results .cm-card img')];
  return images.length === count && images.every(i => i.complete && i.naturalWidth > 0);
}
"""


def write_image(path, fmt: str, color, size=(120, 80)):
    Image.new("RGB", size, color).save(path, fmt)
    return path


def png_bytes(color=(30, 120, 200), size=(40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def open_library(page):
    page.get_by_role("navigation", name="Demo CMS").get_by_role(
        "link", name="Documents and Media"
    ).click()
    expect(page.locator("#cm-results")).to_be_visible()


def open_new_menu(page, item: str):
    page.locator("details.cm-menu > summary", has_text="New").click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def mark_page(page):
    """A flag on ``window`` that a full page load would wipe out."""
    page.evaluate("window.__cmsMediaNoReload = true")


def assert_not_reloaded(page):
    assert page.evaluate("window.__cmsMediaNoReload === true"), "the page was reloaded"


def card(page, title: str):
    return page.locator("#cm-results .cm-card").filter(
        has=page.locator(".cm-card-title", has_text=re.compile(f"^{re.escape(title)}$"))
    )


def upload_through_dialog(page, files):
    open_new_menu(page, "Upload")
    dialog = page.locator("#cm-upload")
    expect(dialog).to_be_visible()
    dialog.locator("#cm-upload-files").set_input_files(files)
    dialog.get_by_role("button", name="Upload", exact=True).click()
    return dialog


def test_folder_upload_edit_move_delete(page, live_server, tmp_path):
    login(page, live_server, *EDITOR)
    open_library(page)
    expect(card(page, "Photos")).to_be_visible()

    # New → Folder → "Press kit"
    open_new_menu(page, "Folder")
    dialog = page.locator("#cm-new-folder")
    expect(dialog).to_be_visible()
    expect(page.locator("#cm-folder-name")).to_be_focused()
    page.fill("#cm-folder-name", "Press kit")
    mark_page(page)
    dialog.get_by_role("button", name="Create folder").click()
    expect(dialog.get_by_role("status")).to_have_text("Folder “Press kit” created.")
    expect(card(page, "Press kit")).to_be_visible()  # #cm-results reloaded itself
    expect(dialog).to_be_hidden()
    assert_not_reloaded(page)

    card(page, "Press kit").get_by_role("link").click()
    expect(page.locator(".cm-breadcrumb [aria-current=page]")).to_have_text("Press kit")
    expect(page.locator(".cm-empty")).to_contain_text("This folder is empty.")

    # New → Upload two images
    files = [
        write_image(tmp_path / "Harbour_crane.png", "PNG", (200, 40, 40)),
        write_image(tmp_path / "Ferry.jpg", "JPEG", (40, 160, 60)),
    ]
    mark_page(page)
    dialog = upload_through_dialog(page, files)
    expect(dialog.get_by_role("status")).to_have_text("2 images uploaded.")
    expect(card(page, "Harbour crane")).to_be_visible()
    expect(card(page, "Ferry")).to_be_visible()
    page.wait_for_function(ALL_THUMBNAILS_LOADED, arg=2)
    expect(dialog).to_be_hidden()
    assert_not_reloaded(page)

    # Open one and rename it through the Edit form (an htmx swap).
    card(page, "Harbour crane").get_by_role("link").click()
    expect(page.locator("h1.cm-title")).to_have_text("Harbour crane")
    preview = page.locator(".cm-preview img")
    expect(preview).to_have_js_property("complete", True)
    assert preview.evaluate("img => img.naturalWidth") == 120
    mark_page(page)
    page.fill("#cm-doc-title", "Crane at dusk")
    page.fill("#cm-doc-description", "For the spring issue.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#cm-details .cm-notice")).to_have_text("Saved.")
    expect(page.locator("h1.cm-title")).to_have_text("Crane at dusk")
    expect(page.locator("#cm-details .cm-description")).to_have_text("For the spring issue.")
    assert_not_reloaded(page)

    # Move it to the top level: the server sends the browser to that folder.
    page.select_option("#cm-move-folder", label="Documents and Media (top level)")
    page.get_by_role("button", name="Move", exact=True).click()
    page.wait_for_url(re.compile(r"/media/$"))
    expect(card(page, "Crane at dusk")).to_be_visible()
    expect(card(page, "Press kit")).to_be_visible()

    # Delete the other one with the confirmation dialog.
    card(page, "Press kit").get_by_role("link").click()
    expect(card(page, "Ferry")).to_be_visible()
    expect(card(page, "Crane at dusk")).to_have_count(0)
    card(page, "Ferry").get_by_role("link").click()
    expect(page.locator("h1.cm-title")).to_have_text("Ferry")
    page.locator(".cm-actions").get_by_role("button", name="Delete").click()
    confirm = page.locator("#cm-delete-document")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Delete Ferry?")
    confirm.get_by_role("button", name="Delete").click()
    page.wait_for_url(re.compile(r"/media/folders/\d+$"))
    expect(page.locator(".cm-breadcrumb [aria-current=page]")).to_have_text("Press kit")
    expect(page.locator(".cm-empty")).to_contain_text("This folder is empty.")
    expect(card(page, "Ferry")).to_have_count(0)


def test_other_site_documents_are_invisible(page, live_server, browser_errors):
    from cms_media.demo.models import db
    from cms_media.models import Document

    sites = live_server.site_ids()
    with live_server.app.app_context():
        lighthouses = {
            document.site_id: document.id
            for document in db.session.scalars(
                db.select(Document).where(Document.title == "Lighthouse")
            )
        }
    harbour_id, alpine_id = lighthouses[sites["harbour"]], lighthouses[sites["alpine"]]

    login(page, live_server, *ALPINE)
    open_library(page)
    expect(card(page, "Mountains")).to_be_visible()
    expect(card(page, "Photos")).to_have_count(0)
    switcher = page.locator(".demo-site-switch")
    expect(switcher.get_by_role("button")).to_have_count(1)
    expect(switcher).to_contain_text("Alpine Journal")

    # Both sites have a "Lighthouse"; a search (site-wide) finds Alpine's only.
    page.get_by_role("searchbox").fill("Lighthouse")
    expect(card(page, "Lighthouse")).to_have_count(1)
    link = card(page, "Lighthouse").get_by_role("link")
    expect(link).to_have_attribute("href", f"/media/documents/{alpine_id}")

    # Typing the Harbour document's address answers as if it did not exist.
    browser_errors.allow_console(r"status of 404")
    for path in (f"/media/documents/{harbour_id}", f"/media/documents/{harbour_id}/thumbnail"):
        response = page.goto(live_server.url + path)
        assert response.status == 404, path
    page.goto(f"{live_server.url}/media/documents/{harbour_id}")
    expect(page.get_by_role("alert")).to_contain_text(
        "There is no such folder or document in this site."
    )
    expect(page.get_by_text("Lighthouse")).to_have_count(0)


def test_hostile_filename_is_shown_as_text(page, live_server):
    dialogs: list[str] = []

    def record(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    login(page, live_server, *EDITOR)
    open_library(page)
    hostile_file = {"name": XSS_NAME, "mimeType": "image/png", "buffer": png_bytes()}
    upload_through_dialog(page, [hostile_file])
    hostile = card(page, "<img src=x onerror=alert(1)>")
    expect(hostile).to_be_visible()
    expect(hostile.locator(".cm-card-title")).to_have_text("<img src=x onerror=alert(1)>")
    assert page.locator('img[src="x"]').count() == 0

    hostile.get_by_role("link").click()
    expect(page.locator("h1.cm-title")).to_have_text("<img src=x onerror=alert(1)>")
    expect(page.locator(".cm-meta")).to_contain_text(XSS_NAME)
    assert page.locator('img[src="x"]').count() == 0
    # An onerror handler would have fired by now: the broken "x" image fails at once.
    page.wait_for_load_state("load")
    assert page.title().startswith("<img src=x onerror=alert(1)>")
    assert dialogs == [], f"a script ran from the filename: {dialogs}"


def test_search_filters_the_grid_without_reloading(page, live_server):
    login(page, live_server, *EDITOR)
    open_library(page)
    card(page, "Photos").get_by_role("link").click()
    for title in ("Harbour at dawn", "Lighthouse", "Sea glass"):
        expect(card(page, title)).to_be_visible()
    page.wait_for_function(ALL_THUMBNAILS_LOADED, arg=3)

    mark_page(page)
    def htmx_search(request):
        return "q=light" in request.url and request.headers.get("hx-request") == "true"

    with page.expect_request(htmx_search):
        page.get_by_role("searchbox").press_sequentially("light", delay=20)
    expect(page.locator("#cm-results .cm-muted")).to_have_text(
        "Titles containing “light” in this site"
    )
    expect(card(page, "Lighthouse")).to_be_visible()
    expect(page.locator("#cm-results .cm-card")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"[?&]q=light"))
    assert_not_reloaded(page)

    page.get_by_role("searchbox").fill("nothing like this")
    expect(page.locator(".cm-empty")).to_have_text("No documents match “nothing like this”.")
    assert_not_reloaded(page)
