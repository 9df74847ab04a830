"""Who is asking, in which site, and may they? Every view starts here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, current_app, g

from cms_media.host import ADD, CHANGE, DELETE, MANAGE, VIEW, HostAdapter


class LoginRequired(Exception):
    """Raised when nobody is signed in; the extension answers with a redirect to the login."""


@dataclass(frozen=True)
class SiteContext:
    user: Any
    user_id: str
    user_name: str
    site_id: str
    host: HostAdapter

    def can(self, action: str) -> bool:
        return self.host.has_permission(self.user, self.site_id, action)

    def require(self, action: str) -> None:
        if not self.can(action):
            abort(403, description=PERMISSION_MESSAGES[action])

    @property
    def permissions(self) -> dict[str, bool]:
        return {action: self.can(action) for action in (VIEW, ADD, CHANGE, DELETE, MANAGE)}


PERMISSION_MESSAGES = {
    VIEW: "You do not have access to this site's documents.",
    ADD: "You may view this library but not add to it. Ask a site administrator for access.",
    CHANGE: "You may view this document but not change it. Ask a site administrator.",
    DELETE: "You may not delete documents in this site. Ask a site administrator.",
    MANAGE: "Only site administrators can change this site's settings.",
}


def site_context() -> SiteContext:
    """The signed-in user and current site, checked for the view right.

    A user without access to the site gets 404, exactly as for something that does not exist,
    so ids of other sites reveal nothing.
    """
    if "cms_media_site" in g:
        return g.cms_media_site
    host: HostAdapter = current_app.extensions["cms_media"].host
    user = host.current_user()
    if user is None:
        raise LoginRequired
    site_id = host.current_site_id()
    if site_id is None or not host.has_permission(user, site_id, VIEW):
        abort(404)
    g.cms_media_site = SiteContext(
        user=user,
        user_id=host.user_id(user),
        user_name=host.user_display_name(user),
        site_id=str(site_id),
        host=host,
    )
    return g.cms_media_site
