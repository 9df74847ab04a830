"""Instance Settings and Site Settings → AI Creator: who may see them, how keys are checked,
stored, masked and rotated, which key a site uses, and the site's usage report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import event, inspect, select, text

from cms_media.ai.providers import DEFAULT_MODEL, clear_client_cache
from cms_media.database import session
from cms_media.demo.models import db
from cms_media.encryption import SecretBox
from cms_media.models import AiSettings, GenerationJob, GenerationSlot
from cms_media.services import usage
from cms_media.services.ai_settings import resolve_access, rotate_encryption
from cms_media.testing.openai_server import OpenAICompatibleServer
from tests.conftest import dispose, make_test_app

INSTANCE_URL = "/media/settings/ai"
SITE_URL = "/media/settings/site/ai"
# Shaped like real keys; the server below accepts these two and nothing else.
INSTANCE_KEY = "sk-proj-" + "Instance7Kq2Xv9Lm4Np8Rt3Wy6Zb1Cd5Fg0Hj" + "1a2b"
SITE_KEY = "sk-proj-" + "SiteOwn3Mn8Pq2Rs7Tu4Vw9Xy1Za6Bc5De0Fgh" + "9f3c"
WRONG_KEY = "sk-proj-" + "NotKnown5Lp0Qr2St4Uv6Wx8Yz1Ab3Cd5Ef7Gh" + "dead"
FIRST_ENCRYPTION_KEY = Fernet.generate_key().decode()


def make_app(tmp_path, **config) -> Flask:
    return make_test_app(
        tmp_path,
        **{
            "CMS_MEDIA_AI_FEATURE": True,
            "CMS_MEDIA_AI_SANDBOX": False,
            "CMS_MEDIA_ENCRYPTION_KEYS": [FIRST_ENCRYPTION_KEY],
            **config,
        },
    )


@pytest.fixture
def app(tmp_path, app_config) -> Iterator[Flask]:
    """The conftest app, with the AI feature released, no sandbox and a known encryption key."""
    app = make_app(tmp_path, **app_config)
    yield app
    dispose(app)


@pytest.fixture(scope="module")
def _key_server() -> Iterator[OpenAICompatibleServer]:
    server = OpenAICompatibleServer(api_keys={INSTANCE_KEY, SITE_KEY})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def key_server(_key_server) -> Iterator[OpenAICompatibleServer]:
    """A local OpenAI-compatible server that knows INSTANCE_KEY and SITE_KEY."""
    _key_server.reset()
    yield _key_server
    _key_server.reset()
    clear_client_cache()


def instance_form(server=None, **fields) -> dict:
    """The instance form as a browser sends it; ``enabled=None`` leaves the box unticked."""
    data = {
        "enabled": "y",
        "api_key": "",
        "model": DEFAULT_MODEL,
        "base_url": server.base_url if server else "",
        "organization": "",
        "project": "",
        **fields,
    }
    return {key: value for key, value in data.items() if value is not None}


def site_form(**fields) -> dict:
    data = {"enabled": "y", "api_key": "", **fields}
    return {key: value for key, value in data.items() if value is not None}


def stored(app, site_id: str | None = None) -> AiSettings | None:
    with app.app_context():
        where = AiSettings.site_id.is_(None) if site_id is None else AiSettings.site_id == site_id
        row = session().scalar(select(AiSettings).where(where))
        if row is not None:
            session().expunge(row)
        return row


def save_instance_key(client, server, key=INSTANCE_KEY):
    response = client.hx_post(INSTANCE_URL, data=instance_form(server, api_key=key))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def save_site_key(client, key=SITE_KEY):
    response = client.hx_post(SITE_URL, data=site_form(api_key=key))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


# -- who may see the pages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "instance_status", "site_status"),
    [
        ("viewer", 404, 403),
        ("editor", 404, 403),
        ("alpine", 404, 403),
        ("siteadmin", 404, 200),
        ("admin", 200, 200),
    ],
)
def test_who_may_open_the_settings(client_for, who, instance_status, site_status):
    client = client_for(who)
    assert client.get(INSTANCE_URL).status_code == instance_status
    assert client.get(SITE_URL).status_code == site_status
    # Posting is refused the same way (before anything is read or saved).
    assert client.hx_post(INSTANCE_URL, data=instance_form()).status_code == instance_status
    assert client.hx_post(SITE_URL, data=site_form()).status_code == site_status


def test_non_admins_are_told_nothing_about_the_instance_page(client_for):
    body = client_for("siteadmin").get(INSTANCE_URL).get_data(as_text=True)
    assert "AI Creator" not in body and "OpenAI" not in body
    body = client_for("editor").get(SITE_URL).get_data(as_text=True)
    assert "Only site administrators can change this site" in body


@pytest.mark.parametrize("url", [INSTANCE_URL, SITE_URL])
def test_anonymous_users_are_sent_to_login(client_for, url):
    response = client_for(None).get(url)
    assert response.status_code in (302, 303)
    assert "/login" in response.headers["Location"]
    response = client_for(None).get(url, headers={"HX-Request": "true"})
    assert "/login" in response.headers["HX-Redirect"]


@pytest.mark.parametrize("app_config", [{"CMS_MEDIA_AI_FEATURE": False}])
def test_pages_do_not_exist_while_the_feature_is_off(client_for):
    admin = client_for("admin")
    for url in (INSTANCE_URL, SITE_URL):
        assert admin.get(url).status_code == 404
        assert admin.form_post(url, data=instance_form()).status_code == 404


def test_settings_pages_link_to_each_other(client_for, sites):
    admin = client_for("admin")
    admin.switch_site(sites["harbour"])
    for url in (INSTANCE_URL, SITE_URL):
        html = admin.get(url).get_data(as_text=True)
        assert f'href="{INSTANCE_URL}"' in html and f'href="{SITE_URL}"' in html
    html = client_for("siteadmin").get(SITE_URL).get_data(as_text=True)
    assert f'href="{SITE_URL}"' in html and INSTANCE_URL not in html


# -- the instance key -----------------------------------------------------------------------


def test_a_key_is_checked_with_the_provider_before_it_is_saved(app, client_for, key_server):
    admin = client_for("admin")
    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, api_key=WRONG_KEY))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "The key was not saved" in html
    assert "Settings saved." not in html
    assert stored(app).api_key_encrypted is None
    assert key_server.requests_to(f"/models/{DEFAULT_MODEL}")  # it really asked

    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, api_key=INSTANCE_KEY))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Settings saved." in html
    assert "A key is stored: ••••1a2b" in html
    assert 'id="cm-instance-ai"' in html and "<html" not in html  # the block, not the page
    row = stored(app)
    assert row.api_key_last4 == "1a2b"
    assert row.api_key_encrypted and INSTANCE_KEY not in row.api_key_encrypted
    assert app.extensions["cms_media"].secret_box.decrypt(row.api_key_encrypted) == INSTANCE_KEY
    assert row.base_url == key_server.base_url and row.enabled and row.model == DEFAULT_MODEL


def test_an_empty_key_keeps_the_stored_one_and_remove_clears_it(app, client_for, key_server):
    admin = client_for("admin")
    save_instance_key(admin, key_server)
    token = stored(app).api_key_encrypted

    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, organization="org-1"))
    assert response.status_code == 200
    row = stored(app)
    assert row.api_key_encrypted == token and row.organization == "org-1"
    assert "A key is stored: ••••1a2b" in response.get_data(as_text=True)

    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, remove_key="y"))
    assert response.status_code == 200
    row = stored(app)
    assert row.api_key_encrypted is None and row.api_key_last4 is None
    assert "No key: only sites with their own key can create images." in response.get_data(
        as_text=True
    )


def test_a_plain_post_redirects_to_the_page(app, client_for, key_server):
    admin = client_for("admin")
    response = admin.form_post(INSTANCE_URL, data=instance_form(key_server, project="proj_1"))
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{INSTANCE_URL}?saved=1")
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Settings saved." in page and 'value="proj_1"' in page
    assert stored(app).project == "proj_1"

    response = admin.form_post(INSTANCE_URL, data=instance_form(key_server, api_key=WRONG_KEY))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "<html" in page and "The key was not saved" in page


def test_a_refused_save_changes_nothing(app, client_for, key_server):
    admin = client_for("admin")
    save_instance_key(admin, key_server)
    # The service sets some fields before it notices the bad URL; none of them may stick.
    response = admin.hx_post(
        INSTANCE_URL, data=instance_form(enabled=None, base_url="ftp://example.com")
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "The base URL must start with https://" in html
    assert "On: sites may create AI images" in html
    row = stored(app)
    assert row.enabled and row.base_url == key_server.base_url

    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, model="dall-e-3"))
    assert response.status_code == 400
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert stored(app).model == DEFAULT_MODEL


@pytest.mark.parametrize("app_config", [{"CMS_MEDIA_AI_SANDBOX": True}])
def test_the_instance_page_says_when_the_sandbox_is_used(client_for, key_server):
    admin = client_for("admin")
    html = admin.get(INSTANCE_URL).get_data(as_text=True)
    assert "No key: the offline sandbox makes placeholder images (Sandbox — not AI)" in html
    html = save_instance_key(admin, key_server).get_data(as_text=True)
    assert "offline sandbox makes placeholder images" not in html
    assert "Configured, but not used while a key is stored." in html


# -- a site's key and switch ----------------------------------------------------------------


def test_a_site_falls_back_to_the_instance_key(app, client_for, sites, key_server):
    admin, siteadmin = client_for("admin"), client_for("siteadmin")
    html = siteadmin.get(SITE_URL).get_data(as_text=True)
    assert "Not available: No OpenAI API key is set for this site or the instance." in html

    save_instance_key(admin, key_server)
    html = siteadmin.get(SITE_URL).get_data(as_text=True)
    assert "Using the instance key ••••1a2b" in html

    response = siteadmin.hx_post(SITE_URL, data=site_form(api_key=WRONG_KEY))
    assert response.status_code == 400
    assert "The key was not saved" in response.get_data(as_text=True)
    assert stored(app, sites["harbour"]) is None

    html = save_site_key(siteadmin).get_data(as_text=True)
    assert "Settings saved." in html and "Using this site's key ••••9f3c" in html
    row = stored(app, sites["harbour"])
    assert app.extensions["cms_media"].secret_box.decrypt(row.api_key_encrypted) == SITE_KEY
    with app.test_request_context():
        access = resolve_access(sites["harbour"])
        assert (access.key_source, access.key_last4) == ("site", "9f3c")
        assert resolve_access(sites["alpine"]).key_source == "instance"

    # Empty keeps the site's key; remove falls back to the instance key again.
    siteadmin.hx_post(SITE_URL, data=site_form())
    assert stored(app, sites["harbour"]).api_key_encrypted == row.api_key_encrypted
    html = siteadmin.hx_post(SITE_URL, data=site_form(remove_key="y")).get_data(as_text=True)
    assert "Using the instance key ••••1a2b" in html
    assert stored(app, sites["harbour"]).api_key_encrypted is None


def test_a_site_can_switch_itself_off(app, client_for, sites, key_server):
    save_instance_key(client_for("admin"), key_server)
    siteadmin = client_for("siteadmin")
    response = siteadmin.hx_post(SITE_URL, data=site_form(enabled=None))
    assert response.status_code == 200
    assert "Not available: AI image creation is switched off for this site." in response.get_data(
        as_text=True
    )
    with app.test_request_context():
        access = resolve_access(sites["harbour"])
        assert not access.available
        assert access.reason == "AI image creation is switched off for this site."
        assert resolve_access(sites["alpine"]).available
    assert 'name="enabled" type="checkbox" value="y">' in siteadmin.get(SITE_URL).get_data(
        as_text=True
    )


def test_a_site_cannot_be_on_while_the_instance_is_off(app, client_for, sites, key_server):
    admin, siteadmin = client_for("admin"), client_for("siteadmin")
    response = admin.hx_post(INSTANCE_URL, data=instance_form(key_server, enabled=None))
    assert "Off: no site offers Create AI Image." in response.get_data(as_text=True)
    response = siteadmin.hx_post(SITE_URL, data=site_form(enabled="y"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Not available: AI image creation is switched off in Instance Settings." in html
    assert "Has no effect while AI image creation is switched off in Instance Settings." in html
    assert "Ask an instance administrator." in html
    assert stored(app, sites["harbour"]).enabled
    with app.test_request_context():
        assert not resolve_access(sites["harbour"]).available
    # An instance administrator gets the way there.
    admin.switch_site(sites["harbour"])
    assert f'<a href="{INSTANCE_URL}">Change it in Instance Settings</a>' in admin.get(
        SITE_URL
    ).get_data(as_text=True)


@pytest.mark.parametrize("app_config", [{"CMS_MEDIA_AI_SANDBOX": True}])
def test_a_site_without_any_key_uses_the_sandbox(client_for):
    html = client_for("siteadmin").get(SITE_URL).get_data(as_text=True)
    assert "Using the offline sandbox (no key)" in html


# -- keys never leave the database encrypted ------------------------------------------------


def _secrets() -> list[str]:
    return [
        part for key in (INSTANCE_KEY, SITE_KEY, WRONG_KEY) for part in (key, key[8:-4], key[12:30])
    ]


def _assert_no_key(where: str, text_: str) -> None:
    for secret in _secrets():
        assert secret not in text_, f"a key (or part of one) appears in {where}"


def test_keys_appear_nowhere_but_encrypted(app, client_for, sites, key_server, caplog):
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)
    admin, siteadmin, editor = client_for("admin"), client_for("siteadmin"), client_for("editor")
    admin.switch_site(sites["harbour"])
    seen: dict[str, str] = {}

    def keep(name, response):
        seen[name] = f"{response.status_code} {response.headers} {response.get_data(as_text=True)}"

    keep("instance save", save_instance_key(admin, key_server))
    keep("site save", save_site_key(siteadmin))
    # Failed saves, htmx and plain, with a wrong and with a right key in the field.
    for key in (WRONG_KEY, INSTANCE_KEY):
        keep(
            f"instance failed {key[-4:]}",
            admin.hx_post(INSTANCE_URL, data=instance_form(api_key=key, base_url="ftp://x")),
        )
        keep(
            f"instance plain failed {key[-4:]}",
            admin.form_post(INSTANCE_URL, data=instance_form(api_key=key, model="nope")),
        )
    keep(
        "instance wrong",
        admin.hx_post(INSTANCE_URL, data=instance_form(key_server, api_key=WRONG_KEY)),
    )
    keep("site wrong", siteadmin.hx_post(SITE_URL, data=site_form(api_key=WRONG_KEY)))
    keep("site plain wrong", siteadmin.form_post(SITE_URL, data=site_form(api_key=WRONG_KEY)))
    keep("site short", siteadmin.hx_post(SITE_URL, data=site_form(api_key=SITE_KEY[:12])))
    # Error responses: not allowed, not found, stale form.
    keep("editor site", editor.get(SITE_URL))
    keep("editor instance", editor.hx_post(INSTANCE_URL, data=instance_form(api_key=SITE_KEY)))
    keep("no csrf", admin.post(INSTANCE_URL, data=instance_form(api_key=INSTANCE_KEY)))
    # A generation with the site's key (decrypted at the moment of use), and its batch.
    generate = {
        "prompt": "A lighthouse",
        "count": "1",
        "size": "1024x1024",
        "quality": "auto",
        "background": "auto",
        "output_format": "png",
        "folder_id": "",
    }
    keep("generate", editor.hx_post("/media/ai/jobs", data=generate))
    assert [r.authorized for r in key_server.requests_to("images/generations")] == [True]
    # Every page that reads these settings.
    for who, client in (("admin", admin), ("siteadmin", siteadmin), ("editor", editor)):
        for url in (INSTANCE_URL, SITE_URL, "/media/", "/media/ai/create", "/"):
            keep(f"{who} {url}", client.get(url))
            keep(f"{who} {url} htmx", client.hx_get(url))

    for where, body in seen.items():
        _assert_no_key(where, body)
    assert "••••1a2b" in seen["admin /media/settings/ai"]
    assert "••••9f3c" in seen["siteadmin /media/settings/site/ai"]
    _assert_no_key("the logs", "\n".join(record.getMessage() for record in caplog.records))
    _assert_no_key("the log text", caplog.text)

    with app.app_context():
        # Every row of every table, on whichever database the suite runs.
        rows = [
            repr(row)
            for table in inspect(db.engine).get_table_names()
            for row in session().execute(text(f'SELECT * FROM "{table}"'))
        ]
    dump = "\n".join(rows)
    assert stored(app).api_key_encrypted in dump  # the rows are there, encrypted
    _assert_no_key("the database rows", dump)


# -- rotation -------------------------------------------------------------------------------


def test_rotation_re_encrypts_with_the_newest_key(app, client_for, sites, key_server):
    save_instance_key(client_for("admin"), key_server)
    save_site_key(client_for("siteadmin"))
    before = {
        row.site_id: row.api_key_encrypted for row in (stored(app), stored(app, sites["harbour"]))
    }
    new_key = Fernet.generate_key().decode()
    app.config["CMS_MEDIA_ENCRYPTION_KEYS"] = [new_key, FIRST_ENCRYPTION_KEY]
    app.extensions["cms_media"].secret_box = SecretBox([new_key, FIRST_ENCRYPTION_KEY])
    with app.app_context():
        assert rotate_encryption() == 2
    new_only = SecretBox([new_key])
    for site_id, plain in ((None, INSTANCE_KEY), (sites["harbour"], SITE_KEY)):
        token = stored(app, site_id).api_key_encrypted
        assert token != before[site_id]
        assert new_only.decrypt(token) == plain
    # The old key may now be dropped; the pages still work and still only show the last four.
    app.extensions["cms_media"].secret_box = new_only
    html = client_for("siteadmin").get(SITE_URL).get_data(as_text=True)
    assert "Using this site's key ••••9f3c" in html


# -- usage ----------------------------------------------------------------------------------


def add_job(site_id, user, when, prompt="A lighthouse", statuses=("saved",), tokens=(0, 0)):
    user_id, user_name = user
    job = GenerationJob(
        site_id=site_id,
        user_id=user_id,
        user_name=user_name,
        prompt=prompt,
        provider="openai",
        model=DEFAULT_MODEL,
        size="1024x1024",
        quality="auto",
        background="auto",
        output_format="png",
        image_count=len(statuses),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=sum(tokens),
        created_at=when,
        expires_at=when + timedelta(days=1),
    )
    job.slots = [
        GenerationSlot(
            position=position,
            status=status,
            checksum=None if status in ("failed", "pending") else f"sum{position}",
        )
        for position, status in enumerate(statuses)
    ]
    session().add(job)
    return job


@pytest.fixture
def usage_rows(app, sites):
    """Harbour: three jobs this month (two users), one last month; Alpine: one this month."""
    eve, sam = ("3", "Eve Editor"), ("2", "Sam Siteadmin")
    harbour, alpine = sites["harbour"], sites["alpine"]
    with app.app_context():
        start, _ = usage.month_bounds()
        add_job(
            harbour, eve, start - timedelta(days=2), "Last month", ("saved", "saved"), (500, 500)
        )
        add_job(
            harbour,
            eve,
            start + timedelta(minutes=1),
            "First",
            ("saved", "ready", "failed"),
            (10, 90),
        )
        add_job(harbour, sam, start + timedelta(minutes=2), "Second", ("expired",), (5, 45))
        add_job(
            harbour,
            eve,
            start + timedelta(minutes=3),
            "<script>alert(1)</script>",
            ("saved", "saved", "expired", "pending"),
            (20, 180),
        )
        add_job(alpine, sam, start + timedelta(minutes=4), "Elsewhere", ("saved",), (1000, 1000))
        session().commit()
    return {"eve": eve, "sam": sam}


def test_month_usage_and_the_breakdown_by_user(app, sites, usage_rows):
    with app.app_context():
        month = usage.month_usage(sites["harbour"])
        assert (month.generations, month.images_requested) == (3, 8)
        assert (month.images_made, month.images_kept) == (6, 3)
        assert (month.input_tokens, month.output_tokens, month.total_tokens) == (35, 315, 350)
        by_user = usage.usage_by_user(sites["harbour"])
        assert [
            (u.user_name, u.generations, u.images_made, u.images_kept, u.total_tokens)
            for u in by_user
        ] == [("Eve Editor", 2, 5, 3, 300), ("Sam Siteadmin", 1, 1, 0, 50)]
        last_month = usage.month_usage(sites["harbour"], now=month.start - timedelta(days=1))
        assert (last_month.generations, last_month.images_kept, last_month.total_tokens) == (
            1,
            2,
            1000,
        )
        recent = usage.recent_generations(sites["harbour"])
        assert [job.prompt for job in recent] == [
            "<script>alert(1)</script>",
            "Second",
            "First",
            "Last month",
        ]
        assert [(job.images_made, job.images_kept) for job in recent] == [
            (3, 2),
            (1, 0),
            (2, 1),
            (2, 2),
        ]
        assert [job.prompt for job in usage.recent_generations(sites["harbour"], limit=2)] == [
            "<script>alert(1)</script>",
            "Second",
        ]


def test_each_usage_list_is_one_query(app, sites, usage_rows):
    statements = []
    with app.app_context():
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            for function in (usage.month_usage, usage.usage_by_user, usage.recent_generations):
                statements.clear()
                function(sites["harbour"])
                assert len(statements) == 1, function.__name__
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)


def test_the_site_page_shows_usage(client_for, usage_rows):
    html = client_for("siteadmin").get(SITE_URL).get_data(as_text=True)
    usage_html = html[html.index('id="cm-usage-title"') :]
    assert "<dt>Generations</dt><dd>3</dd>" in usage_html
    assert "<dt>Images made</dt><dd>6 of 8 requested</dd>" in usage_html
    assert "<dt>Images kept</dt><dd>3</dd>" in usage_html
    assert "350 (35 input, 315 output)" in usage_html
    assert "<td>Eve Editor</td><td>2</td><td>5</td>" in usage_html
    assert "Elsewhere" not in usage_html and "2,000" not in usage_html  # the other site
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in usage_html
    positions = [usage_html.index(p) for p in ("&lt;script&gt;", "Second", "First", "Last month")]
    assert positions == sorted(positions)


def test_the_site_page_without_generations(client_for):
    html = client_for("siteadmin").get(SITE_URL).get_data(as_text=True)
    assert "Nobody created AI images in this site this month." in html
    assert "No AI images were created in this site yet." in html
