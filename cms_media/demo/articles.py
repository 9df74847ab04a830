"""Web content of the demo CMS: articles edited in a rich-text editor that inserts images from
Documents and Media through the item selector.

The body is cleaned with :func:`cms_media.sanitize.clean_rich_text` when it is saved and again
when it is shown, so a row written any other way (seed, shell, an older version) is safe too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import escape
from sqlalchemy import DateTime, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from cms_media.demo.models import Site, User, db
from cms_media.host import ADD, CHANGE, DELETE, VIEW
from cms_media.sanitize import clean_rich_text

EDITORS = ("tinymce", "quill")
TITLE_MAX = 200
BODY_MAX = 200_000
WELCOME_BODY = (
    "<h2>Welcome</h2>"
    "<p>This is <strong>{site}</strong>’s first article. Open it in the editor and use the "
    "image button to insert a picture from Documents and Media, upload one, or create one "
    "with the AI Creator.</p>"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Article(db.Model):
    __tablename__ = "demo_article"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("demo_site.id"), index=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body_html: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("demo_user.id"))

    site: Mapped[Site] = relationship()
    updated_by: Mapped[User | None] = relationship()


class ArticleForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[
            DataRequired("Give the article a title."),
            Length(max=TITLE_MAX, message=f"Titles can be at most {TITLE_MAX} characters."),
        ],
    )
    body = TextAreaField(
        "Body",
        validators=[Length(max=BODY_MAX, message="The article is too long to save.")],
    )


class ConfirmForm(FlaskForm):
    """Nothing but the CSRF token, for delete."""


bp = Blueprint("demo_articles", __name__, template_folder="templates")


# -- access -------------------------------------------------------------------------------


def _host():
    return current_app.extensions["cms_media"].host


def _current_site_id() -> int:
    """The current site, which the user must at least be allowed to view (else 404)."""
    site_id = _host().current_site_id()
    if site_id is None or not str(site_id).isdigit():
        abort(404)
    if not _host().has_permission(current_user, str(site_id), VIEW):
        abort(404)
    return int(site_id)


def _require(site_id: int, action: str) -> None:
    if not _host().has_permission(current_user, str(site_id), action):
        abort(403)


def _permissions(site_id: int) -> dict[str, bool]:
    return {
        action: _host().has_permission(current_user, str(site_id), action)
        for action in (VIEW, ADD, CHANGE, DELETE)
    }


def _get_article(article_id: int) -> Article:
    """An article of the current site; any other id is "not found", whoever asks."""
    site_id = _current_site_id()
    article = db.session.get(Article, article_id)
    if article is None or article.site_id != site_id:
        abort(404)
    return article


def _editor_choice() -> str:
    choice = request.args.get("editor", "")
    return choice if choice in EDITORS else EDITORS[0]


# -- views --------------------------------------------------------------------------------


@bp.get("/articles")
@login_required
def index():
    site_id = _current_site_id()
    articles = db.session.scalars(
        select(Article).where(Article.site_id == site_id).order_by(Article.updated_at.desc())
    ).all()
    return render_template("demo/articles/index.html", articles=articles, can=_permissions(site_id))


@bp.get("/articles/<int:article_id>")
@login_required
def view(article_id: int):
    article = _get_article(article_id)
    return render_template(
        "demo/articles/view.html",
        article=article,
        body=clean_rich_text(article.body_html),
        can=_permissions(article.site_id),
        delete_form=ConfirmForm(),
    )


@bp.route("/articles/new", methods=["GET", "POST"])
@login_required
def new():
    site_id = _current_site_id()
    _require(site_id, ADD)
    return _edit(Article(site_id=site_id, title="", body_html=""), created=True)


@bp.route("/articles/<int:article_id>/edit", methods=["GET", "POST"])
@login_required
def edit(article_id: int):
    article = _get_article(article_id)
    _require(article.site_id, CHANGE)
    return _edit(article, created=False)


def _edit(article: Article, *, created: bool):
    editor = _editor_choice()
    form = ArticleForm(obj=None if request.method == "POST" else article)
    if request.method == "GET":
        form.body.data = article.body_html
    if form.validate_on_submit():
        article.title = form.title.data.strip()
        article.body_html = clean_rich_text(form.body.data or "")
        article.updated_by_id = current_user.id
        article.updated_at = utcnow()
        if created:
            db.session.add(article)
        db.session.commit()
        flash("Article created." if created else "Article saved.")
        return redirect(url_for(".view", article_id=article.id))
    if request.method == "POST":
        # The editor gets back what was posted, but never anything the sanitiser would drop.
        form.body.data = clean_rich_text(form.body.data or "")
    status = 400 if request.method == "POST" else 200
    return (
        render_template(
            "demo/articles/edit.html",
            form=form,
            article=article,
            created=created,
            editor=editor,
            editors=EDITORS,
        ),
        status,
    )


@bp.post("/articles/<int:article_id>/delete")
@login_required
def delete(article_id: int):
    article = _get_article(article_id)
    _require(article.site_id, DELETE)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    db.session.delete(article)
    db.session.commit()
    flash("Article deleted.")
    return redirect(url_for(".index"))


# -- seed ---------------------------------------------------------------------------------


def seed_articles(sites: dict[str, Site]) -> None:
    """One welcome article in every site that has no article yet (idempotent)."""
    for site in sites.values():
        exists = db.session.scalar(select(Article.id).where(Article.site_id == site.id).limit(1))
        if exists is None:
            db.session.add(
                Article(
                    site_id=site.id,
                    title=f"Welcome to {site.name}",
                    body_html=clean_rich_text(WELCOME_BODY.format(site=escape(site.name))),
                )
            )
    db.session.commit()
