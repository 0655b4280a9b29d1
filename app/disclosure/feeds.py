"""The Atom feed (RFC 4287) of published vulnerabilities, built from public views alone.

ElementTree escapes markup; characters XML 1.0 cannot carry at all (most C0 controls, lone
surrogates) are dropped, so the feed stays well-formed whatever a title holds.
"""

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from app.core import markdown, timefmt
from app.disclosure.redaction import Published, rating

ATOM = "http://www.w3.org/2005/Atom"
SUMMARY_CHARS = 500
ENTRIES = 50  # the newest publications; the vulnerabilities page lists them all
WITHDRAWN_DAYS = 30  # and, for this long, an older publication withdrawn since (app/web/public.py)
# Before any publication the feed still needs an <updated>; a fixed instant keeps it stable.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ET.register_namespace("", ATOM)


def xml_text(text: str) -> str:
    """text without the characters XML 1.0 forbids (escaping is ElementTree's job)."""
    return _NOT_XML.sub("", text)


def entry_id(v: Published, base_url: str) -> str:
    """A tag: URI (RFC 4151) that never changes once published: the site's host name, the
    day of publication and the tracking id."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{v.published_at.astimezone(UTC).date().isoformat()}:{v.tracking_id}"


def summary(v: Published) -> str:
    """One plain-text paragraph: the rating and the start of the description."""
    score = f" {v.cvss_score:.1f}" if v.cvss_score is not None else ""
    text = " ".join(v.description.split())
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1].rstrip() + "…"
    said = f"Severity: {rating(v.cvss_score)}{score}. {text}".strip()
    if v.withdrawn_at is not None:  # it proved not to be a vulnerability
        reason = v.withdrawn_reason.rstrip(".")
        return f"Withdrawn on {timefmt.day(v.withdrawn_at)}: {reason}. {said}"
    return said


def atom(
    published: Sequence[Published],
    *,
    base_url: str,
    page_url,
    title: str = "Published vulnerabilities",
    author: str = "Security team",
    author_email: str | None = None,
) -> bytes:
    """The feed document (UTF-8), newest publication first.

    page_url(v) is the address of a vulnerability's page; base_url is the site's root.
    """
    base_url = base_url.rstrip("/")
    entries = sorted(published, key=lambda v: (v.published_at, v.tracking_id), reverse=True)
    # A withdrawn one the caller passes beyond the newest (a recent withdrawal of an older
    # publication) stays, so that readers hear of the change.
    entries = entries[:ENTRIES] + [v for v in entries[ENTRIES:] if v.withdrawn_at is not None]
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", f"{base_url}/vulnerabilities.atom")
    _text(feed, "title", title)
    # The feed changes with its newest entry or with any edit of one it lists (a revision).
    _text(feed, "updated", timefmt.zulu(max((v.modified for v in entries), default=NEVER)))
    _link(feed, "self", f"{base_url}/vulnerabilities.atom", "application/atom+xml")
    _link(feed, "alternate", f"{base_url}/vulnerabilities", "text/html")
    person = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(person, "name", author)
    if author_email:
        _text(person, "email", author_email)
    for v in entries:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "id", entry_id(v, base_url))
        title = f"{v.id}: {v.title}" if v.title else v.id
        _text(entry, "title", f"Withdrawn: {title}" if v.withdrawn_at else title)
        _text(entry, "updated", timefmt.zulu(v.modified))
        _text(entry, "published", timefmt.zulu(v.published_at))
        _link(entry, "alternate", page_url(v), "text/html")
        _text(entry, "summary", summary(v)).set("type", "text")
        _text(entry, "content", _html(v.description)).set("type", "html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


@functools.lru_cache(maxsize=1024)
def _html(description: str) -> str:
    return markdown.to_html(description)


def _text(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{name}")
    element.text = xml_text(text)
    return element


def _link(parent: ET.Element, rel: str, href: str, media_type: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}link", rel=rel, href=xml_text(href), type=media_type)
