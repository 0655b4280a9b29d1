"""CVE ids: the blocks assigned to the CNA, or reservations from CVE Services (through cvelib)
when FOREWARN_CVE_SERVICES_URL is set. Domain functions take the actor and the time."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import OperatorError, Refused
from app.models import CveId, User, Vulnerability, database
from app.vulns import casemap, cases, cve_services

MAX_BLOCK = 10_000
LOW_WATER = 10  # fewer ids than this left after an allocation: warn the admins
SERVICES = "cve-services"  # CveId.source of ids reserved from CVE Services
_ID = re.compile(r"CVE-(\d{4})-(\d{4}|[1-9]\d{4,18})")
_IMPORT_HINT = "`forewarn cve import-block CVE-YYYY-FIRST..CVE-YYYY-LAST`"


class NoIdsLeft(OperatorError):
    """Every id of the blocks is used: an admin must import a new block."""


def format_id(year: int, number: int) -> str:
    return f"CVE-{year}-{number:04d}"


def parse_id(text: str) -> tuple[int, int]:
    match = _ID.fullmatch(text.strip().upper())
    if not match or int(match.group(2)) == 0 or int(match.group(1)) < 1999:
        raise Refused(f"{text.strip()!r} is not a CVE id like CVE-2026-1000")
    return int(match.group(1)), int(match.group(2))


def parse_range(text: str) -> list[str]:
    """ "CVE-2026-1000..CVE-2026-1099" (or one id) as the list of ids it covers, in order."""
    first_text, dots, last_text = text.strip().partition("..")
    if dots and not last_text.strip():
        raise Refused(f"{text.strip()!r} is not a range like CVE-2026-1000..CVE-2026-1099")
    year, first = parse_id(first_text)
    last_year, last = parse_id(last_text) if dots else (year, first)
    if last_year != year:
        raise Refused(f"{text.strip()} spans two years; a block stays within one year")
    if last < first:
        raise Refused(f"{text.strip()} runs backwards: its first id comes after its last")
    if last - first + 1 > MAX_BLOCK:
        raise Refused(
            f"{text.strip()} has {last - first + 1} ids; import at most {MAX_BLOCK} at a time"
        )
    return [format_id(year, number) for number in range(first, last + 1)]


# -- CVE Services settings -----------------------------------------------------------------


# -- blocks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    block: str
    added: int
    known: int


def import_block(range_text: str, by: User | None, by_label: str, at: datetime) -> Imported:
    """Add a block of ids assigned to the CNA; ids already present are skipped and counted."""
    ids = parse_range(range_text)
    block = f"{ids[0]}..{ids[-1]}" if len(ids) > 1 else ids[0]
    rows = [
        {"cve_id": cve_id, "block": block, "year": year, "number": number, "state": "available"}
        for cve_id in ids
        for year, number in [parse_id(cve_id)]
    ]
    added = 0
    with write_transaction():
        for start in range(0, len(rows), 500):
            query = CveId.insert_many(rows[start : start + 500]).on_conflict_ignore()
            added += query.as_rowcount().execute()
        details = {"added": added, "known": len(ids) - added}
        audit.record(
            by, "cve.import_block", at, target=block, details=details, actor_label=by_label
        )
    return Imported(block, added, len(ids) - added)


def remaining(source: str | None = None) -> int:
    """How many ids are available (of one source, or of all)."""
    query = CveId.select().where(CveId.state == "available")
    if source is not None:
        query = query.where(CveId.source == source)
    return query.count()


# -- allocation ----------------------------------------------------------------------------


class _LowWater:
    remaining: int | None  # ids left in the blocks, or in the CVE Services quota
    source: str

    @property
    def low(self) -> bool:
        return self.remaining is not None and self.remaining < LOW_WATER

    @property
    def warning(self) -> str:
        if self.source == SERVICES:
            return f"only {self.remaining} ids left in the CVE Services quota of the CNA"
        return f"only {self.remaining} CVE ids left in the blocks; import one with {_IMPORT_HINT}"


@dataclass(frozen=True)
class Allocation(_LowWater):
    cve: CveId
    remaining: int | None
    source: str


def allocate(
    vulnerability: Vulnerability,
    by: User | None,
    by_label: str,
    at: datetime,
    services: cve_services.ServicesConfig | None = None,
) -> Allocation:
    """Give the vulnerability the lowest free id: of the blocks, or one reserved for it at
    CVE Services. Two concurrent allocations never get the same id."""
    _refuse_second_id(Vulnerability.get_by_id(vulnerability.id))
    if services is None:
        return _assign_lowest(vulnerability, by, by_label, at, source=None, quota_left=None)
    # The reservation happens outside any transaction (it is a network call that must not hold
    # the database's write lock); an id a concurrent allocation took is simply reserved again.
    for _ in range(5):
        quota_left = _reserve_if_none(services, at)
        try:
            return _assign_lowest(vulnerability, by, by_label, at, SERVICES, quota_left)
        except NoIdsLeft:
            continue
    raise OperatorError("others took every id reserved at CVE Services for this; try again")


def _refuse_second_id(vuln: Vulnerability) -> None:
    if vuln.cve_id is not None:
        held = CveId.get_by_id(vuln.cve_id).cve_id
        raise Refused(
            f"{vuln.tracking_id} already has {held}; retire it first "
            f"(`forewarn cve retire {held} --reason ...`) to give it another"
        )
    if vuln.status == "rejected":
        raise Refused(f"{vuln.tracking_id} was rejected; a rejected report gets no CVE id")


def _reserve_if_none(services: cve_services.ServicesConfig, at: datetime) -> int | None:
    """Reserve one id at CVE Services unless one reserved earlier is still unused locally."""
    return _reserve_missing(services, 1, at)


def _reserve_missing(services: cve_services.ServicesConfig, needed: int, at: datetime):
    """Reserve at CVE Services (in one sequential batch) as many ids as `needed` exceeds the
    reserved ones still unused locally; the quota left there, or None when nothing was asked."""
    missing = needed - remaining(SERVICES)
    if missing <= 0:
        return None
    doing = "reserve a CVE id" if missing == 1 else f"reserve {missing} CVE ids"
    with cve_services.session(services, doing) as api:
        answer = api.reserve(missing, False, str(at.year))
        reserved = [parse_id(item["cve_id"]) for item in answer["cve_ids"]]
        quota_left = answer.get("meta", {}).get("remaining_quota")
    rows = [
        {
            "cve_id": format_id(year, number),
            "block": SERVICES,
            "year": year,
            "number": number,
            "state": "available",
            "source": SERVICES,
        }
        for year, number in reserved
    ]
    if rows:
        with write_transaction():
            CveId.insert_many(rows).on_conflict_ignore().execute()
    return None if quota_left is None else int(quota_left)


def _assign_lowest(vulnerability, by, by_label, at, source, quota_left) -> Allocation:
    for _ in range(10):
        try:
            with write_transaction():
                vuln = Vulnerability.get_by_id(vulnerability.id)
                _refuse_second_id(vuln)
                row = next(iter(_lowest_available(source, 1)), None)
                if row is None:
                    held = _held_by_others(source, [])
                    if held:  # PostgreSQL: others hold the free ids; they take them or not
                        raise _Contended(held)
                    if source == SERVICES:
                        raise NoIdsLeft("no reserved CVE Services id is free")
                    raise NoIdsLeft(
                        f"no CVE id is left in the blocks; import one with {_IMPORT_HINT}"
                    )
                claimed = (
                    CveId.update(state="assigned", assigned_at=at)
                    .where(CveId.id == row.id, CveId.state == "available")
                    .execute()
                )
                if claimed != 1:
                    continue  # taken between our read and our write (nothing written: try again)
                linked = (
                    Vulnerability.update(cve=row.id, updated_at=at)
                    .where(Vulnerability.id == vuln.id, Vulnerability.cve.is_null())
                    .execute()
                )
                if linked != 1:
                    raise Refused(f"{vuln.tracking_id} got a CVE id from someone else meanwhile")
                left = quota_left if source == SERVICES else remaining()
                audit.record(
                    by,
                    "cve.assign",
                    at,
                    target=row.cve_id,
                    details={
                        "vulnerability": vuln.tracking_id,
                        "source": row.source,
                        "before": {"state": "available", "vulnerability": None},
                        "after": {"state": "assigned", "vulnerability": vuln.tracking_id},
                    },
                    actor_label=by_label,
                )
                casemap.tell_reporter(vuln, at)  # in a case of several: its map has changed
                allocation = Allocation(CveId.get_by_id(row.id), left, source or "block")
                if allocation.low:
                    action = "cve.quota_low" if source == SERVICES else "cve.block_low"
                    audit.record(
                        None,
                        action,
                        at,
                        target=source or "blocks",
                        details={"remaining": left, "after": row.cve_id},
                        actor_label="system",
                    )
                return allocation
        except _Contended as contended:
            _wait_for(contended.held)  # rolled back, nothing written: read again once they end
    raise OperatorError("could not claim a free CVE id after several attempts; try again")


def _lowest_available(source: str | None, count: int) -> list[CveId]:
    query = CveId.select().where(CveId.state == "available")
    if source is not None:
        query = query.where(CveId.source == source)
    query = query.order_by(CveId.year, CveId.number, CveId.id).limit(count)
    if database.obj.for_update:
        # PostgreSQL: concurrent allocators skip each other's rows instead of queueing on
        # them. SQLite has no row locks: its IMMEDIATE transaction already serialises writers.
        query = query.for_update(skip_locked=True)
    return list(query)


def _held_by_others(source: str | None, rows: list[CveId]) -> list[int]:
    """The free ids, other than `rows`, that concurrent allocations have locked (PostgreSQL:
    they skip-locked past them; on SQLite, where writers run one at a time, none)."""
    free = CveId.select(CveId.id).where(CveId.state == "available")
    if source is not None:
        free = free.where(CveId.source == source)
    return sorted({row.id for row in free} - {row.id for row in rows})


class _Contended(Exception):
    """Rolls an allocation's transaction back: concurrent allocations hold ids it needs
    (`held`: rows they have locked and not yet committed or let go), or took a row it read."""

    def __init__(self, held: list[int] | None = None):
        super().__init__()
        self.held = held or []


def _wait_for(held: list[int]) -> None:
    """PostgreSQL: wait until the transactions holding these ids commit or roll back. This
    transaction holds nothing else, and every other allocator skips locked ids rather than
    waiting for them, so the wait cannot deadlock."""
    if held and database.obj.for_update:
        with write_transaction():
            list(
                CveId.select(CveId.id)
                .where(CveId.id.in_(held), CveId.state == "available")
                .order_by(CveId.id)
                .for_update()
            )


# -- a whole case at once ------------------------------------------------------------------

CASE_STATES = ("accepted", "fixed")  # the states in which a case's vulnerabilities get an id


@dataclass(frozen=True)
class Skipped:
    vulnerability: Vulnerability
    reason: str  # "not accepted yet (triage)", "rejected", "already has CVE-2026-1000", ...


class Given(NamedTuple):
    vulnerability: Vulnerability
    cve: CveId


@dataclass(frozen=True)
class CaseAllocation(_LowWater):
    case: str  # the case's tracking id
    allocations: tuple[Given, ...]  # in the case's member order
    skipped: tuple[Skipped, ...]
    remaining: int | None
    source: str


def allocate_case(
    vulnerability: Vulnerability,
    by: User | None,
    by_label: str,
    at: datetime,
    services: cve_services.ServicesConfig | None = None,
) -> CaseAllocation:
    """Give every accepted or fixed vulnerability of v's case that has no CVE id one, in one
    transaction, all or none: the lowest free ids of the blocks in the case's member order, or
    ids reserved at CVE Services first (outside any transaction). Members that get none are
    returned with the reason. Not enough ids: refused, and nothing is assigned."""
    if services is None:
        return _assign_case(vulnerability, by, by_label, at, source=None, quota_left=None)
    for _ in range(5):
        needed = len(pending(list(cases.members(vulnerability)))[0])
        quota_left = _reserve_missing(services, needed, at) if needed else None
        try:
            return _assign_case(vulnerability, by, by_label, at, SERVICES, quota_left)
        except NoIdsLeft:
            continue  # a concurrent allocation took some of the reserved ids: reserve again
    raise OperatorError("others took every id reserved at CVE Services for this; try again")


def pending(members: list[Vulnerability]) -> tuple[list[Vulnerability], list[Skipped]]:
    """Of a case's members: those a case-wide allocation gives an id, and the others, why."""
    wanting, skipped = [], []
    for member in members:
        if member.cve_id is not None:
            skipped.append(Skipped(member, f"already has {member.cve.cve_id}"))
        elif member.status in CASE_STATES:
            wanting.append(member)
        elif member.status in ("new", "triage"):
            skipped.append(Skipped(member, f"not accepted yet ({member.status})"))
        elif member.status == "rejected":
            skipped.append(Skipped(member, "rejected"))
        else:
            skipped.append(
                Skipped(member, f"{member.status} without a CVE id; assign it one alone")
            )
    return wanting, skipped


