"""Triage duty: each new report goes to the active security-team member, not away, who has
waited longest since their last one (round-robin); reassignment and absences are audited."""

from datetime import UTC, datetime, timedelta

from peewee import fn

from app.accounts.team import TEAM_ROLES
from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import User, Vulnerability, database
from app.vulns.lifecycle import OPEN_STATES

_NEVER = datetime.min.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)


def _turn(user: User) -> tuple:
    """Sort key of the rotation: never assigned first, then the longest waiting, then by id."""
    return (user.last_assigned_at is not None, user.last_assigned_at or _NEVER, user.id)


def _rotating(lock: bool = False) -> list[User]:
    query = User.select().where(
        User.role.in_(TEAM_ROLES),
        User.active == True,  # noqa: E712
        User.away == False,  # noqa: E712
    )
    if lock and database.for_update:
        # PostgreSQL: two reports processed at once must not both go to the same member. The rows
        # are locked in id order (no deadlock) and sorted here, from the versions just locked.
        # SQLite needs nothing: the caller's write transaction already holds the database.
        query = query.order_by(User.id).for_update()
    return sorted(query, key=_turn)


def order(at: datetime) -> list[User]:
    """The members in the order they will get new reports, the next one first.

    `at` is the instant asked about; the order does not depend on it yet (absence has no end
    date), but callers pass it like every other domain question about "now".
    """
    return _rotating()


def next_assignee(at: datetime) -> User | None:
    members = order(at)
    return members[0] if members else None


def assign_new(vulnerability: Vulnerability, at: datetime) -> User | None:
    """Give a new vulnerability to the next member, in the caller's transaction; None when
    everyone is away (the report stays unassigned and the team sees it in the workspace)."""
    with write_transaction():
        members = _rotating(lock=True)
        if not members:
            return None
        member = members[0]
        # Turns are strictly ordered even when several reports arrive at the same instant
        # (a frozen clock, one batch): a tie would hand the next report to the same member.
        latest = max((m.last_assigned_at for m in members if m.last_assigned_at), default=None)
        turn = at if latest is None or latest < at else latest + _TICK
        User.update(last_assigned_at=turn).where(User.id == member.id).execute()
        Vulnerability.update(assignee=member).where(Vulnerability.id == vulnerability.id).execute()
        member.last_assigned_at = turn
        vulnerability.assignee = member
        audit.record(
            None,
            "rotation.assign",
            at,
            target=vulnerability.tracking_id,
            details={"assignee": member.email},
        )
    return member


def _is_member(user: User | None) -> bool:
    return user is not None and user.active and user.role in TEAM_ROLES


def reassign(
    vulnerability: Vulnerability, to_user: User, by: User, at: datetime, reason: str = ""
) -> None:
    """Hand a vulnerability to another member. It does not count as that member's turn."""
    if not _is_member(by):
        raise Refused("only security-team members can reassign reports")
    if not _is_member(to_user):
        raise Refused(f"{to_user.email} is not an active security-team member")
    reason = reason.strip()[:500]
    with write_transaction():
        current = Vulnerability.get_by_id(vulnerability.id)
        before = current.assignee.email if current.assignee is not None else None
        if current.assignee_id == to_user.id:
            raise Refused(f"{vulnerability.tracking_id} is already assigned to {to_user.email}")
        Vulnerability.update(assignee=to_user, updated_at=at).where(
            Vulnerability.id == vulnerability.id
        ).execute()
        audit.record(
            by,
            "rotation.reassign",
            at,
            target=vulnerability.tracking_id,
            details={"before": before, "after": to_user.email, "reason": reason},
        )
    vulnerability.assignee = to_user
    vulnerability.updated_at = at


def may_set_away(by: User | None, user: User) -> bool:
    """Members mark themselves away and back; admins may do it for anyone."""
    return _is_member(by) and (by.role == "admin" or by.id == user.id)


def set_away(user: User, away: bool, by: User, at: datetime) -> bool:
    """Take a member out of the rotation (away) or put them back; False if nothing changed."""
    if not may_set_away(by, user):
        raise Refused("only admins can mark someone else away or back")
    if not _is_member(user):
        raise Refused(f"{user.email} is not an active security-team member")
    with write_transaction():
        changed = User.update(away=away).where(User.id == user.id, User.away != away).execute()
        if changed:
            audit.record(by, "rotation.set_away", at, target=user.email, details={"away": away})
    user.away = away
    return bool(changed)


def open_load() -> dict[User, int]:
    """Open vulnerabilities (new, triage, accepted, fixed) per assignee: every active member
    (0 included), and any other account still holding open ones."""
    counts = dict(
        Vulnerability.select(Vulnerability.assignee, fn.COUNT(Vulnerability.id))
        .where(Vulnerability.status.in_(OPEN_STATES), Vulnerability.assignee.is_null(False))
        .group_by(Vulnerability.assignee)
        .tuples()
    )
    holders = User.select().where(
        User.id.in_(list(counts)) | (User.role.in_(TEAM_ROLES) & (User.active == True))  # noqa: E712
    )
    return {user: counts.get(user.id, 0) for user in holders.order_by(User.id)}
