"""The demo CMS's own tables: users, sites and who may do what where."""

from __future__ import annotations

from flask import current_app
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()

# Roles within a site, weakest first. Instance administrators are a flag on the user.
SITE_ADMIN, CONTENT_EDITOR, VIEWER = "site_admin", "content_editor", "viewer"
ROLE_LABELS = {SITE_ADMIN: "Site administrator", CONTENT_EDITOR: "Content editor", VIEWER: "Viewer"}


class User(UserMixin, db.Model):
    __tablename__ = "demo_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_instance_admin: Mapped[bool] = mapped_column(default=False)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")

    def set_password(self, password: str) -> None:
        # Tests set a cheap method; real installations keep Werkzeug's default (scrypt).
        method = current_app.config.get("DEMO_PASSWORD_HASH_METHOD", "scrypt")
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Site(db.Model):
    __tablename__ = "demo_site"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))


class Membership(db.Model):
    __tablename__ = "demo_membership"
    __table_args__ = (UniqueConstraint("user_id", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("demo_user.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("demo_site.id"))
    role: Mapped[str] = mapped_column(String(32))

    user: Mapped[User] = relationship(back_populates="memberships")
    site: Mapped[Site] = relationship()
