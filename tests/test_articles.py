"""Web content in the demo host: the rich-text sanitiser and the article routes
(role × route × site, CSRF, validation), plus the editor pages' script wiring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cms_media.demo.articles import Article, seed_articles
from cms_media.demo.articles import bp as articles_bp
from cms_media.demo.models import Site, db
from cms_media.sanitize import clean_rich_text

TEMPLATES = Path(__file__).resolve().parent.parent / "cms_media/demo/templates/demo/articles"
EDITORS_JS = Path(__file__).resolve().parent.parent / "cms_media/static/cms_media/editors"

# -- the sanitiser ------------------------------------------------------------------------

DANGEROUS = {
    "img onerror": "<img src=x onerror=alert(1)>",
    "javascript link": '<a href="javascript:alert(1)">click</a>',
    "javascript link, mixed case and tab": '<a href="  JaVa&#x09;ScRipt:alert(1)">click</a>',
    "vbscript link": '<a href="vbscript:msgbox(1)">click</a>',
    "script": "<script>alert(1)</script>",
    "script, upper case": "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "svg onload": "<svg onload=alert(1)><circle r=4 /></svg>",
    "svg script": "<svg><script>alert(1)</script></svg>",
    "style attribute": '<p style="background:url(javascript:alert(1))">x</p>',
    "style element": "<style>body{background:red}</style>",
    "data: image": '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "data: link": '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>',
    "event handler on allowed tag": '<p onclick="alert(1)" onmouseover="alert(1)">x</p>',
    "iframe": '<iframe src="javascript:alert(1)"></iframe>',
    "object": '<object data="javascript:alert(1)"></object>',
    "form action": '<form action="javascript:alert(1)"><button>go</button></form>',
    "math href": '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "noscript breakout": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "attribute injection through the id": '<img src="/x" data-cms-media-id="1 onerror=alert(1)">',
    "srcset": '<img src="/x" srcset="javascript:alert(1) 1x">',
}
FORBIDDEN = re.compile(
    r"<script|<svg|<style|<iframe|<object|<form|<meta|<math|\son\w+\s*=|javascript:|vbscript:|"
    r"data:|style=|srcset",
    re.IGNORECASE,
)


@pytest.mark.parametrize("html", DANGEROUS.values(), ids=DANGEROUS.keys())
def test_nothing_dangerous_survives(html):
    cleaned = clean_rich_text(html)
    assert not FORBIDDEN.search(cleaned), cleaned
    # Cleaning is stable: what is stored cleans to itself.
    assert clean_rich_text(cleaned) == cleaned


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<img src=x onerror=alert(1)>", '<img src="x">'),
        ('<a href="javascript:alert(1)">click</a>', '<a rel="noopener noreferrer">click</a>'),
        ("<script>alert(1)</script>after", "after"),
        ("<svg onload=alert(1)><text>svg text</text></svg>after", "after"),
        ('<p style="color:red" class="x" id="y">text</p>', "<p>text</p>"),
        ('<img src="data:image/png;base64,AAAA" alt="a">', '<img alt="a">'),
    ],
)
def test_dangerous_parts_are_dropped_and_the_rest_kept(html, expected):
    assert clean_rich_text(html) == expected


def test_library_images_keep_everything_the_editor_needs():
    html = (
        '<figure><img src="/media/documents/12/file" alt="Boats &amp; &quot;nets&quot;" '
        'width="640" height="427" title="Harbour" data-cms-media-id="12" class="x" '
        'loading="lazy"><figcaption>At dawn</figcaption></figure>'
    )
    assert clean_rich_text(html) == (
        '<figure><img src="/media/documents/12/file" alt="Boats &amp; &quot;nets&quot;" '
        'width="640" height="427" title="Harbour" data-cms-media-id="12">'
        "<figcaption>At dawn</figcaption></figure>"
    )


def test_image_sizes_and_ids_must_be_numbers():
    cleaned = clean_rich_text('<img src="/a" width="100%" height="50px" data-cms-media-id="x">')
    assert cleaned == '<img src="/a">'


def test_links_get_rel_and_keep_allowed_schemes():
    html = (
        '<a href="https://example.org/a?b=1&amp;c=2" title="T" target="_blank" rel="opener">1</a>'
        '<a href="http://example.org">2</a><a href="mailto:news@example.org">3</a>'
        '<a href="/articles/3">4</a><a href="#top">5</a><a href="ftp://example.org">6</a>'
    )
    assert clean_rich_text(html) == (
        '<a href="https://example.org/a?b=1&amp;c=2" title="T" rel="noopener noreferrer">1</a>'
        '<a href="http://example.org" rel="noopener noreferrer">2</a>'
        '<a href="mailto:news@example.org" rel="noopener noreferrer">3</a>'
        '<a href="/articles/3" rel="noopener noreferrer">4</a>'
        '<a href="#top" rel="noopener noreferrer">5</a>'
        '<a rel="noopener noreferrer">6</a>'
    )


def test_text_markup_is_kept():
    html = (
        "<h2>A</h2><h3>B</h3><h4>C</h4><p>x<br><strong>b</strong><em>i</em><u>u</u><s>s</s>"
        "<code>c</code></p><ul><li>1</li></ul><ol><li>2</li></ol><blockquote>q</blockquote>"
        "<pre>p</pre><hr>"
    )
    assert clean_rich_text(html) == html


def test_unknown_tags_keep_their_text_only():
    assert clean_rich_text("<h1>Big</h1><div><span>in</span></div>") == "Bigin"


def test_empty_input():
    assert clean_rich_text("") == ""
    assert clean_rich_text("   ") == ""


# -- the routes ---------------------------------------------------------------------------


@pytest.fixture
def articles_app(app):
    """The demo app with the articles blueprint (registered here until the factory does it),
    the article table and one welcome article per site."""
    if "demo_articles" not in app.blueprints:
        app.register_blueprint(articles_bp)
    with app.app_context():
        db.create_all()
        seed_articles({site.slug: site for site in db.session.scalars(select(Site))})
    return app


@pytest.fixture
def articles(articles_app) -> dict[str, int]:
    """The welcome article's id by site slug."""
    with articles_app.app_context():
        rows = db.session.execute(select(Site.slug, Article.id).join(Article.site)).all()
    return dict(rows)


