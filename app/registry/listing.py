"""The admins' view of the registry at any size: the list (search, filters by status and key
health, pending applications first, fixed-size pages counted in the database) and what one
registrant's page shows (their keys, the decisions about them, the alerts they received).

Key health is judged at `at` as app.registry.renewal judges it: "unusable" when alerts could not
be encrypted to the registrant (no pinned key, a key marked unusable, or one expired);
"expiring" when the key or its encryption subkey ends within the renewal window, the first
warning's distance (30 days); "ok" otherwise.
"""

import math
from dataclasses import dataclass
from datetime import datetime

import peewee
from peewee import JOIN, Case, fn

from app.core.errors import Refused
from app.models import Advisory, AuditEvent, Delivery, PublicKey, Registrant, User, Vulnerability
from app.models.registry import REGISTRANT_STATES
from app.registry import renewal

PAGE_SIZE = 50
HEALTHS = ("ok", "expiring", "unusable")
EXPIRING_WITHIN = renewal.REGISTRANT_STEPS[-1][1]  # the first expiry warning's distance
ALERT_KINDS = ("alert", "alert-missed")
# Audit actions about a registrant's keys, and the decisions and changes of their standing.
KEY_ACTIONS = (
    "registry.sign_up",
    "registry.key_upload",
    "registry.key_proven",
    "registry.proof_resent",
    "registry.admin_add",
    "renewal.key-expiry",
    "renewal.registry-admin",
)
DECISION_ACTIONS = (
    *(f"registry.{s}" for s in ("approved", "rejected", "suspended", "removed")),
    "registry.admin_add",
    "registry.notes",
    "registry.reconfirmed",
    "renewal.reconfirm",
    "registry.unsubscribe",
    "registry.resubscribe",
)


@dataclass(frozen=True)
class Filters:
    """What the admin asked for; every field optional ("" = any)."""

    search: str = ""
    status: str = ""
    health: str = ""

    def checked(self) -> "Filters":
        """The same filters once their values are known ones (else Refused, saying which)."""
        if self.status and self.status not in REGISTRANT_STATES:
            raise Refused(f"Unknown status {self.status!r}: choose one of the list's statuses")
        if self.health and self.health not in HEALTHS:
            raise Refused(f"Unknown key health {self.health!r}: choose ok, expiring or unusable")
        return Filters(self.search.strip()[:200], self.status, self.health)


@dataclass(frozen=True)
class Row:
    id: int
    organisation: str
    email: str
    status: str
    fingerprint: str | None
    expires: datetime | None  # when alerts stop reaching them: the key's or its subkey's end
    health: str


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    number: int  # 1-based; a page past the end is the last one
    pages: int
    total: int  # registrants that match every filter
    counts: dict[str, int]  # per status, among those that match the search and key health
    asked_past_end: bool  # the page asked for was past the end


def _ends_by(end: peewee.Field, instant: datetime) -> peewee.Node:
    """An end that is set and comes by `instant` (NULL, never ends, is never true nor NULL)."""
    return end.is_null(False) & (end <= instant)


def _health_cases(at: datetime) -> tuple[peewee.Node, peewee.Node]:
    """(unusable, expiring) as SQL conditions on Registrant joined with its pinned key; neither
    is ever NULL, so their negations hold for the rest."""
    soon = at + EXPIRING_WITHIN
    unusable = (
        Registrant.key.is_null()
        | (PublicKey.usable == False)  # noqa: E712
        | _ends_by(Registrant.encryption_expires, at)
        | _ends_by(PublicKey.expires, at)
    )
    expiring = _ends_by(Registrant.encryption_expires, soon) | _ends_by(PublicKey.expires, soon)
    return unusable, expiring


def _health(at: datetime) -> peewee.Node:
    """The key health of each row as a SQL expression (HEALTHS' names): the one definition the
    filters, the list and a registrant's page share."""
    unusable, expiring = _health_cases(at)
    return Case(None, [(unusable, "unusable"), (expiring, "expiring")], "ok")


