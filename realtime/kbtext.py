"""Pure text helpers of the knowledge base: Markdown to safe HTML, and snippet placeholders.

- Article bodies are Markdown rendered by markdown-it-py (CommonMark, raw HTML off) and then
  sanitized by nh3 (Ammonia): a whitelist of tags and attributes, links only to http(s) and mailto,
  so no script, no event handler and no `javascript:` URL reaches a desktop, whatever an author wrote.
- Snippets hold placeholders `{{customer.name}}`; only the names below exist. Rendering is a plain
  replacement of whitelisted names by values (no template language, nothing evaluated); the result
  is text, inserted into a text field, never HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "img",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


def markdown_html(body_md: str) -> str:
    """Sanitized HTML of a Markdown body."""
    return nh3.clean(
        _md.render(body_md),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


# The names a snippet may use; `data.<field>` is a field of the contact's data (order number, ...).
PLACEHOLDERS = {
    "customer.name": "the caller's name",
    "customer.number": "the caller's number",
    "agent.name": "the agent's display name",
    "agent.username": "the agent's username",
    "queue": "the contact's queue",
    "contact.id": "the contact's id",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]{1,80})\s*\}\}")
_DATA = re.compile(r"data\.[A-Za-z0-9_-]{1,64}")


def placeholders(text: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def check_snippet(text: str) -> None:
    """Raise ValueError naming the first placeholder that does not exist."""
    for name in placeholders(text):
        if name not in PLACEHOLDERS and not _DATA.fullmatch(name):
            known = ", ".join(sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{{{name}}}}}; use one of {known} or data.<field>")


def render_snippet(text: str, values: Mapping[str, str | None]) -> str:
    """The snippet with each placeholder replaced by its value ("" when unknown for this contact)."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), text)