def article(app, article_id: int) -> Article | None:
    with app.app_context():
        row = db.session.get(Article, article_id)
        if row is not None:
            db.session.expunge(row)
        return row


ROUTES = [
    # (method, url, the right it needs)
    ("GET", "/articles", "view"),
    ("GET", "/articles/{id}", "view"),
    ("GET", "/articles/new", "add"),
    ("POST", "/articles/new", "add"),
    ("GET", "/articles/{id}/edit", "change"),
    ("POST", "/articles/{id}/edit", "change"),
    ("POST", "/articles/{id}/delete", "delete"),
]
RIGHTS = {
    "admin": {"view", "add", "change", "delete"},
    "siteadmin": {"view", "add", "change", "delete"},
    "editor": {"view", "add", "change", "delete"},
    "viewer": {"view"},
}


@pytest.mark.parametrize(("method", "url", "right"), ROUTES)
@pytest.mark.parametrize("who", RIGHTS)
def test_role_route_matrix(articles_app, client_for, sites, articles, who, method, url, right):
    client = client_for(who)
    if who == "admin":  # instance admins start in the first site by name (Alpine Journal)
        client.switch_site(sites["harbour"])
    target = url.format(id=articles["harbour"])
    if method == "GET":
        response = client.get(target)
    else:
        response = client.form_post(target, data={"title": "Changed", "body": "<p>new</p>"})
    allowed = right in RIGHTS[who]
    if not allowed:
        assert response.status_code == 403
    elif method == "GET":
        assert response.status_code == 200
    else:
        assert response.status_code == 302


@pytest.mark.parametrize(("method", "url", "right"), [r for r in ROUTES if "{id}" in r[1]])
@pytest.mark.parametrize("who", ["editor", "viewer", "alpine", "admin"])
def test_another_sites_article_is_not_found(
    articles_app, client_for, articles, who, method, url, right
):
    """Alpine's article seen from Harbour (and Harbour's from Alpine): 404 for everyone,
    instance admins included, until they switch sites."""
    client = client_for(who)
    other = "harbour" if who in ("alpine", "admin") else "alpine"
    target = url.format(id=articles[other])
    if method == "GET":
        response = client.get(target)
    else:
        response = client.form_post(target, data={"title": "Hijacked", "body": ""})
    assert response.status_code == 404
    assert article(articles_app, articles[other]).title.startswith("Welcome")


def test_missing_article_is_not_found(client_for, articles):
    assert client_for("editor").get("/articles/999999").status_code == 404


