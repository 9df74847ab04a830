"""Rich-text editors in a real browser: TinyMCE and Quill insert images through the item
selector (Documents and Media, Create AI Image), the article is saved and shows them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cms_media.demo.articles import Article, seed_articles
from cms_media.demo.articles import bp as articles_bp
from cms_media.demo.models import Site, db
from cms_media.models import AiSettings, Document
from tests.browser_fixtures import AiServerOptions, LiveServer, login

pytestmark = pytest.mark.browser

EDITOR = ("editor@example.com", "editor-demo")
ALPINE = ("alpine.editor@example.com", "alpine-demo")
IMAGE_BUTTON = "Insert image from Documents and Media"
SELECTOR_FRAME = "dialog.cm-selector-dialog iframe"
STABLE_URL = re.compile(r"^/media/documents/(\d+)/file$")

ALL_IMAGES_LOADED = """
(count) => {
  const images = [...document.querySelectorAll('.demo-article-body img')];
  return images.length === count && images.every(i => i.complete && i.naturalWidth > 0);
}
"""


@pytest.fixture
def ai_server_options() -> AiServerOptions:
    """Quick sandbox images, all at once: this module tests the editors, not the creator."""
    return AiServerOptions(sandbox_delay=0.2, sandbox_stagger=0, workers=4)


@pytest.fixture
def live_server(ai_live_server) -> LiveServer:
    """The seeded demo app with the AI Creator's queue running (``ai_live_server``), plus the
    articles: the blueprint (until the factory registers it), its table and one per site.

    Overrides ``browser_fixtures.live_server`` for this module, so ``page`` uses it.
    """
    app = ai_live_server.app
    if "demo_articles" not in app.blueprints:
        app.register_blueprint(articles_bp)
    with app.app_context():
        db.create_all()
        seed_articles({site.slug: site for site in db.session.scalars(select(Site))})
    return ai_live_server


def welcome_article(live_server: LiveServer, slug: str) -> int:
    with live_server.app.app_context():
        return db.session.scalar(select(Article.id).join(Article.site).where(Site.slug == slug))


def stored_body(live_server: LiveServer, article_id: int) -> str:
    with live_server.app.app_context():
        return db.session.get(Article, article_id).body_html


def open_tinymce(page, article_id: int):
    page.goto(f"/articles/{article_id}/edit")
    page.wait_for_function(
        "() => window.tinymce && tinymce.activeEditor && tinymce.activeEditor.initialized"
    )
    return page.frame_locator(".tox-edit-area iframe").locator("body")


def open_quill(page, article_id: int):
    page.goto(f"/articles/{article_id}/edit?editor=quill")
    expect(page.locator(".ql-toolbar")).to_be_visible()
    return page.locator(".cm-quill .ql-editor")


def end_of_text(page, body) -> None:
    body.click()
    page.keyboard.press("Control+End")


def selector(page):
    frame = page.frame_locator(SELECTOR_FRAME)
    expect(frame.get_by_role("heading", name="Choose an image")).to_be_visible()
    return frame


def pick_existing(frame, folder: str, title: str, alt: str, size: str | None = None) -> None:
    """Documents and Media tab: open a folder, pick an image, describe it, insert."""
    frame.locator(".cm-folder-card a", has_text=folder).click()
    frame.locator("a.cm-selector-choice", has_text=title).click()
    expect(frame.get_by_role("heading", name="Image details")).to_be_visible()
    frame.get_by_label("Alt text", exact=True).fill(alt)
    if size:
        frame.get_by_label("Display size").select_option(size.lower())
    frame.get_by_role("button", name="Insert").click()


def create_ai_image(frame, prompt: str, alt: str) -> None:
    """Create AI Image tab (sandbox): generate two, tick one, Add Selected, describe, insert."""
    frame.get_by_role("tab", name="Create AI Image").click()
    frame.get_by_label("Description").fill(prompt)
    frame.get_by_label("Number of images").fill("2")
    frame.get_by_role("button", name="Generate").click()
    candidate = frame.get_by_role("checkbox", name=re.compile("Candidate 1"))
    expect(candidate).to_be_visible(timeout=20_000)
    candidate.check()
    frame.get_by_role("button", name=re.compile("^Add Selected")).click()
    expect(frame.get_by_role("heading", name="Image details")).to_be_visible(timeout=10_000)
    frame.get_by_label("Alt text", exact=True).fill(alt)
    frame.get_by_role("button", name="Insert").click()


def editor_images(page) -> list[dict]:
    """The images in TinyMCE's saved content: the attributes that will be posted."""
    return page.evaluate(
        """() => {
          const html = tinymce.activeEditor.getContent();
          const inert = new DOMParser().parseFromString(html, 'text/html');
          return [...inert.querySelectorAll('img')].map(i => Object.fromEntries(
            [...i.attributes].map(a => [a.name, a.value])));
        }"""
    )


