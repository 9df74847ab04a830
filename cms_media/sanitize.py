"""Rich text from editors, cleaned to a small allow-list before it is stored or shown.

Hosts call :func:`clean_rich_text` on whatever a rich-text editor posts. The editor's own
filtering is a convenience, never a defence: anything can be posted to the save route.
"""

from __future__ import annotations

import re

import nh3

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "h2", "h3", "h4", "strong", "em", "u", "s", "a", "ul", "ol", "li",
        "blockquote", "code", "pre", "figure", "figcaption", "hr", "img",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title", "data-cms-media-id"},
}
# Relative URLs (the library's own /media/documents/<id>/file) always pass; of the absolute
# ones only these schemes do, so javascript:, data:, vbscript: and the like never survive.
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags whose text is dropped together with the tag rather than kept as loose text.
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math"}
)
NUMBER = re.compile(r"[0-9]{1,5}")
ID = re.compile(r"[0-9]{1,18}")
NUMERIC_ATTRIBUTES = {"width": NUMBER, "height": NUMBER, "data-cms-media-id": ID}


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Sizes and document ids are plain numbers; anything else in them is dropped."""
    pattern = NUMERIC_ATTRIBUTES.get(attribute) if tag == "img" else None
    if pattern is None:
        return value
    value = value.strip()
    return value if pattern.fullmatch(value) else None


def clean_rich_text(html: str) -> str:
    """Return ``html`` reduced to safe text markup, links and images (see module doc)."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()