def _assign_case(vulnerability, by, by_label, at, source, quota_left) -> CaseAllocation:
    for _ in range(10):
        try:
            with write_transaction():
                return _assign_case_once(vulnerability, by, by_label, at, source, quota_left)
        except _Contended as contended:
            _wait_for(contended.held)  # rolled back, nothing written: read again once they end
    raise OperatorError(
        "could not claim free CVE ids for the case after several attempts; try again"
    )


def _assign_case_once(vulnerability, by, by_label, at, source, quota_left) -> CaseAllocation:
    current = Vulnerability.get_by_id(vulnerability.id)
    members = cases.members(current)
    if database.obj.for_update:
        # PostgreSQL: hold the members while we decide, so that a concurrent single allocation
        # waits for our commit and then finds the id we gave (and is refused).
        members = members.for_update()
    members = list(members)
    case = cases.case_id(current)
    wanting, skipped = pending(members)
    if not wanting:
        return CaseAllocation(case, (), tuple(skipped), None, source or "block")
    rows = _lowest_available(source, len(wanting))
    if len(rows) < len(wanting):
        held = _held_by_others(source, rows)
        if len(rows) + len(held) >= len(wanting):
            # Enough ids, but concurrent allocations hold some (PostgreSQL): they will take
            # them or let them go; which, we learn after waiting for them.
            raise _Contended(held)
        if source == SERVICES:
            raise NoIdsLeft("not enough reserved CVE Services ids are free")
        raise NoIdsLeft(
            f"case {case} needs {len(wanting)} CVE ids but the blocks have {len(rows)} left; "
            f"import a block with {_IMPORT_HINT}, then assign again"
        )
    claimed = (
        CveId.update(state="assigned", assigned_at=at)
        .where(CveId.id.in_([row.id for row in rows]), CveId.state == "available")
        .execute()
    )
    if claimed != len(rows):
        raise _Contended()  # taken between our read and our write
    given = []
    for member, row in zip(wanting, rows, strict=True):
        linked = (
            Vulnerability.update(cve=row.id, updated_at=at)
            .where(Vulnerability.id == member.id, Vulnerability.cve.is_null())
            .execute()
        )
        if linked != 1:
            raise _Contended()  # it got an id meanwhile (SQLite never; PostgreSQL holds it)
        audit.record(
            by,
            "cve.assign",
            at,
            target=row.cve_id,
            details={
                "vulnerability": member.tracking_id,
                "source": row.source,
                "case": case,
                "before": {"state": "available", "vulnerability": None},
                "after": {"state": "assigned", "vulnerability": member.tracking_id},
            },
            actor_label=by_label,
        )
        given.append(Given(Vulnerability.get_by_id(member.id), CveId.get_by_id(row.id)))
    left = quota_left if source == SERVICES else remaining()
    audit.record(
        by,
        "cve.assign_case",
        at,
        target=case,
        details={
            "source": source or "block",
            "assigned": {member.tracking_id: row.cve_id for member, row in given},
            "skipped": {s.vulnerability.tracking_id: s.reason for s in skipped},
        },
        actor_label=by_label,
    )
    casemap.tell_reporter(current, at)  # the reporter hears which finding got which id
    result = CaseAllocation(case, tuple(given), tuple(skipped), left, source or "block")
    if result.low:
        audit.record(
            None,
            "cve.quota_low" if source == SERVICES else "cve.block_low",
            at,
            target=source or "blocks",
            details={"remaining": left, "after": given[-1][1].cve_id},
            actor_label="system",
        )
    return result
