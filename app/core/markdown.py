"""Descriptions are Markdown; what reaches a page is rendered without raw HTML and sanitised."""

import functools

import nh3
from markdown_it import MarkdownIt

_ALLOWED = {
    "p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr",
}  # fmt: skip


@functools.cache
def _renderer() -> MarkdownIt:
    # commonmark without raw HTML: a reporter's <script> stays text.
    return MarkdownIt("commonmark", {"html": False})


def to_html(text: str) -> str:
    """Safe HTML for a Markdown text (links keep only http(s) and mailto)."""
    html = _renderer().render(text or "")
    return nh3.clean(
        html,
        tags=_ALLOWED,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