def assert_shown(page, live_server, article_id: int, count: int) -> list[dict]:
    """The article page shows ``count`` images, each loaded through the stable URL."""
    expect(page.locator(".demo-article-body img")).to_have_count(count)
    page.wait_for_function(ALL_IMAGES_LOADED, arg=count)
    images = page.locator(".demo-article-body img").evaluate_all(
        "els => els.map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt'),"
        " id: i.dataset.cmsMediaId, width: i.getAttribute('width')}))"
    )
    for image in images:
        match = STABLE_URL.match(image["src"])
        assert match and match.group(1) == image["id"], image
    return images


def test_tinymce_inserts_a_library_image_and_an_ai_image(page, live_server):
    article_id = welcome_article(live_server, "harbour")
    login(page, live_server, *EDITOR)
    body = open_tinymce(page, article_id)
    button = page.get_by_role("button", name=IMAGE_BUTTON)
    end_of_text(page, body)

    # (a) Documents and Media: an existing (seeded) image, with alt text, at medium size.
    button.click()
    pick_existing(selector(page), "Photos", "Lighthouse", "A white lighthouse", size="Medium")
    expect(page.locator(SELECTOR_FRAME)).to_have_count(0)
    expect(body.locator("img[data-cms-media-id]")).to_have_count(1)
    first = editor_images(page)[0]
    assert STABLE_URL.match(first["src"]).group(1) == first["data-cms-media-id"]
    assert first["alt"] == "A white lighthouse"
    assert (first["width"], first["height"]) == ("640", "427")

    # (b) Create AI Image in the sandbox, Add Selected, alt text, insert.
    end_of_text(page, body)
    button.click()
    create_ai_image(selector(page), "A red ferry in fog", "A red ferry in fog")
    expect(page.locator(SELECTOR_FRAME)).to_have_count(0)
    expect(body.locator("img[data-cms-media-id]")).to_have_count(2)
    images = editor_images(page)
    ai_id = int(images[1]["data-cms-media-id"])
    assert images[1]["alt"] == "A red ferry in fog"
    with live_server.app.app_context():
        document = db.session.get(Document, ai_id)
        assert document.source == "ai" and document.site_id == live_server.site_ids()["harbour"]

    # Save (a normal form submit: TinyMCE writes the textarea itself), then view the article.
    page.get_by_role("button", name="Save article").click()
    page.wait_for_url(re.compile(rf"/articles/{article_id}$"))
    expect(page.get_by_role("status")).to_have_text("Article saved.")
    shown = assert_shown(page, live_server, article_id, 2)
    assert [image["alt"] for image in shown] == ["A white lighthouse", "A red ferry in fog"]
    assert shown[0]["width"] == "640"
    stored = stored_body(live_server, article_id)
    assert stored.count("data-cms-media-id=") == 2 and f'data-cms-media-id="{ai_id}"' in stored

    # The AI image is in Documents and Media too.
    page.goto("/media/")
    page.locator("#cm-results .cm-card a", has_text="A red ferry in fog").first.click()
    expect(page.locator("h1.cm-title")).to_have_text(re.compile("A red ferry in fog"))


def test_image_dialog_browse_button_uses_the_selector(page, live_server):
    """The standard image dialog (here: "Image..." on an image's context menu) browses with
    the selector too; the replaced image's data-cms-media-id follows its new source."""
    article_id = welcome_article(live_server, "harbour")
    login(page, live_server, *EDITOR)
    body = open_tinymce(page, article_id)
    page.get_by_role("button", name=IMAGE_BUTTON).click()
    pick_existing(selector(page), "Photos", "Lighthouse", "A white lighthouse")
    expect(body.locator("img")).to_have_count(1)
    first_id = editor_images(page)[0]["data-cms-media-id"]

    body.locator("img").click(button="right")
    page.get_by_role("menuitem", name="Image…").click()
    dialog = page.get_by_role("dialog", name="Insert/Edit Image")
    dialog.get_by_role("button", name="Browse files").click()
    pick_existing(selector(page), "Photos", "Sea glass", "Green sea glass", size="Small")
    expect(dialog.get_by_label("Source")).to_have_value(STABLE_URL)
    expect(dialog.get_by_role("button", name="Browse files")).to_be_focused()  # keyboard users
    expect(dialog.get_by_label("Alternative description")).to_have_value("Green sea glass")
    expect(dialog.get_by_label("Width")).to_have_value("320")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(body.locator("img")).to_have_count(1)
    image = editor_images(page)[0]
    assert STABLE_URL.match(image["src"]).group(1) == image["data-cms-media-id"] != first_id
    assert image["alt"] == "Green sea glass" and image["width"] == "320"

    # Saved, and opened again: TinyMCE keeps the id of an image it loads.
    page.get_by_role("button", name="Save article").click()
    page.wait_for_url(re.compile(rf"/articles/{article_id}$"))
    assert_shown(page, live_server, article_id, 1)
    open_tinymce(page, article_id)
    assert editor_images(page) == [image]


