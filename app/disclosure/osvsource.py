"""The OSV source (#18) as OSV.dev's REST sources read one: `all.json` lists every published
record's id and modified time, and each record answers at `<id>.json` (app/web/osv.py).

Published records only, ever: an embargoed, unvalidated or rejected vulnerability is not in the
list, and asking for it by any id is the same as asking for an id that never existed. The id a
record had before it had the team's own (its CVE id, or `x_` and the tracking id) still names it,
for consumers that stored it; the list names the current ids alone.
"""

import re
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.disclosure import exports, redaction
from app.disclosure.exports import osv
from app.disclosure.redaction import Published
from app.models import CveId, Vulnerability

_YEAR_NUMBER = re.compile(r"^\d{4}-\d+$")


@dataclass(frozen=True)
class Entry:
    id: str
    modified: datetime


@dataclass(frozen=True)
class Found:
    id: str  # its current id
    record: dict | None  # None when asked for by its former id: the caller sends it on
    modified: datetime


def _published(at: datetime) -> peewee.ModelSelect:
    return (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId, peewee.JOIN.LEFT_OUTER)
        .where(Vulnerability.status == "published", Vulnerability.published_at <= at)
    )


def index(at: datetime, settings) -> list[Entry]:
    """Every published record's id and last public change, by id."""
    views = redaction.public_views(_published(at), at)
    entries = [
        Entry(osv.osv_id(view, settings), view.modified)
        for view in views
        if isinstance(view, Published)
    ]
    return sorted(entries, key=lambda e: e.id)


def find(ident: str, at: datetime, settings) -> Found | None:
    """The published record an id names: its own id (with the record), or the id it had before
    (without: the caller redirects). None for anything else, embargoed or unknown alike."""
    wanted = ident.strip()
    prefix = osv.home_prefix(settings) + "-"
    if wanted.startswith(prefix) and _YEAR_NUMBER.match(wanted.removeprefix(prefix)):
        stem = "-" + wanted.removeprefix(prefix)
        for v in _published(at).where(Vulnerability.tracking_id.endswith(stem)):
            view = redaction.public_view(v, at)
            if isinstance(view, Published) and osv.osv_id(view, settings) == wanted:
                return Found(wanted, exports.document("osv", v, at, settings), view.modified)
    if wanted.upper().startswith("CVE-") or wanted.startswith(osv.PRIVATE_PREFIX):
        found = redaction.find(wanted.removeprefix(osv.PRIVATE_PREFIX), at)
        if found is not None and isinstance(found[1], Published):
            view = found[1]
            if osv.former_id(view) == wanted:
                return Found(osv.osv_id(view, settings), None, view.modified)
    return None
