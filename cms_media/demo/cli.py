"""``flask --app cms_media.demo demo …``: set up and seed the demo CMS."""

from __future__ import annotations

import io
import math

import click
from flask import current_app
from flask.cli import AppGroup
from PIL import Image, ImageDraw
from sqlalchemy import select

from cms_media.access import SiteContext
from cms_media.database import upgrade_database
from cms_media.demo.articles import seed_articles
from cms_media.demo.models import CONTENT_EDITOR, SITE_ADMIN, VIEWER, Membership, Site, User, db
from cms_media.models import AiSettings, Document
from cms_media.services.documents import IncomingFile, store_uploads
from cms_media.services.folders import create_folder

demo_cli = AppGroup("demo", help="The demo CMS.")

SITES = [("harbour", "Harbour News"), ("alpine", "Alpine Journal")]
# (e-mail, name, password, instance admin, {site slug: role})
USERS = [
    ("admin@example.com", "Ada Admin", "admin-demo", True, {}),
    ("siteadmin@example.com", "Sam Siteadmin", "siteadmin-demo", False, {"harbour": SITE_ADMIN}),
    ("editor@example.com", "Eve Editor", "editor-demo", False, {"harbour": CONTENT_EDITOR}),
    ("viewer@example.com", "Vic Viewer", "viewer-demo", False, {"harbour": VIEWER}),
    ("alpine.editor@example.com", "Alex Alpine", "alpine-demo", False, {"alpine": CONTENT_EDITOR}),
]
SAMPLES = [
    ("Harbour at dawn.png", (255, 170, 90), (40, 70, 140)),
    ("Lighthouse.jpg", (120, 190, 255), (250, 250, 240)),
    ("Sea glass.webp", (20, 140, 130), (200, 240, 220)),
]


def init_database() -> None:
    db.create_all()
    upgrade_database()


def sample_image(filename: str, top: tuple, bottom: tuple) -> bytes:
    """A small generated picture (sky gradient, sun, waves) so the library is not empty."""
    width, height = 960, 640
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    draw.ellipse((620, 120, 760, 260), fill=(255, 236, 180))
    for row in range(6):
        points = [
            (x, 430 + row * 38 + 10 * math.sin(x / 40 + row)) for x in range(0, width + 20, 20)
        ]
        draw.line(points, fill=(255, 255, 255), width=3)
    out = io.BytesIO()
    kind = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[filename.rsplit(".", 1)[1]]
    image.save(out, kind)
    return out.getvalue()


def seed() -> list[tuple[str, str, str]]:
    """Create the demo sites, users and sample images; running it again changes nothing."""
    sites, credentials = seed_accounts()
    seed_samples(sites)
    seed_articles(sites)
    return credentials


def seed_accounts() -> tuple[dict[str, Site], list[tuple[str, str, str]]]:
    """The demo sites and one user per role (idempotent)."""
    sites = {}
    for slug, name in SITES:
        site = db.session.scalar(select(Site).where(Site.slug == slug))
        if site is None:
            site = Site(slug=slug, name=name)
            db.session.add(site)
        sites[slug] = site
    db.session.flush()
    credentials = []
    for email, name, password, instance_admin, roles in USERS:
        user = db.session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(email=email, name=name, is_instance_admin=instance_admin)
            user.set_password(password)
            db.session.add(user)
            db.session.flush()
            for slug, role in roles.items():
                db.session.add(Membership(user_id=user.id, site_id=sites[slug].id, role=role))
        credentials.append(
            (
                email,
                password,
                "instance admin"
                if instance_admin
                else ", ".join(
                    f"{role.replace('_', ' ')} of {sites[slug].name}"
                    for slug, role in roles.items()
                ),
            )
        )
    if db.session.scalar(select(AiSettings).where(AiSettings.site_id.is_(None))) is None:
        db.session.add(AiSettings(site_id=None, enabled=True, updated_by_name="demo seed"))
    db.session.commit()
    return sites, credentials


def seed_samples(sites: dict[str, Site]) -> None:
    """A folder with a few generated images in every site that has no documents yet."""
    owner = db.session.scalar(select(User).where(User.email == "admin@example.com"))
    for slug, site in sites.items():
        site_id = str(site.id)
        if db.session.scalar(select(Document.id).where(Document.site_id == site_id).limit(1)):
            continue
        ctx = SiteContext(
            user=owner,
            user_id=str(owner.id),
            user_name=owner.name,
            site_id=site_id,
            host=current_app.extensions["cms_media"].host,
        )
        folder = create_folder(ctx, None, "Photos" if slug == "harbour" else "Mountains")
        store_uploads(
            ctx,
            folder,
            [IncomingFile(name, sample_image(name, top, bottom)) for name, top, bottom in SAMPLES],
        )


@demo_cli.command("init")
def init_command() -> None:
    """Create the tables (idempotent)."""
    init_database()
    click.echo("Database ready.")


@demo_cli.command("seed")
def seed_command() -> None:
    """Create demo sites, users and images (idempotent) and print how to sign in."""
    init_database()
    print_credentials(seed())


def print_credentials(credentials: list[tuple[str, str, str]]) -> None:
    click.echo("Demo users (e-mail / password — role):")
    for email, password, role in credentials:
        click.echo(f"  {email:<28} {password:<16} {role}")
