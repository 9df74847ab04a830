"""cms_media: Documents and Media, with an AI image creator, for Flask + HTMX CMSs."""

from cms_media.extension import CmsMedia
from cms_media.host import ACTIONS, ADD, CHANGE, DELETE, MANAGE, VIEW, HostAdapter

__all__ = ["ACTIONS", "ADD", "CHANGE", "DELETE", "MANAGE", "VIEW", "CmsMedia", "HostAdapter"]