@pytest.mark.parametrize("url", ["/articles", "/articles/1", "/articles/new", "/articles/1/edit"])
def test_anonymous_users_are_sent_to_the_login(articles_app, client_for, url):
    response = client_for(None).get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_list_shows_only_the_current_sites_articles(client_for, sites, articles):
    html = client_for("editor").get("/articles").get_data(as_text=True)
    assert "Welcome to Harbour News" in html and "Welcome to Alpine Journal" not in html
    assert 'href="/articles/new"' in html
    viewer = client_for("viewer")
    listing = viewer.get("/articles").get_data(as_text=True)
    assert "Welcome to Harbour News" in listing and 'href="/articles/new"' not in listing
    page = viewer.get(f"/articles/{articles['harbour']}").get_data(as_text=True)
    assert "/edit" not in page and "/delete" not in page
    editor_page = (
        client_for("editor").get(f"/articles/{articles['harbour']}").get_data(as_text=True)
    )
    assert f"/articles/{articles['harbour']}/edit?editor=quill" in editor_page
    admin = client_for("admin")
    admin.switch_site(sites["alpine"])
    html = admin.get("/articles").get_data(as_text=True)
    assert "Welcome to Alpine Journal" in html and "Welcome to Harbour News" not in html


def test_create_cleans_the_body_and_records_who(articles_app, client_for, sites):
    client = client_for("editor")
    body = (
        '<p onclick="alert(1)">Hello <strong>world</strong></p><script>alert(2)</script>'
        '<img src="/media/documents/7/file" alt="Boat" width="320" height="200" '
        'data-cms-media-id="7" onerror="alert(3)">'
    )
    response = client.form_post("/articles/new", data={"title": "  Spring  ", "body": body})
    assert response.status_code == 302
    with articles_app.app_context():
        row = db.session.scalar(select(Article).where(Article.title == "Spring"))
        assert row is not None and row.site_id == int(sites["harbour"])
        assert row.body_html == (
            "<p>Hello <strong>world</strong></p>"
            '<img src="/media/documents/7/file" alt="Boat" width="320" height="200" '
            'data-cms-media-id="7">'
        )
        assert row.updated_by.email == "editor@example.com"
        new_id = row.id
    assert response.headers["Location"] == f"/articles/{new_id}"
    page = client.get(f"/articles/{new_id}").get_data(as_text=True)
    assert "Article created." in page
    assert '<img src="/media/documents/7/file" alt="Boat"' in page
    assert "alert(" not in page


def test_edit_saves_and_the_view_shows_it(articles_app, client_for, articles):
    client = client_for("siteadmin")
    target = articles["harbour"]
    form = client.get(f"/articles/{target}/edit").get_data(as_text=True)
    assert 'value="Welcome to Harbour News"' in form
    response = client.form_post(
        f"/articles/{target}/edit",
        data={"title": "Renamed", "body": '<h2>New</h2><a href="https://example.org">x</a>'},
    )
    assert response.status_code == 302
    row = article(articles_app, target)
    assert row.title == "Renamed"
    expected = '<h2>New</h2><a href="https://example.org" rel="noopener noreferrer">x</a>'
    assert row.body_html == expected
    assert expected in client.get(f"/articles/{target}").get_data(as_text=True)


def test_view_cleans_rows_written_any_other_way(articles_app, client_for, articles):
    with articles_app.app_context():
        row = db.session.get(Article, articles["harbour"])
        row.title = "<b>Title</b>"
        row.body_html = '<p>ok</p><img src=x onerror="alert(1)"><script>alert(2)</script>'
        db.session.commit()
    html = client_for("viewer").get(f"/articles/{articles['harbour']}").get_data(as_text=True)
    assert '<p>ok</p><img src="x">' in html
    assert "alert(" not in html
    assert "<b>Title</b>" not in html and "&lt;b&gt;Title&lt;/b&gt;" in html


