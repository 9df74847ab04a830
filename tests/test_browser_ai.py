"""The AI Creator in a real browser: New → Create AI Image, candidates arriving one by one over
the long-poll, Add Selected, the saved metadata, Try Again with earlier batches, and the real
OpenAI SDK against the local OpenAI-compatible server (a refusal, then a kept image).

The app runs with an in-memory Huey queue and an embedded consumer (``ai_live_server``), so
candidates are made by worker threads exactly as in production, just faster.

``CMS_MEDIA_AI_SCREENSHOT=docs/ai-creator.png`` also saves the modal with four ready
candidates there.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cms_media.ai.providers import DEFAULT_MODEL
from cms_media.database import session
from cms_media.models import AiSettings, GenerationSlot
from tests.browser_fixtures import login
from tests.openai_fixtures import FAKE_OPENAI_API_KEY

pytestmark = pytest.mark.browser

EDITOR = ("editor@example.com", "editor-demo")
PROMPT = "A lighthouse at dawn, watercolour, gulls over the harbour"
SECOND_PROMPT = "A lighthouse at night, ink drawing, stars over the harbour"
REFUSED = (
    "The description was refused by the provider's content policy. Rephrase it and try again."
)
# Four staggered sandbox images take about 2 s; leave room for a slow machine.
READY_TIMEOUT_MS = 15_000


@pytest.fixture
def live_server(ai_live_server):
    """This module's ``page`` talks to the app with the job queue running."""
    return ai_live_server


# -- helpers ------------------------------------------------------------------------------

# Records every state each candidate <li> is seen in (they are replaced by out-of-band swaps,
# so watch the whole dialog), with the time it was first seen in that state.
WATCH_SLOTS = """
() => {
  window.__cmSlotHistory = [];
  const last = new Map();
  const record = () => {
    const now = performance.now();
    for (const li of document.querySelectorAll('#cm-ai li.cm-slot')) {
      const state = [...li.classList].find(c => c.startsWith('cm-slot-')).slice(8);
      if (last.get(li.id) !== state) {
        last.set(li.id, state);
        window.__cmSlotHistory.push({id: li.id, state, t: now});
      }
    }
  };
  new MutationObserver(record).observe(document.getElementById('cm-ai'),
    {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
}
"""

IMAGES_LOADED = """
(selector) => {
  const images = [...document.querySelectorAll(selector)];
  return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);
}
"""

ELEMENT_IDS = "elements => elements.map(e => e.id)"

METADATA = """
() => [...document.querySelectorAll('#cm-details dl.cm-meta dt')]
  .map(dt => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()])
"""


def open_library(page):
    page.get_by_role("navigation", name="Demo CMS").get_by_role(
        "link", name="Documents and Media"
    ).click()
    expect(page.locator("#cm-results")).to_be_visible()


def open_creator(page):
    """New → Create AI Image; returns the dialog once its form is loaded."""
    page.locator("details.cm-menu > summary", has_text="New").click()
    page.get_by_role("menuitem", name="Create AI Image", exact=True).click()
    dialog = page.locator("#cm-ai")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#cm-ai-prompt")).to_be_visible()
    return dialog


def current_batch(dialog):
    """The batch shown under the form (not one of the earlier batches)."""
    return dialog.locator("#cm-ai-creator > section.cm-batch")


def submit_button(dialog):
    return dialog.locator("form.cm-ai-form button[type=submit]")


def start(dialog, prompt: str, count: int):
    dialog.locator("#cm-ai-prompt").fill(prompt)
    number = dialog.get_by_label("Number of images")
    number.fill(str(count))
    expect(number).to_have_value(str(count))
    submit_button(dialog).click()
    batch = current_batch(dialog)
    expect(batch.locator(".cm-batch-prompt")).to_have_text(f"“{prompt}”")
    expect(batch.locator("li.cm-slot")).to_have_count(count)
    return batch


def wait_for_thumbnails(page, batch_id: str, count: int):
    batch = page.locator(f"#{batch_id}")
    expect(batch.locator("li.cm-slot-ready")).to_have_count(count, timeout=READY_TIMEOUT_MS)
    page.wait_for_function(IMAGES_LOADED, arg=f"#{batch_id} li.cm-slot-ready img")


def card(page, title: str):
    return page.locator("#cm-results .cm-card").filter(
        has=page.locator(".cm-card-title", has_text=re.compile(f"^{re.escape(title)}$"))
    )


def metadata(page) -> dict[str, list[str]]:
    pairs: dict[str, list[str]] = {}
    for label, value in page.evaluate(METADATA):
        pairs.setdefault(label, []).append(value)
    return pairs