def health_of(registrant: Registrant, at: datetime) -> str:
    """One registrant's key health at `at`."""
    return (
        Registrant.select(_health(at))
        .join(PublicKey, JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(Registrant.id == registrant.id)
        .scalar()
    )


def _fingerprint_needle(search: str) -> str | None:
    """A search that could be (part of) a fingerprint, as fingerprints are stored: upper-case
    hex without spaces or a 0x prefix."""
    compact = "".join(search.split()).upper().removeprefix("0X")
    if len(compact) >= 4 and all(c in "0123456789ABCDEF" for c in compact):
        return compact
    return None


def _matching(
    filters: Filters, at: datetime, query: peewee.ModelSelect | None = None, with_status=True
) -> peewee.ModelSelect:
    """Registrants narrowed by the filters (unrun). A query given must already join User and
    PublicKey (the page's rows); otherwise only the tables the filters need are joined, so that
    counting the whole registry reads the status index alone."""
    if query is None:
        query = Registrant.select()
        if filters.search:
            query = query.join(User, on=(Registrant.user == User.id)).switch(Registrant)
        if filters.health:
            query = query.join(PublicKey, JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
    if filters.search:
        needle = filters.search
        found = Registrant.organisation.contains(needle) | User.email.contains(needle)
        fingerprint = _fingerprint_needle(needle)
        if fingerprint is not None:
            found |= Registrant.pinned_fingerprint.contains(fingerprint)
        query = query.where(found)
    unusable, expiring = _health_cases(at)
    if filters.health == "unusable":
        query = query.where(unusable)
    elif filters.health == "expiring":
        query = query.where(~unusable & expiring)
    elif filters.health == "ok":
        query = query.where(~unusable & ~expiring)
    if with_status and filters.status:
        query = query.where(Registrant.status == filters.status)
    return query


def page(filters: Filters, number: int, at: datetime, size: int = PAGE_SIZE) -> Page:
    """One page of the list: pending applications first, then by organisation. Two queries
    whatever the size of the registry: the counts per status, and the page's rows."""
    filters = filters.checked()
    if number < 1:
        raise Refused("The page number starts at 1")
    counts = dict(
        _matching(filters, at, with_status=False)
        .select(Registrant.status, fn.COUNT(Registrant.id))
        .group_by(Registrant.status)
        .tuples()
    )
    total = counts.get(filters.status, 0) if filters.status else sum(counts.values())
    pages = max(1, math.ceil(total / size))
    asked_past_end = number > pages
    number = min(number, pages)
    # The page's ids first, sorted from the registrant table alone (joined only where a filter
    # needs it); then their rows, joined with their user and key: 50 rows joined, not all.
    pending_first = Case(None, [(Registrant.status == "pending_review", 0)], 1)
    order = (pending_first, fn.LOWER(Registrant.organisation), Registrant.id)
    ids = (
        _matching(filters, at)
        .select(Registrant.id)
        .order_by(*order)
        .limit(size)
        .offset((number - 1) * size)
    )
    rows = (
        Registrant.select(
            Registrant.id,
            Registrant.organisation,
            User.email,
            Registrant.status,
            Registrant.pinned_fingerprint,
            Registrant.encryption_expires,
            PublicKey.expires,
            _health(at),
        )
        .join(User, on=(Registrant.user == User.id))
        .switch(Registrant)
        .join(PublicKey, JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(Registrant.id.in_(ids))
        .order_by(*order)
    )
    return Page(
        rows=[
            Row(id_, org, email, status, fpr, min(filter(None, (ends, key_ends)), default=None), h)
            for id_, org, email, status, fpr, ends, key_ends, h in rows.tuples()
        ],
        number=number,
        pages=pages,
        total=total,
        counts={state: counts.get(state, 0) for state in REGISTRANT_STATES},
        asked_past_end=asked_past_end,
    )


def unusable_approved(at: datetime, named: int) -> tuple[int, list[dict]]:
    """How many approved registrants alerts cannot reach at `at` (renewal.flagged), and the
    first `named` of them (id, organisation, email)."""
    first = list(
        renewal.flagged(at)
        .join(User, on=(Registrant.user == User.id))
        .select(
            Registrant.id,
            Registrant.organisation,
            User.email,
            fn.COUNT(Registrant.id).over().alias("flagged"),  # all of them, in the same query
        )
        .limit(named)
        .dicts()
    )
    return (first[0]["flagged"] if first else 0), first


# -- one registrant's page ----------------------------------------------------------------------


def keys(registrant: Registrant) -> list[PublicKey]:
    """Every key the registrant's account has had, newest first, and the pinned one (always
    theirs, unless it was stored without an owner)."""
    return list(
        PublicKey.select(
            PublicKey.id,
            PublicKey.fingerprint,
            PublicKey.expires,
            PublicKey.usable,
            PublicKey.created_at,
        )
        .where((PublicKey.owner == registrant.user_id) | (PublicKey.id == registrant.key_id))
        .order_by(PublicKey.created_at.desc(), PublicKey.id.desc())
    )


def _events(registrant: Registrant, actions: tuple[str, ...], limit: int) -> list[AuditEvent]:
    return list(
        AuditEvent.select()
        .where(AuditEvent.target == registrant.user.email, AuditEvent.action.in_(actions))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )


def key_events(registrant: Registrant, limit: int = 50) -> list[AuditEvent]:
    """The audit log about the registrant's keys (uploads, proofs, expiry warnings), newest
    first."""
    return _events(registrant, KEY_ACTIONS, limit)


def decisions(registrant: Registrant, limit: int = 50) -> list[AuditEvent]:
    """The audit log of decisions and changes of standing about the registrant, newest first."""
    return _events(registrant, DECISION_ACTIONS, limit)


@dataclass(frozen=True)
class Alerts:
    latest: list[Delivery]  # each with .advisory and its .vulnerability loaded
    total: int
    by_state: dict[str, int]


def alerts_received(registrant: Registrant, limit: int = 20) -> Alerts:
    """The alerts (and missed-alert notices) sent to the registrant: the latest `limit` with
    their advisory, and how many in all, by delivery state."""
    mine = Delivery.user == registrant.user_id, Delivery.kind.in_(ALERT_KINDS)
    by_state = dict(
        Delivery.select(Delivery.state, fn.COUNT(Delivery.id))
        .where(*mine)
        .group_by(Delivery.state)
        .tuples()
    )
    latest = list(
        Delivery.select(
            Delivery.id,
            Delivery.kind,
            Delivery.state,
            Delivery.created_at,
            Delivery.sent_at,
            Delivery.fingerprint,
            Advisory.id,
            Advisory.version,
            Advisory.subject,
            Vulnerability.id,
            Vulnerability.tracking_id,
        )
        .join(Advisory, JOIN.LEFT_OUTER, on=(Delivery.advisory == Advisory.id))
        .join(Vulnerability, JOIN.LEFT_OUTER, on=(Advisory.vulnerability == Vulnerability.id))
        .where(*mine)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return Alerts(latest, sum(by_state.values()), by_state)
