"""How the demo CMS answers cms_media's questions (see :class:`cms_media.HostAdapter`)."""

from __future__ import annotations

from flask import g, session
from sqlalchemy import select

from cms_media.demo.models import CONTENT_EDITOR, SITE_ADMIN, VIEWER, Membership, Site, User, db
from cms_media.host import ADD, CHANGE, DELETE, MANAGE, VIEW, HostAdapter

ROLE_ACTIONS = {
    SITE_ADMIN: {VIEW, ADD, CHANGE, DELETE, MANAGE},
    CONTENT_EDITOR: {VIEW, ADD, CHANGE, DELETE},
    VIEWER: {VIEW},
}


def role_in(user: User, site_id: str) -> str | None:
    """The user's role in a site, looked up once per request."""
    if not site_id.isdigit():
        return None
    roles = g.setdefault("demo_roles", {})
    key = (user.id, site_id)
    if key not in roles:
        roles[key] = db.session.scalar(
            select(Membership.role).where(
                Membership.user_id == user.id, Membership.site_id == int(site_id)
            )
        )
    return roles[key]


def sites_for(user: User) -> list[Site]:
    """The sites a user can switch to: all for instance admins, else their memberships."""
    query = select(Site).order_by(Site.name)
    if not user.is_instance_admin:
        query = query.join(Membership, Membership.site_id == Site.id).where(
            Membership.user_id == user.id
        )
    return list(db.session.scalars(query))


class DemoHost(HostAdapter):
    login_endpoint = "demo.login"

    def current_site_id(self) -> str | None:
        user = self.current_user()
        if user is None:
            return None
        chosen = session.get("site_id")
        if chosen is not None:
            return str(chosen)
        sites = sites_for(user)
        return str(sites[0].id) if sites else None

    def site_name(self, site_id: str) -> str:
        site = db.session.get(Site, int(site_id)) if site_id.isdigit() else None
        return site.name if site else site_id

    def has_permission(self, user: User, site_id: str, action: str) -> bool:
        if user.is_instance_admin:
            return db.session.get(Site, int(site_id)) is not None if site_id.isdigit() else False
        return action in ROLE_ACTIONS.get(role_in(user, site_id) or "", set())

    def is_instance_admin(self, user: User) -> bool:
        return bool(user.is_instance_admin)