def test_invalid_form_is_answered_400_with_the_message_and_a_clean_body(
    articles_app, client_for, articles
):
    client = client_for("editor")
    response = client.form_post(
        f"/articles/{articles['harbour']}/edit",
        data={"title": "", "body": "<p>kept</p><img src=x onerror=alert(1)>"},
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Give the article a title." in html
    assert "&lt;p&gt;kept&lt;/p&gt;" in html and "onerror" not in html
    assert article(articles_app, articles["harbour"]).title == "Welcome to Harbour News"
    too_long = client.form_post("/articles/new", data={"title": "x" * 201, "body": ""})
    assert too_long.status_code == 400
    assert "at most 200 characters" in too_long.get_data(as_text=True)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/articles/new", {"title": "No token", "body": ""}),
        ("/articles/{id}/edit", {"title": "No token", "body": ""}),
        ("/articles/{id}/delete", {}),
    ],
)
def test_posts_without_a_csrf_token_are_refused(articles_app, client_for, articles, url, data):
    client = client_for("editor")
    target = articles["harbour"]
    response = client.post(url.format(id=target), data=data)
    assert response.status_code == 400
    forged = client.post(url.format(id=target), data={**data, "csrf_token": "forged"})
    assert forged.status_code == 400
    with articles_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Article)) == 2
        assert db.session.get(Article, target).title == "Welcome to Harbour News"


def test_delete(articles_app, client_for, articles):
    client = client_for("editor")
    response = client.form_post(f"/articles/{articles['harbour']}/delete")
    assert response.status_code == 302 and response.headers["Location"] == "/articles"
    assert article(articles_app, articles["harbour"]) is None
    assert "Article deleted." in client.get("/articles").get_data(as_text=True)


def test_seed_articles_is_idempotent(articles_app):
    with articles_app.app_context():
        sites = {site.slug: site for site in db.session.scalars(select(Site))}
        seed_articles(sites)
        seed_articles(sites)
        titles = sorted(db.session.scalars(select(Article.title)))
    assert titles == ["Welcome to Alpine Journal", "Welcome to Harbour News"]


# -- the editor pages ---------------------------------------------------------------------


def test_edit_page_loads_tinymce_by_default_and_quill_on_request(
    articles_app, client_for, articles
):
    client = client_for("editor")
    target = articles["harbour"]
    tiny = client.get(f"/articles/{target}/edit").get_data(as_text=True)
    assert "/media/static/vendor/tinymce/tinymce.min.js" in tiny
    assert "/media/static/cms_media/editors/tinymce.js" in tiny
    assert 'data-cms-media-editor="tinymce"' in tiny and "quill.js" not in tiny
    quill = client.get(f"/articles/{target}/edit?editor=quill").get_data(as_text=True)
    assert "/media/static/vendor/quill/quill.js" in quill
    assert "/media/static/vendor/quill/quill.snow.css" in quill
    assert "/media/static/cms_media/editors/quill.js" in quill
    assert 'data-cms-media-editor="quill"' in quill and "tinymce.min.js" not in quill
    assert f'action="/articles/{target}/edit?editor=quill"' in quill
    # An unknown choice falls back to the default.
    odd = client.get(f"/articles/{target}/edit?editor=%3Cscript%3E").get_data(as_text=True)
    assert 'data-cms-media-editor="tinymce"' in odd and "<script>" not in odd.split("</head>")[1]
    # The item selector's script, before the adapters that call it.
    for html in (tiny, quill):
        selector = html.index(
            '<script src="/media/static/cms_media/item_selector.js" '
            'data-selector-url="/media/selector/" defer></script>'
        )
        assert selector < html.index("/media/static/cms_media/editors/")


def test_vendored_editor_files_are_served(articles_app, client_for):
    """Editors come from the plugin's own static files; nothing from a CDN."""
    client = client_for("editor")
    for path in (
        "vendor/tinymce/tinymce.min.js",
        "vendor/tinymce/models/dom/model.min.js",
        "vendor/tinymce/themes/silver/theme.min.js",
        "vendor/tinymce/icons/default/icons.min.js",
        "vendor/tinymce/plugins/image/plugin.min.js",
        "vendor/tinymce/skins/ui/oxide/skin.min.css",
        "vendor/quill/quill.js",
        "cms_media/editors/tinymce.js",
        "cms_media/editors/quill.js",
    ):
        response = client.get(f"/media/static/{path}")
        assert response.status_code == 200, path
        response.close()
    for template in TEMPLATES.glob("*.html"):
        assert "//cdn" not in template.read_text() and "https://" not in template.read_text()


def test_templates_and_adapters_have_no_inline_handlers_or_scripts():
    inline_handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not inline_handler.search(text), template.name
        assert not inline_script.search(text), template.name
    for adapter in EDITORS_JS.glob("*.js"):
        text = adapter.read_text()
        assert "innerHTML" not in text and "eval(" not in text, adapter.name
