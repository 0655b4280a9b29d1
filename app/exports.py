"""Public text made from vulnerabilities: release-note lines, embargoed CVEs by id alone.

Release notes are public: of a vulnerability still under embargo they carry its CVE id and the
date its embargo ends, nothing else (CONTRACT.md, "Protocol promises").
"""

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from app.models import PUBLIC_STATES, CveId, Vulnerability

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str) -> date:
    """A YYYY-MM-DD date, or ValueError with a message fit to show."""
    value = text.strip()
    if _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a date like 2026-01-31 (YYYY-MM-DD)")


@dataclass(frozen=True)
class ReleaseNote:
    cve_id: str
    embargoed: bool
    line: str
    day: date | None  # the day it was published, or the day its embargo ends (UTC)


def release_notes(at: datetime, since: date | None = None, *, base_url: str) -> list[str]:
    """One line per validated vulnerability with a CVE id, by CVE year and number.

    `since` keeps only those published, or whose embargo ends, on or after that day (UTC).
    """
    return [note.line for note in release_note_entries(at, since, base_url=base_url)]


def release_note_entries(
    at: datetime, since: date | None = None, *, base_url: str
) -> list[ReleaseNote]:
    # new and triage are unvalidated, rejected is withdrawn: none of them is ever public.
    # A CVE id that was itself rejected names nothing any more.
    rows = (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId)
        .where(Vulnerability.status.in_(PUBLIC_STATES), CveId.state != "rejected")
        .order_by(CveId.year, CveId.number, CveId.cve_id)
    )
    notes = [_note(v, at, base_url) for v in rows]
    if since is not None:
        notes = [n for n in notes if n.day is None or n.day >= since]
    return notes


def _note(v: Vulnerability, at: datetime, base_url: str) -> ReleaseNote:
    cve_id = v.cve.cve_id
    if _published(v, at):
        title = " ".join(v.title.split()) or "(no title)"  # one line, whatever the subject held
        link = f"{base_url.rstrip('/')}/vulnerabilities/{v.tracking_id}"
        day = _utc_day(v.published_at or v.embargo_until)
        return ReleaseNote(cve_id, False, f"{cve_id}: {title} ({link})", day)
    # Built from the id and the embargo end alone, so nothing else can leak into the line.
    day = _utc_day(v.embargo_until)
    until = f" until {day.isoformat()}" if day else ""
    return ReleaseNote(cve_id, True, f"{cve_id}: Under embargo{until}", day)


def _published(v: Vulnerability, at: datetime) -> bool:
    """Lifted by `at`: anything else (accepted, fixed, a lift still due) stays a placeholder."""
    if v.status != "published":
        return False
    return v.published_at is None or v.published_at <= at


def _utc_day(instant: datetime | None) -> date | None:
    return instant.astimezone(UTC).date() if instant else None


KINDS = ("cve", "osv", "csaf")


def document(kind: str, v: Vulnerability, at: datetime, settings) -> dict:
    """The CVE JSON 5.1 record, OSV record or CSAF 2.0 advisory of a published vulnerability;
    Refused while it is embargoed. Built from app.disclosure's public view alone."""
    raise NotImplementedError(f"{kind} export is being built")
