"""Generation requests are limited per user and per site; the answer is a 429 that htmx
shows in the creator, and nothing is queued."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cms_media.database import session
from cms_media.models import GenerationJob
from tests.conftest import dispose, make_test_app


def generate(client):
    return client.hx_post(
        "/media/ai/jobs",
        data={
            "prompt": "A kite",
            "count": "1",
            "size": "256x256",
            "quality": "auto",
            "background": "auto",
            "output_format": "png",
        },
    )


def jobs(app) -> int:
    with app.app_context():
        return session().scalar(select(func.count(GenerationJob.id)))


@pytest.fixture
def app_config():
    return {
        "CMS_MEDIA_AI_LIMIT_PER_USER": "2 per minute",
        "CMS_MEDIA_AI_LIMIT_PER_SITE": "3 per minute",
    }


def test_per_user_then_per_site(app, client_for):
    editor, admin = client_for("editor"), client_for("siteadmin")
    assert [generate(editor).status_code for _ in range(2)] == [200, 200]
    refused = generate(editor)
    assert refused.status_code == 429
    assert refused.headers["HX-Retarget"] == "#cm-ai-notice"
    assert "Wait a minute" in refused.get_data(as_text=True)
    assert "Retry-After" in refused.headers
    assert jobs(app) == 2
    # Another user of the same site has their own allowance, up to the site's.
    assert generate(admin).status_code == 200
    assert generate(admin).status_code == 429  # the site's 3 per minute are used up
    assert jobs(app) == 3


def test_other_sites_are_counted_apart(app, client_for):
    editor, alpine = client_for("editor"), client_for("alpine")
    for _ in range(2):
        generate(editor)
    assert generate(editor).status_code == 429
    assert generate(alpine).status_code == 200


@pytest.mark.service
def test_web_servers_share_the_counts_through_redis(tmp_path, clean_redis):
    config = {
        "CMS_MEDIA_AI_LIMIT_PER_USER": "2 per minute",
        "CMS_MEDIA_RATELIMIT_STORAGE_URI": clean_redis,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'shared.db'}",
    }
    first = make_test_app(tmp_path / "a", **config)
    second = make_test_app(
        tmp_path / "b", **{**config, "CMS_MEDIA_STORAGE_ROOT": str(tmp_path / "a" / "media")}
    )
    on_first = first.test_client().login("editor")
    on_second = second.test_client().login("editor")
    assert generate(on_first).status_code == 200
    assert generate(on_second).status_code == 200
    assert generate(on_first).status_code == 429
    assert generate(on_second).status_code == 429
    first.extensions["cms_media"].limiter.reset()
    dispose(first)
    dispose(second)