def test_cancel_inserts_nothing_and_returns_to_the_editor(page, live_server):
    article_id = welcome_article(live_server, "harbour")
    login(page, live_server, *EDITOR)
    body = open_tinymce(page, article_id)
    page.get_by_role("button", name=IMAGE_BUTTON).click()
    selector(page).get_by_role("button", name="Cancel").click()
    expect(page.locator(SELECTOR_FRAME)).to_have_count(0)
    expect(body.locator("img")).to_have_count(0)
    assert page.evaluate("tinymce.activeEditor.hasFocus()")
    # Escape closes it too, even with the focus inside the selector's iframe.
    page.get_by_role("button", name=IMAGE_BUTTON).click()
    selector(page).get_by_role("searchbox").press("Escape")
    expect(page.locator(SELECTOR_FRAME)).to_have_count(0)


def test_quill_inserts_a_library_image_from_the_keyboard(page, live_server):
    article_id = welcome_article(live_server, "harbour")
    login(page, live_server, *EDITOR)
    editor = open_quill(page, article_id)
    expect(editor).to_contain_text("first article")
    editor.click()
    page.keyboard.press("Control+End")
    button = page.get_by_role("button", name=IMAGE_BUTTON)
    button.focus()
    page.keyboard.press("Enter")
    pick_existing(selector(page), "Photos", "Harbour at dawn", 'Boats & "nets" at dawn')
    expect(page.locator(SELECTOR_FRAME)).to_have_count(0)
    image = editor.locator("img")
    expect(image).to_have_count(1)
    expect(image).to_have_attribute("alt", 'Boats & "nets" at dawn')
    expect(image).to_have_attribute("src", STABLE_URL)
    expect(image).to_have_attribute("width", "960")
    expect(page.locator(".cm-quill-status")).to_have_text("Image inserted.")
    document_id = image.get_attribute("data-cms-media-id")
    assert image.get_attribute("src") == f"/media/documents/{document_id}/file"

    page.get_by_role("button", name="Save article").click()
    page.wait_for_url(re.compile(rf"/articles/{article_id}$"))
    shown = assert_shown(page, live_server, article_id, 1)
    assert shown[0]["alt"] == 'Boats & "nets" at dawn' and shown[0]["id"] == document_id
    stored = stored_body(live_server, article_id)
    assert "first article" in stored and "&nbsp;" not in stored and "\xa0" not in stored

    # Opening it again in Quill keeps the image and its attributes.
    editor = open_quill(page, article_id)
    expect(editor.locator(f'img[data-cms-media-id="{document_id}"]')).to_have_count(1)
    expect(editor.locator("img")).to_have_attribute("alt", 'Boats & "nets" at dawn')


def test_no_create_ai_image_where_the_site_switched_it_off(page, live_server):
    alpine = live_server.site_ids()["alpine"]
    with live_server.app.app_context():
        db.session.add(AiSettings(site_id=alpine, enabled=False, updated_by_name="Ada Admin"))
        db.session.commit()
    article_id = welcome_article(live_server, "alpine")
    login(page, live_server, *ALPINE)
    open_tinymce(page, article_id)
    page.get_by_role("button", name=IMAGE_BUTTON).click()
    frame = selector(page)
    expect(frame.get_by_role("tab", name="Documents and Media")).to_be_visible()
    expect(frame.get_by_role("tab", name="Upload")).to_be_visible()
    expect(frame.get_by_role("tab", name="Create AI Image")).to_have_count(0)
    # The site's own images are offered, never Harbour's.
    expect(frame.locator(".cm-folder-card", has_text="Mountains")).to_be_visible()
    expect(frame.locator(".cm-folder-card", has_text="Photos")).to_have_count(0)
