"""New → Create AI Image, end to end through the routes: the sandbox offline, and the real
OpenAI SDK over HTTP against the local OpenAI-compatible server."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cms_media.database import session
from cms_media.models import AiSettings, Document, GenerationJob, GenerationSlot, utcnow
from cms_media.services import generation
from tests.conftest import dispose, make_test_app
from tests.openai_fixtures import FAKE_OPENAI_API_KEY


def create(client, prompt="A lighthouse at dawn", count=4, **fields):
    data = {
        "prompt": prompt,
        "count": str(count),
        "size": "1024x1024",
        "quality": "auto",
        "background": "auto",
        "output_format": "png",
        "folder_id": "",
        **fields,
    }
    return client.hx_post("/media/ai/jobs", data=data)


def latest_job(app) -> GenerationJob:
    with app.app_context():
        job = session().scalar(select(GenerationJob).order_by(GenerationJob.id.desc()))
        assert job.slots is not None  # loaded before the session closes
        return job


def slots(app, job_id) -> list[GenerationSlot]:
    with app.app_context():
        return list(
            session().scalars(
                select(GenerationSlot).where(GenerationSlot.job_id == job_id).order_by("position")
            )
        )


def count(app, model) -> int:
    with app.app_context():
        return session().scalar(select(func.count()).select_from(model))


def set_instance(app, **values):
    with app.app_context():
        row = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
        for key, value in values.items():
            setattr(row, key, value)
        session().commit()


def use_openai(app, server, key=FAKE_OPENAI_API_KEY, site_id=None):
    """Store a key (encrypted, as the settings page would) and point at the local server."""
    box = app.extensions["cms_media"].secret_box
    with app.app_context():
        instance = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
        instance.base_url = server.base_url
        row = instance
        if site_id:
            row = AiSettings(site_id=site_id, enabled=True)
            session().add(row)
        row.api_key_encrypted = box.encrypt(key)
        row.api_key_last4 = key[-4:]
        session().commit()


# -- who sees the entry --------------------------------------------------------------------


def test_sandbox_entry_appears_for_editors(client_for):
    html = client_for("editor").get("/media/").get_data(as_text=True)
    assert 'id="cm-new-ai"' in html and "Create AI Image" in html


@pytest.mark.parametrize(
    ("change", "who"),
    [
        ("nothing", "viewer"),  # may view, may not add
        ("instance_off", "editor"),
        ("site_off", "editor"),
        ("no_key_no_sandbox", "editor"),
    ],
)
def test_entry_and_routes_absent_unless_everything_holds(app, client_for, sites, change, who):
    if change == "instance_off":
        set_instance(app, enabled=False)
    elif change == "site_off":
        with app.app_context():
            session().add(AiSettings(site_id=sites["harbour"], enabled=False))
            session().commit()
    elif change == "no_key_no_sandbox":
        app.config["CMS_MEDIA_AI_SANDBOX"] = False
    client = client_for(who)
    assert 'id="cm-new-ai"' not in client.get("/media/").get_data(as_text=True)
    expected = 403 if who == "viewer" else 404
    assert client.hx_get("/media/ai/create").status_code == expected
    assert create(client).status_code in (400, expected)  # CSRF passes, then refused
    assert count(app, GenerationJob) == 0


def test_release_flag_off_removes_everything(tmp_path):
    app = make_test_app(tmp_path, CMS_MEDIA_AI_FEATURE=False)
    client = app.test_client().login("admin")
    assert "Create AI Image" not in client.get("/media/").get_data(as_text=True)
    assert "cm-tab-ai" not in client.get("/media/selector/").get_data(as_text=True)
    for url in ("/media/ai/create", "/media/settings/ai", "/media/settings/site/ai"):
        assert client.get(url).status_code == 404
    dispose(app)


# -- the sandbox flow ----------------------------------------------------------------------


def test_generate_four_select_two_add_selected(app, client_for):
    client = client_for("editor")
    client.hx_post("/media/folders", data={"name": "AI"})
    with app.app_context():
        from cms_media.models import Folder

        folder_id = session().scalar(select(Folder.id))

    panel = client.hx_get(f"/media/ai/create?folder_id={folder_id}").get_data(as_text=True)
    assert 'id="cm-ai-prompt"' in panel and "Sandbox — not AI" in panel

    response = create(client, count=4, folder_id=str(folder_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    job = latest_job(app)
    assert (job.provider, job.image_count, job.folder_id) == ("sandbox", 4, folder_id)
    ready = slots(app, job.id)
    assert [slot.status for slot in ready] == ["ready"] * 4
    html = response.get_data(as_text=True)
    assert html.count('name="slot"') == 4 and "Try again" in html
    thumb = client.get(f"/media/ai/slots/{ready[0].id}/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"

    chosen = ready[1:3]
    saved = client.hx_post(
        f"/media/ai/jobs/{job.id}/save",
        data={
            "slot": [str(slot.id) for slot in chosen],
            f"title-{chosen[0].id}": "Lighthouse one",
            f"description-{chosen[0].id}": "",
            "folder_id": str(folder_id),
        },
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.headers["HX-Trigger"] == "cms-media:changed"
    assert "2 images added to Documents and Media." in saved.get_data(as_text=True)
    with app.app_context():
        documents = list(session().scalars(select(Document).order_by(Document.id)))
    assert [d.title for d in documents] == ["Lighthouse one", "A lighthouse at dawn"]
    first = documents[0]
    assert first.source == "ai" and first.folder_id == folder_id
    assert first.created_by_name == "Eve Editor"
    meta = first.generation
    assert meta["prompt"] == "A lighthouse at dawn" and meta["provider"] == "sandbox"
    assert meta["size"] == "1024x1024" and meta["job_id"] == job.id and meta["generated_by_ai"]
    assert meta["created_by"] == "Eve Editor" and meta["sandbox"] == "Sandbox — not AI"
    assert "usage_total_tokens" in meta
    assert [s.status for s in slots(app, job.id)] == ["ready", "saved", "saved", "ready"]
    # The saved drafts are gone from storage; the two unsaved ones stay until they expire.
    assert client.get(f"/media/ai/slots/{chosen[0].id}/thumbnail").status_code == 404
    assert client.get(f"/media/ai/slots/{ready[0].id}/thumbnail").status_code == 200

    again = client.hx_post(f"/media/ai/jobs/{job.id}/save", data={"slot": [str(chosen[0].id)]})
    assert "0 images added" in again.get_data(as_text=True)
    assert count(app, Document) == 2  # a slot becomes one document at most


def test_try_again_keeps_earlier_batches_reachable(app, client_for):
    client = client_for("editor")
    create(client, prompt="First idea", count=2)
    first = latest_job(app)
    response = create(client, prompt="Second idea", count=1)
    html = response.get_data(as_text=True)
    assert "Earlier batches" in html and "First idea" in html
    for slot in slots(app, first.id):
        assert f'id="cm-slot-{slot.id}"' in html
    # Reopening the modal (or reloading the page) shows the latest batch and the earlier one.
    reopened = client.hx_get("/media/ai/create").get_data(as_text=True)
    assert "Second idea" in reopened and "First idea" in reopened
    page = client.get(f"/media/ai/jobs/{first.id}").get_data(as_text=True)
    assert "<html" in page and "First idea" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": "   "}, "Describe the image you want."),
        ({"prompt": "x" * 1001}, "at most 1000 characters"),
        ({"count": "0"}, "between 1 and 4"),
        ({"count": "5"}, "between 1 and 4"),
        ({"count": "many"}, "between 1 and 4"),
        ({"size": "4096x4096"}, "Check the highlighted"),
        ({"background": "transparent", "output_format": "jpeg"}, "JPEG has no transparency"),
    ],
)
def test_bad_form_values_queue_nothing(app, client_for, fields, message):
    response = create(client_for("editor"), **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert count(app, GenerationJob) == 0


def test_prompt_is_escaped_everywhere(app, client_for):
    client = client_for("editor")
    response = create(client, prompt="<script>alert(1)</script>", count=1)
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_jobs_of_other_users_and_sites_are_not_found(app, client_for, sites):
    create(client_for("editor"), count=1)
    job = latest_job(app)
    slot = slots(app, job.id)[0]
    for who in ("siteadmin", "alpine"):
        other = client_for(who)
        assert other.get(f"/media/ai/jobs/{job.id}").status_code == 404
        assert other.get(f"/media/ai/slots/{slot.id}/thumbnail").status_code == 404
        assert (
            other.hx_post(
                f"/media/ai/jobs/{job.id}/save", data={"slot": [str(slot.id)]}
            ).status_code
            == 404
        )


def test_sandbox_refusal_is_a_clear_message(app, client_for):
    response = create(client_for("editor"), prompt="something forbidden", count=2)
    html = response.get_data(as_text=True)
    assert html.count("refused by the provider&#39;s content policy") == 2
    assert "Retry" in html


# -- the long-poll -------------------------------------------------------------------------


def test_poll_returns_only_changed_slots_out_of_band(app, client_for):
    app.config["CMS_MEDIA_AI_POLL_SECONDS"] = 0.2
    app.extensions["cms_media"].queue.huey.immediate = False  # queued, not run yet
    client = client_for("editor")
    html = create(client, count=2).get_data(as_text=True)
    job = latest_job(app)
    first, second = slots(app, job.id)
    poll_url = (
        re.search(r'hx-get="(/media/ai/jobs/\d+/poll\?v=[^"]+)"', html)
        .group(1)
        .replace("&amp;", "&")
    )

    unchanged = client.hx_get(poll_url).get_data(as_text=True)  # waits 0.2 s, nothing new
    assert "hx-swap-oob" not in unchanged and 'hx-trigger="load"' in unchanged

    with app.app_context():
        generation.run_slot(first.id)
    changed = client.hx_get(poll_url).get_data(as_text=True)
    assert f'id="cm-slot-{first.id}"' in changed and f'id="cm-slot-{second.id}"' not in changed
    assert 'hx-swap-oob="true"' in changed and 'hx-trigger="load"' in changed

    with app.app_context():
        generation.run_slot(second.id)
    done = client.hx_get(poll_url).get_data(as_text=True)
    assert 'hx-trigger="load"' not in done  # all finished: polling stops


# -- jobs: idempotency, restarts, expiry -----------------------------------------------------


def test_a_redelivered_slot_is_not_generated_twice(app, client_for, openai_server):
    use_openai(app, openai_server)
    create(client_for("editor"), count=1)
    job = latest_job(app)
    (slot,) = slots(app, job.id)
    with app.app_context():
        assert generation.run_slot(slot.id) == "skipped"
    assert len(openai_server.requests_to("/images/generations")) == 1


def test_interrupted_slots_are_resumed_or_failed(app, client_for):
    app.extensions["cms_media"].queue.huey.immediate = False
    create(client_for("editor"), count=2)
    job = latest_job(app)
    first, second = slots(app, job.id)
    long_ago = utcnow() - timedelta(hours=1)
    with app.app_context():
        for slot_id, attempts in ((first.id, 1), (second.id, 2)):
            slot = session().get(GenerationSlot, slot_id)
            slot.status, slot.started_at, slot.attempts = "running", long_ago, attempts
        session().commit()
        app.extensions["cms_media"].queue.huey.immediate = True
        assert generation.recover_interrupted() == 2
    first, second = slots(app, job.id)
    assert first.status == "ready"  # queued again and made
    assert second.status == "failed" and "interrupted" in second.error_message


def test_expired_drafts_are_removed_but_documents_stay(app, client_for):
    client = client_for("editor")
    create(client, count=2)
    job = latest_job(app)
    keep, drop = slots(app, job.id)
    client.hx_post(f"/media/ai/jobs/{job.id}/save", data={"slot": [str(keep.id)]})
    with app.app_context():
        session().get(GenerationJob, job.id).expires_at = utcnow() - timedelta(minutes=1)
        session().commit()
    result = app.test_cli_runner().invoke(args=["cms-media", "cleanup-drafts"])
    assert "Expired 1 draft images." in result.output
    keep, drop = slots(app, job.id)
    assert (keep.status, drop.status, drop.draft_key) == ("saved", "expired", None)
    storage = app.extensions["cms_media"].storage
    drafts = [p for p in storage.root.rglob("*") if p.is_file() and "drafts" in p.parts]
    assert drafts == []
    assert count(app, Document) == 1
    assert "First idea" not in client.hx_get("/media/ai/create").get_data(as_text=True)


# -- through the real SDK ----------------------------------------------------------------


def test_openai_generation_through_the_sdk(app, client_for, openai_server):
    use_openai(app, openai_server)
    client = client_for("editor")
    response = create(client, count=2, size="512x512", quality="low", output_format="webp")
    assert response.status_code == 200
    job = latest_job(app)
    assert job.provider == "openai" and job.total_tokens > 0
    made = slots(app, job.id)
    assert [(s.status, s.width, s.height, s.mime_type) for s in made] == [
        ("ready", 512, 512, "image/webp")
    ] * 2
    sent = openai_server.requests_to("/images/generations")
    assert len(sent) == 2
    body = sent[0].body
    assert body["size"] == "1024x1024" and body["n"] == 1 and body["quality"] == "low"
    assert "response_format" not in body
    # Privacy: a keyed hash, never the user's id, name or e-mail.
    assert re.fullmatch(r"[0-9a-f]{64}", body["safety_identifier"])
    flat = str(body)
    assert "editor@example.com" not in flat and "Eve" not in flat

    client.hx_post(f"/media/ai/jobs/{job.id}/save", data={"slot": [str(made[0].id)]})
    with app.app_context():
        document = session().scalar(select(Document))
    meta = document.generation
    assert meta["provider"] == "openai" and meta["model"] == job.model
    saved_slot = slots(app, job.id)[0]
    assert meta["usage_total_tokens"] == saved_slot.total_tokens > 0
    assert job.total_tokens == sum(slot.total_tokens for slot in slots(app, job.id))
    assert "sandbox" not in meta


def test_site_key_is_used_before_the_instance_key(app, client_for, openai_server, sites):
    use_openai(app, openai_server, key="sk-instance-key-" + "a" * 30)  # rejected by the server
    use_openai(app, openai_server, site_id=sites["harbour"])  # the good key, for this site
    create(client_for("editor"), count=1)
    assert slots(app, latest_job(app).id)[0].status == "ready"


ERRORS = [
    (
        "moderation",
        "The description was refused by the provider's content policy. Rephrase it and try again.",
    ),
    ("quota", "This site has reached its AI image quota. Ask a site administrator."),
    ("rate_limit", "The provider is busy; try again in a minute."),
    ("server_error", "The image provider is unavailable right now."),
    ("malformed_json", "The image provider returned an unusable image."),
    ("not_image", "The image provider returned an unusable image."),
]


@pytest.mark.parametrize(("kind", "message"), ERRORS, ids=[kind for kind, _ in ERRORS])
def test_provider_errors_show_their_message(app, client_for, openai_server, kind, message):
    use_openai(app, openai_server)
    response = create(client_for("editor"), prompt=f"A harbour [[fail:{kind}]]", count=1)
    html = response.get_data(as_text=True)
    (slot,) = slots(app, latest_job(app).id)
    assert slot.status == "failed" and slot.error_message.startswith(message.split(".")[0])
    assert message.replace("'", "&#39;") in html
    assert FAKE_OPENAI_API_KEY not in html and "Traceback" not in html


def test_rate_limits_are_retried_before_failing(app, client_for, openai_server):
    use_openai(app, openai_server)
    openai_server.fail_next("rate_limit", times=1)
    create(client_for("editor"), count=1)
    assert slots(app, latest_job(app).id)[0].status == "ready"
    assert len(openai_server.requests_to("/images/generations")) == 2


def test_rejected_key_editors_and_admins_see_different_messages(app, client_for, openai_server):
    use_openai(app, openai_server, key="sk-revoked-" + "b" * 40)
    editor_html = create(client_for("editor"), count=1).get_data(as_text=True)
    assert "AI image creation is not configured correctly; ask an administrator." in editor_html
    assert "For administrators" not in editor_html
    admin = client_for("siteadmin")
    admin_html = create(admin, count=1).get_data(as_text=True)
    assert "For administrators" in admin_html and "API key" in admin_html
    assert "sk-revoked" not in admin_html and "b" * 40 not in admin_html


def test_timeout_fails_one_slot_keeps_the_other_and_retry_works(app, client_for, openai_server):
    use_openai(app, openai_server)
    app.config.update(CMS_MEDIA_AI_TIMEOUT=0.5, CMS_MEDIA_AI_MAX_RETRIES=0)
    openai_server.hang_seconds = 2
    openai_server.fail_next("timeout", times=1)
    client = client_for("editor")
    html = create(client, count=2).get_data(as_text=True)
    job = latest_job(app)
    statuses = sorted(slot.status for slot in slots(app, job.id))
    assert statuses == ["failed", "ready"]
    failed = next(slot for slot in slots(app, job.id) if slot.status == "failed")
    assert "took too long" in failed.error_message and "Retry" in html
    retried = client.hx_post(f"/media/ai/slots/{failed.id}/retry")
    assert retried.status_code == 200
    assert [slot.status for slot in slots(app, job.id)] == ["ready", "ready"]


COMBINATIONS = [
    (flag, instance_on, site_on, key, who)
    for flag in (True, False)
    for instance_on in (True, False)
    for site_on in (True, False)
    for key in ("instance", "site", "sandbox", "none")
    for who in ("editor", "viewer")
]


@pytest.mark.parametrize(("flag", "instance_on", "site_on", "key", "who"), COMBINATIONS)
def test_every_settings_combination(tmp_path, flag, instance_on, site_on, key, who):
    """The entry shows exactly when flag, instance, site, a key (or the sandbox) and the
    user's add right all hold; the routes agree with what the page shows."""
    app = make_test_app(
        tmp_path, CMS_MEDIA_AI_FEATURE=flag, CMS_MEDIA_AI_SANDBOX=(key == "sandbox")
    )
    box = app.extensions["cms_media"].secret_box
    with app.app_context():
        from cms_media.demo.models import Site

        harbour = str(session().scalar(select(Site.id).where(Site.slug == "harbour")))
        instance = session().scalar(select(AiSettings).where(AiSettings.site_id.is_(None)))
        instance.enabled = instance_on
        site = AiSettings(site_id=harbour, enabled=site_on)
        session().add(site)
        if key in ("instance", "site"):
            row = instance if key == "instance" else site
            row.api_key_encrypted, row.api_key_last4 = box.encrypt("sk-test-" + "k" * 40), "kkkk"
        session().commit()
    client = app.test_client().login(who)
    expected = flag and instance_on and site_on and key != "none" and who == "editor"
    shown = 'id="cm-new-ai"' in client.get("/media/").get_data(as_text=True)
    assert shown == expected
    assert ("cm-tab-ai" in client.get("/media/selector/").get_data(as_text=True)) == expected
    status = client.hx_get("/media/ai/create").status_code
    assert (status == 200) == expected
    if not expected:
        assert status in (403, 404)
    dispose(app)


def test_an_unusable_image_leaves_no_draft_file(app, client_for, openai_server):
    use_openai(app, openai_server)
    create(client_for("editor"), prompt="A harbour [[fail:not_image]]", count=2)
    assert [slot.status for slot in slots(app, latest_job(app).id)] == ["failed", "failed"]
    root = app.extensions["cms_media"].storage.root
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]