def finish_order(live_server, slot_ids: list[int]) -> list[int]:
    """Slot ids in the order the workers finished them (by the database)."""
    with live_server.app.app_context():
        slots = session().scalars(select(GenerationSlot).where(GenerationSlot.id.in_(slot_ids)))
        return [slot.id for slot in sorted(slots, key=lambda slot: slot.finished_at)]


# -- the sandbox, end to end ---------------------------------------------------------------


def test_create_four_keep_two_then_try_again(page, live_server):
    navigations = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(1))
    login(page, live_server, *EDITOR)
    open_library(page)
    documents_before = page.locator("#cm-results .cm-card").count()
    page.evaluate("window.__cmsMediaNoReload = true")  # a page load would wipe this out
    navigations.clear()

    dialog = open_creator(page)
    expect(dialog.locator(".cm-sandbox-note")).to_contain_text("Sandbox — not AI")
    prompt = dialog.locator("#cm-ai-prompt")
    counter = dialog.locator("#cm-ai-counter")
    expect(counter).to_have_text("0 / 1000 characters")
    prompt.press_sequentially("A lighthouse")  # key by key: the counter follows each one
    expect(counter).to_have_text("12 / 1000 characters")
    prompt.press_sequentially(PROMPT[12:])
    expect(counter).to_have_text(f"{len(PROMPT)} / 1000 characters")
    number = dialog.get_by_label("Number of images")
    number.fill("4")
    expect(number).to_have_value("4")
    page.evaluate(WATCH_SLOTS)
    submit_button(dialog).click()

    # Four candidates in a progress state at once, then each thumbnail as it is finished.
    batch = current_batch(dialog)
    slots = batch.locator("li.cm-slot")
    expect(slots).to_have_count(4)
    expect(batch.locator('li.cm-slot[aria-busy="true"]')).not_to_have_count(0)
    batch_id = batch.get_attribute("id")
    wait_for_thumbnails(page, batch_id, 4)
    slot_ids = [int(i.removeprefix("cm-slot-")) for i in slots.evaluate_all(ELEMENT_IDS)]

    history = page.evaluate("window.__cmSlotHistory")
    first_seen = {}
    ready_at = {}
    for entry in history:
        first_seen.setdefault(entry["id"], entry["state"])
        if entry["state"] == "ready":
            ready_at.setdefault(entry["id"], entry["t"])
    for slot_id in slot_ids:
        assert first_seen[f"cm-slot-{slot_id}"] in ("pending", "running"), history
    arrivals = [ready_at[f"cm-slot-{slot_id}"] for slot_id in finish_order(live_server, slot_ids)]
    assert arrivals == sorted(arrivals), f"shown out of finishing order: {history}"
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    separate_swaps = 1 + sum(gap > 100 for gap in gaps)  # milliseconds
    assert separate_swaps >= 3, f"thumbnails did not arrive one by one: {history}"
    assert arrivals[-1] - arrivals[0] > 500, history
    # No page load: the same document, the description still typed in the form.
    assert page.evaluate("window.__cmsMediaNoReload === true")
    assert navigations == []
    expect(prompt).to_have_value(PROMPT)
    expect(batch.locator(".cm-badge-sandbox")).to_have_text("Sandbox — not AI")
    if os.environ.get("CMS_MEDIA_AI_SCREENSHOT"):
        page.screenshot(path=os.environ["CMS_MEDIA_AI_SCREENSHOT"])

    # Tick two: one with the mouse, one with the keyboard.
    first_box = slots.nth(0).get_by_role("checkbox")
    first_box.check()
    third_box = slots.nth(2).get_by_role("checkbox")
    third_box.focus()
    page.keyboard.press("Space")
    expect(first_box).to_be_checked()
    expect(third_box).to_be_checked()
    expect(slots.nth(1).get_by_role("checkbox")).not_to_be_checked()
    batch.get_by_role("button", name="Add Selected").click()
    expect(batch.locator(".cm-notice")).to_have_text("2 images added to Documents and Media.")
    expect(dialog).to_be_hidden()
    expect(card(page, PROMPT)).to_have_count(2)
    expect(page.locator("#cm-results .cm-card")).to_have_count(documents_before + 2)
    page.wait_for_function(IMAGES_LOADED, arg="#cm-results .cm-card img")
    assert page.evaluate("window.__cmsMediaNoReload === true")

    # The detail page keeps how the image was made.
    card(page, PROMPT).first.locator("a").first.click()
    page.wait_for_url(re.compile(r"/media/documents/\d+"))
    expect(page.locator(".cm-title").first).to_contain_text(PROMPT)
    meta = metadata(page)
    assert meta["Source"] == ["Generated with AI"]
    assert meta["Prompt"] == [PROMPT]
    assert meta["Provider"] == ["sandbox"]
    assert meta["Model"] == ["sandbox"]
    assert meta["Requested size"] == ["1024x1024"]
    assert meta["Note"] == ["Sandbox — not AI"]
    assert "Tokens used" not in meta  # the sandbox bills nothing
    assert meta["Dimensions"] == ["1024 × 1024 px"]
    page.wait_for_function(IMAGES_LOADED, arg=".cm-preview img")

    # Try again: the first batch stays reachable under "Earlier batches".
    open_library(page)
    dialog = open_creator(page)
    reopened = current_batch(dialog)
    expect(reopened.locator(".cm-batch-prompt")).to_have_text(f"“{PROMPT}”")
    expect(reopened.locator("li.cm-slot-saved")).to_have_count(2)
    expect(dialog.locator("#cm-ai-prompt")).to_have_value(PROMPT)  # ready to edit
    expect(submit_button(dialog)).to_have_text("Try again")
    second = start(dialog, SECOND_PROMPT, 4)
    second_id = second.get_attribute("id")
    assert second_id != batch_id
    wait_for_thumbnails(page, second_id, 4)

    earlier = dialog.locator("section.cm-earlier details.cm-earlier-batch").filter(
        has=page.locator(f"#{batch_id}")
    )
    expect(earlier).to_have_count(1)
    expect(earlier.locator(":scope > summary")).to_contain_text("2 ready")
    earlier.locator(":scope > summary").click()
    old = earlier.locator(f"#{batch_id}")
    expect(old.locator("li.cm-slot-saved")).to_have_count(2)
    expect(old.locator("li.cm-slot-saved").first).to_contain_text("added to Documents and Media")
    leftovers = old.locator("li.cm-slot-ready").get_by_role("checkbox")
    expect(leftovers).to_have_count(2)
    page.wait_for_function(IMAGES_LOADED, arg=f"#{batch_id} li.cm-slot-ready img")
    leftovers.nth(1).check()
    expect(leftovers.nth(1)).to_be_checked()
    old.get_by_role("button", name="Add Selected").click()
    expect(old.locator(".cm-notice")).to_have_text("1 image added to Documents and Media.")
    expect(dialog).to_be_hidden()
    expect(card(page, PROMPT)).to_have_count(3)
    expect(card(page, SECOND_PROMPT)).to_have_count(0)


