"""The small contract between cms_media and the CMS that embeds it.

A host subclasses :class:`HostAdapter` (or passes any object with the same methods) to
``CmsMedia(app, host=...)``. cms_media never reads the host's tables itself.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_login import current_user

# What a user may do in a site. ``manage`` is the site administrator's right (site settings);
# instance-wide settings are decided by ``is_instance_admin``.
VIEW, ADD, CHANGE, DELETE, MANAGE = "view", "add", "change", "delete", "manage"
ACTIONS = (VIEW, ADD, CHANGE, DELETE, MANAGE)


class HostAdapter:
    """Defaults that suit a Flask-Login host; override what your CMS does differently."""

    login_endpoint = "login"

    def current_user(self) -> Any | None:
        """The signed-in user, or ``None``."""
        return current_user._get_current_object() if current_user.is_authenticated else None

    def user_id(self, user: Any) -> str:
        return str(user.get_id())

    def user_display_name(self, user: Any) -> str:
        return str(getattr(user, "name", None) or getattr(user, "email", None) or user.get_id())

    def current_site_id(self) -> str | None:
        """The site the current request works in."""
        raise NotImplementedError

    def site_name(self, site_id: str) -> str:
        return site_id

    def has_permission(self, user: Any, site_id: str, action: str) -> bool:
        """Whether ``user`` may do ``action`` (one of :data:`ACTIONS`) in ``site_id``."""
        raise NotImplementedError

    def is_instance_admin(self, user: Any) -> bool:
        return False

    def login_url(self, next_url: str) -> str:
        return url_for(self.login_endpoint, next=next_url)
