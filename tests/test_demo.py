"""The demo host: seeding, signing in and out, and switching sites."""

from __future__ import annotations

from sqlalchemy import func, select

from cms_media.database import session
from cms_media.demo.cli import seed
from cms_media.demo.models import Membership, User
from cms_media.models import Document, Folder


def counts(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            session().scalar(select(func.count()).select_from(model))
            for model in (User, Membership, Folder, Document)
        )


def test_seed_twice_creates_everything_once(app):
    with app.app_context():
        credentials = seed()
    first = counts(app)
    assert first == (5, 4, 2, 6)
    assert ("editor@example.com", "editor-demo", "content editor of Harbour News") in credentials
    with app.app_context():
        seed()
    assert counts(app) == first


def test_seed_command_prints_the_passwords(app):
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    assert "viewer@example.com" in result.output and "viewer-demo" in result.output


def test_sign_in_dashboard_and_sign_out(client_for):
    client = client_for("editor")
    home = client.get("/").get_data(as_text=True)
    assert "Welcome, Eve Editor" in home and "Content editor" in home
    assert client.post("/logout", data={"csrf_token": client.token()}).status_code == 302
    assert client.get("/media/").status_code == 303


def test_site_switcher_lists_only_member_sites(client_for):
    html = client_for("editor").get("/media/").get_data(as_text=True)
    assert "Harbour News" in html and "Alpine Journal" not in html
    admin = client_for("admin").get("/media/").get_data(as_text=True)
    assert "Harbour News" in admin and "Alpine Journal" in admin