# -- the real SDK against the local OpenAI-compatible server ---------------------------------


def use_local_openai(live_server, server, key: str = FAKE_OPENAI_API_KEY) -> None:
    """An instance key for the local server, stored as the settings page stores it."""
    app = live_server.app
    with app.app_context():
        row = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
        if row is None:
            row = AiSettings(site_id=None)
            session().add(row)
        row.enabled = True
        row.base_url = server.base_url
        row.api_key_encrypted = app.extensions["cms_media"].secret_box.encrypt(key)
        row.api_key_last4 = key[-4:]
        session().commit()


# ``openai_server`` first, so it is torn down after the app and its queue workers.
def test_openai_refusal_then_keep_one(openai_server, page, live_server):
    openai_server.latency = 0.3  # per image: the progress state can be seen
    use_local_openai(live_server, openai_server)
    login(page, live_server, *EDITOR)
    open_library(page)
    dialog = open_creator(page)
    expect(dialog.locator(".cm-sandbox-note")).to_have_count(0)

    refused = start(dialog, "A red fox in the snow [[fail:moderation]]", 2)
    failed = refused.locator("li.cm-slot-failed")
    expect(failed).to_have_count(2, timeout=READY_TIMEOUT_MS)
    for index in range(2):
        expect(failed.nth(index).get_by_role("alert")).to_have_text(
            f"Candidate {index + 1}: {REFUSED}"
        )
    expect(refused.locator("li.cm-slot-ready")).to_have_count(0)

    batch = start(dialog, "A red fox in the snow", 2)
    batch_id = batch.get_attribute("id")
    wait_for_thumbnails(page, batch_id, 2)
    expect(batch.locator(".cm-muted").first).to_contain_text(DEFAULT_MODEL)
    batch.locator("li.cm-slot").nth(1).get_by_role("checkbox").check()
    batch.get_by_role("button", name="Add Selected").click()
    expect(batch.locator(".cm-notice")).to_have_text("1 image added to Documents and Media.")
    expect(dialog).to_be_hidden()
    expect(card(page, "A red fox in the snow")).to_have_count(1)

    card(page, "A red fox in the snow").locator("a").first.click()
    page.wait_for_url(re.compile(r"/media/documents/\d+"))
    meta = metadata(page)
    assert meta["Provider"] == ["openai"]
    assert meta["Model"] == [DEFAULT_MODEL]
    assert meta["Candidate"] == ["2"]
    assert "Sandbox" not in meta
    page.wait_for_function(IMAGES_LOADED, arg=".cm-preview img")

    # Two refused calls (a refusal is not retried), two images; every call with the key.
    calls = openai_server.requests_to("images/generations")
    assert len(calls) == 4
    assert all(call.authorized for call in calls)
