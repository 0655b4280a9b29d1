"""What the public may know of a vulnerability at an instant: the one redaction layer.

Every public page, feed, export and announcement reads vulnerabilities through `public_view`.
Before the lift it is a placeholder (the id and, if configured, the embargo's end); after it,
the public fields. Reporter identity (beyond the credit), correspondence, notes, registrants
and advisory texts are never part of it.

While embargoed, a vulnerability with a CVE id is public under that id alone: its tracking id
travels in the subjects of unencrypted mail to and from the reporter, so answering to it would
tie the reporter to the CVE and to its embargo date. After the lift the tracking id is its
page's address again (feeds, release notes and announcements link there; every detail is
public by then).
"""

from dataclasses import dataclass
from datetime import datetime

import peewee

from app.models import PUBLIC_STATES, CveId, Vulnerability
from app.vulns import lifecycle, revisions
from app.vulns.revisions import Entry


@dataclass(frozen=True)
class Placeholder:
    """An embargoed vulnerability as the public sees it."""

    id: str  # the CVE id, or the tracking id while it has none
    tracking_id: str | None  # None once it has a CVE id: then it is public by that id alone
    cve_id: str | None
    embargo_until: datetime | None  # None when the date is not to be shown


@dataclass(frozen=True)
class Published:
    id: str
    tracking_id: str
    cve_id: str | None
    title: str
    description: str  # Markdown
    severity: str  # a CVSS vector, or ""
    cvss_score: float | None
    affected: str
    cwe: str
    fix_refs: tuple[str, ...]
    mitigation: str
    credits: str
    published_at: datetime
    reported_at: datetime
    updated_at: datetime
    introduced_commit: str = ""  # a full commit hash, or "" (OSV's GIT range starts at "0")
    # Every public version, oldest first: 1 the publication, then each revision
    # (app.vulns.revisions)
    revisions: tuple[Entry, ...] = ()
    # Withdrawn (app.vulns.withdrawal): it proved not to be a vulnerability; the page and the
    # records stay and say so with the reason. None: not withdrawn.
    withdrawn_at: datetime | None = None
    withdrawn_reason: str = ""

    @property
    def modified(self) -> datetime:
        """The last public change: the publication, or its latest revision."""
        return self.revisions[-1].at if self.revisions else self.published_at


def is_published(v: Vulnerability, at: datetime) -> bool:
    return v.status == "published" and v.published_at is not None and v.published_at <= at


def public_views(
    rows, at: datetime, show_embargo_date: bool = True
) -> list[Placeholder | Published | None]:
    """public_view of many, their revisions read in one query (a list page, a feed)."""
    rows = list(rows)
    later = revisions.of_many([v.id for v in rows if is_published(v, at)])
    return [public_view(v, at, show_embargo_date, later.get(v.id)) for v in rows]


def public_view(
    v: Vulnerability,
    at: datetime,
    show_embargo_date: bool = True,
    revision_rows: list | None = None,
) -> Placeholder | Published | None:
    """None for what is not public at all (new, triage, rejected). `revision_rows`: v's
    revisions when already read (public_views)."""
    if v.status not in PUBLIC_STATES:
        return None
    if not is_published(v, at):
        cve_id = v.cve.cve_id if v.cve_id else None
        return Placeholder(
            cve_id or v.tracking_id,
            None if cve_id else v.tracking_id,
            cve_id,
            v.embargo_until if show_embargo_date else None,
        )
    return revealed(v, v.published_at, revision_rows)


def find(
    ident: str, at: datetime, show_embargo_date: bool = True
) -> tuple[Vulnerability, Placeholder | Published] | None:
    """The public vulnerability an address names (a CVE id or a tracking id, any case), with its
    public view; None when nothing public answers to that id. An embargoed vulnerability with a
    CVE id answers to its CVE id alone (see above), exactly as an unknown id does otherwise."""
    wanted = ident.strip().upper()
    rows = (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId, peewee.JOIN.LEFT_OUTER)
        .where(Vulnerability.status.in_(PUBLIC_STATES))
    )
    by_cve = wanted.startswith("CVE-")
    if by_cve:
        rows = rows.where(CveId.cve_id == wanted)
    else:
        rows = rows.where(Vulnerability.tracking_id == wanted)
    v = rows.first()
    view = public_view(v, at, show_embargo_date) if v is not None else None
    if view is None or (isinstance(view, Placeholder) and view.cve_id and not by_cve):
        return None
    return v, view


def revealed(v: Vulnerability, published_at: datetime, revision_rows=None) -> Published:
    """The fields the lift reveals. Public only through public_view; the operator's
    `forewarn export --embargoed` (app.disclosure.exports) reads them before the lift."""
    cve_id = v.cve.cve_id if v.cve_id else None
    return Published(
        id=cve_id or v.tracking_id,
        tracking_id=v.tracking_id,
        cve_id=cve_id,
        title=v.title,
        description=v.description,
        severity=v.severity,
        cvss_score=v.cvss_score,
        affected=v.affected,
        cwe=v.cwe,
        fix_refs=tuple(v.fix_refs.split()),
        introduced_commit=v.introduced_commit,
        mitigation=v.mitigation,
        credits=lifecycle.credits(v),
        published_at=published_at,
        reported_at=v.reported_at,
        updated_at=v.updated_at,
        revisions=revisions.history(v, published_at, revision_rows),
        withdrawn_at=v.withdrawn_at,
        withdrawn_reason=v.withdrawn_reason if v.withdrawn_at else "",
    )


def rating(score: float | None) -> str:
    """CVSS's qualitative rating of a score (the same bands in 3.1 and 4.0)."""
    if score is None:
        return "not rated"
    for floor, name in ((9.0, "Critical"), (7.0, "High"), (4.0, "Medium"), (0.1, "Low")):
        if score >= floor:
            return name
    return "None"


def version(at: datetime) -> tuple:
    """A cheap fingerprint of everything the public list shows at `at`: it changes whenever a
    public vulnerability is added, changed (every change sets updated_at), lifted or given a
    CVE id, so a page rendered for an equal fingerprint is still exact."""
    published_now = peewee.Case(
        None,
        (((Vulnerability.status == "published") & (Vulnerability.published_at <= at), 1),),
        0,
    )
    row = (
        Vulnerability.select(
            peewee.fn.COUNT(Vulnerability.id),
            peewee.fn.MAX(Vulnerability.updated_at),
            peewee.fn.SUM(published_now),
            peewee.fn.SUM(peewee.fn.COALESCE(Vulnerability.cve, 0)),
            peewee.fn.SUM(Vulnerability.id),
        )
        .where(Vulnerability.status.in_(PUBLIC_STATES))
        .tuples()
        .get()
    )
    return tuple(str(value) for value in row)
