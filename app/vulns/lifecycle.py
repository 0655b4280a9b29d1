"""The vulnerability life cycle: creation, states and their guards, field edits, embargo dates.

Every change is audited with what it was before and after. Domain functions take the acting
user (None with a label for the command line) and the time.
"""

import re
from dataclasses import dataclass
from datetime import datetime, time

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from app.core import audit, oneline
from app.core.config import Settings
from app.core.db import serialise, write_transaction
from app.core.errors import NotFound, Refused
from app.models import CveId, InboundMessage, User, Vulnerability
from app.outbox import deliveries
from app.vulns import affected, casemap, cases, embargo, revisions

# new -> triage -> accepted -> fixed -> published (by the lift alone); rejected from new, triage
# or accepted.
TRANSITIONS = {
    "new": {"triage", "accepted", "rejected"},
    "triage": {"accepted", "rejected"},
    "accepted": {"fixed", "published", "rejected"},
    "fixed": {"published"},
    "published": set(),
    "rejected": set(),
}
FIELDS = (
    "title",
    "description",
    "affected",
    "severity",
    "credits",
    "fix_refs",
    "introduced_commit",
    "mitigation",
    "deploy_before_lift",
    "credit_reporter",
    "cwe",
    "embargo_until",
    "fix_due",
    "status",
    "assignee",
    "findings",
)
OPERATOR_REASON = "set from the command line by an operator"
_CWE = re.compile(r"^CWE-[1-9][0-9]{0,4}$")
_URL = re.compile(r"^https?://[^\s]+$")
# A full commit hash (SHA-1, or SHA-256): OSV's GIT ranges take nothing shorter.
_COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in account, or a label such as "cli:root" for an operator."""

    user: User | None
    label: str

    @classmethod
    def of(cls, user: User) -> "Actor":
        return cls(user, user.email)


def get(ident: str) -> Vulnerability:
    """The vulnerability an operator names: by tracking id or by CVE id, in any case. The one
    lookup of every command taking a VULN_ID (the portal takes both as well)."""
    wanted = ident.strip().upper()
    if wanted.startswith("CVE-"):
        found = Vulnerability.select().join(CveId).where(CveId.cve_id == wanted).first()
    else:
        found = Vulnerability.get_or_none(Vulnerability.tracking_id == wanted)
    if found is None:
        raise NotFound(f"no vulnerability {ident.strip()}; `forewarn vulns list` shows them")
    return found


def next_tracking_id(prefix: str, year: int) -> str:
    """The next free id; call it inside the write transaction that creates the row."""
    serialise("tracking-id")  # two workers filing at once must not pick the same number
    stem = f"{prefix}-{year}-"
    numbers = [
        int(row.tracking_id.removeprefix(stem))
        for row in Vulnerability.select(Vulnerability.tracking_id).where(
            Vulnerability.tracking_id.startswith(stem)
        )
        if row.tracking_id.removeprefix(stem).isdigit()
    ]
    numbers += [  # given on a web report's answer page, filed by processing later
        int(row.tracking_id.removeprefix(stem))
        for row in InboundMessage.select(InboundMessage.tracking_id).where(
            InboundMessage.channel == "web-report", InboundMessage.tracking_id.startswith(stem)
        )
        if row.tracking_id.removeprefix(stem).isdigit()
    ]
    return f"{stem}{max(numbers, default=0) + 1:04d}"


def create(
    title: str,
    description: str,
    actor: Actor,
    at: datetime,
    settings: Settings,
    embargo_until: datetime | None = None,
) -> Vulnerability:
    """A vulnerability the team found or was told about outside the intake."""
    title = oneline.checked(title, "title")
    if not title:
        raise Refused("a new vulnerability needs a title")
    dates = embargo.default_dates(at, settings)
    with write_transaction():
        v = Vulnerability.create(
            tracking_id=next_tracking_id(settings.tracking_prefix, at.year),
            title=title[:250],
            description=description.strip(),
            reported_at=at,
            fix_due=dates.fix_due,
            embargo_until=embargo_until or dates.embargo_until,
            created_at=at,
            updated_at=at,
        )
        audit.record(
            actor.user,
            "vuln.create",
            at,
            target=v.tracking_id,
            details={"title": v.title},
            actor_label=actor.label,
        )
    return v


def cvss_score(vector: str) -> float:
    """The base score of a CVSS 3.1 or 4.0 vector; Refused when it is not one."""
    try:
        if vector.startswith("CVSS:4.0/"):
            return float(CVSS4(vector).base_score)
        if vector.startswith(("CVSS:3.1/", "CVSS:3.0/")):
            return float(CVSS3(vector).scores()[0])
    except CVSSError as exc:
        raise Refused(f"{vector!r} is not a valid CVSS vector: {exc}") from None
    raise Refused(f"{vector!r} is not a CVSS 3.1 or 4.0 vector (CVSS:3.1/... or CVSS:4.0/...)")


def credits(v: Vulnerability) -> str:
    """Who is credited: the team's text, else the reporter by the name they gave (never their
    address), unless they opted out."""
    if v.credits.strip():
        return v.credits.strip()
    return v.reporter_name if v.credit_reporter and v.reporter_name else ""


def set_field(
    v: Vulnerability, field: str, value: str, actor: Actor, at: datetime, reason: str = ""
) -> Vulnerability:
    """Change one field under the rules; audited with before and after. An embargo_until set
    here is the date alone (see set_date): the portal and the command line move an embargo
    with app.disclosure.embargo_change.change_embargo."""
    if field not in FIELDS:
        raise Refused(f"{field!r} is not a field; use one of {', '.join(FIELDS)}")
    if field == "status":
        return set_status(v, value.strip().lower(), actor, at, reason)
    if field in ("embargo_until", "fix_due"):
        return set_date(v, field, parse_date(v, field, value), actor, at, reason)
    if field == "findings":
        return set_findings(v, value, actor, at)
    changes = _checked(field, value)
    before = {name: jsonable(getattr(v, name)) for name in changes}
    with write_transaction():
        Vulnerability.update(**changes, updated_at=at).where(Vulnerability.id == v.id).execute()
        if before != jsonable(changes):  # a published one's exports say what changed, and why
            revisions.note(v, field, "" if reason == OPERATOR_REASON else reason, at)
        audit.record(
            actor.user,
            f"vuln.set.{field}",
            at,
            target=v.tracking_id,
            details={"before": before, "after": jsonable(changes)},
            actor_label=actor.label,
        )
    return Vulnerability.get_by_id(v.id)


def set_findings(v: Vulnerability, value: str, actor: Actor, at: datetime) -> Vulnerability:
    """The reporter's finding labels v covers (space-separated), replacing its earlier ones;
    audited with before and after like every field."""
    wanted = cases.parse_labels(value)
    before = cases.labels(v)
    if wanted == before:
        return v
    with write_transaction():
        cases.replace_labels(v, wanted)
        Vulnerability.update(updated_at=at).where(Vulnerability.id == v.id).execute()
        audit.record(
            actor.user,
            "vuln.set.findings",
            at,
            target=v.tracking_id,
            details={"before": before, "after": wanted},
            actor_label=actor.label,
        )
        casemap.tell_reporter(v, at)
    return Vulnerability.get_by_id(v.id)


def parse_date(v: Vulnerability, field: str, text: str) -> datetime:
    """embargo_until or fix_due as an operator types it: a date alone is the end of that day
    for fix_due, and the hour of the current embargo end (else 14:00) for embargo_until."""
    hour = time(23, 59, 59) if field == "fix_due" else time(_publication_hour(v))
    return embargo.parse_instant(text, hour)


def _publication_hour(v: Vulnerability) -> int:
    return v.embargo_until.hour if v.embargo_until else 14


def _checked(field: str, value: str) -> dict:
    value = value.strip()
    if field == "title":  # it becomes mail subjects: one line (app.core.oneline)
        value = oneline.checked(value, "title")
        if not value:
            raise Refused("the title cannot be empty")
        return {"title": value[:250]}
    if field == "affected":
        return {"affected": affected.normalise(value)}
    if field == "severity":
        if not value:
            return {"severity": "", "cvss_score": None}
        return {"severity": value, "cvss_score": cvss_score(value)}
    if field == "fix_refs":
        urls = value.split()
        bad = [url for url in urls if not _URL.match(url)]
        if bad:
            raise Refused(f"{bad[0]!r} is not an http(s) URL; give fix references as URLs")
        return {"fix_refs": " ".join(urls)}
    if field == "introduced_commit":
        value = value.lower()
        if value in ("none", "-"):
            value = ""
        if value and not _COMMIT.match(value):
            raise Refused(
                f"{value!r} is not a full commit hash; give all 40 hex digits "
                "(git rev-parse COMMIT), or none"
            )
        return {"introduced_commit": value}
    if field == "cwe":
        value = value.upper()
        if value and not _CWE.match(value):
            raise Refused(f"{value!r} is not a CWE id; write it like CWE-787")
        return {"cwe": value}
    if field == "assignee":
        return {"assignee": _team_member(value)}
    if field in ("deploy_before_lift", "credit_reporter"):
        if value.lower() not in ("yes", "no"):
            raise Refused(f"{field} is yes or no, not {value!r}")
        return {field: value.lower() == "yes"}
    return {field: value}  # description, credits, mitigation


def _team_member(value: str) -> User | None:
    if value.lower() in ("", "none", "-"):
        return None
    user = User.get_or_none(User.email == value.lower())
    if user is None or user.role not in ("admin", "team") or not user.active:
        raise Refused(f"{value} is not an active security-team member")
    return user


def set_status(
    v: Vulnerability, status: str, actor: Actor, at: datetime, reason: str = ""
) -> Vulnerability:
    if status not in TRANSITIONS:
        raise Refused(f"{status!r} is not a state; states: {', '.join(TRANSITIONS)}")
    if status == v.status:
        return v
    if status not in TRANSITIONS[v.status]:
        allowed = ", ".join(sorted(TRANSITIONS[v.status])) or "none (it is final)"
        raise Refused(f"{v.tracking_id} is {v.status}; from there it can go to: {allowed}")
    if (
        status == "published"
    ):  # only the lift publishes (app/disclosure/lift.py): page, feeds, mails
        raise Refused(
            f"{v.tracking_id} is published by the lift when its embargo ends "
            f"({embargo.shown(v.embargo_until)}); to publish it now, set embargo_until to now "
            "with a reason (an early lift)"
        )
    reason = reason.strip()
    if status == "rejected" and not reason:
        raise Refused("rejecting needs a reason; the reporter is told it")
    changes = {"status": status, "updated_at": at}
    if status == "rejected":
        changes["rejection_reason"] = reason
    with write_transaction():
        Vulnerability.update(**changes).where(Vulnerability.id == v.id).execute()
        audit.record(
            actor.user,
            "vuln.status",
            at,
            target=v.tracking_id,
            details={"before": v.status, "after": status, "reason": reason},
            actor_label=actor.label,
        )
        if status == "rejected" and v.reporter_email:
            deliveries.queue(
                "rejected", v.reporter_email, at, vulnerability=v, payload={"reason": reason}
            )
        if status in ("accepted", "rejected") and len(cases.member_ids(v)) > 1:
            casemap.tell_reporter(v, at)
    return Vulnerability.get_by_id(v.id)


def move_kind(before: datetime | None, after: datetime) -> str:
    """What setting an embargo end from `before` to `after` is: "extend", "early-lift" (it
    ends sooner), or "set" (the first end, or the same one)."""
    if before is None or after == before:
        return "set"
    return "extend" if after > before else "early-lift"


def set_date(
    v: Vulnerability, field: str, value: datetime, actor: Actor, at: datetime, reason: str = ""
) -> Vulnerability:
    """embargo_until or fix_due, recorded and audited. Extending an embargo, or ending it
    early, needs a reason. Only the date: moving an embargo end also tells the people
    concerned and moves the lift, which app.disclosure.embargo_change.change_embargo does
    around this (the portal and the command line call that)."""
    before = getattr(v, field)
    reason = reason.strip()
    kind = move_kind(before, value) if field == "embargo_until" else "set"
    if kind in ("extend", "early-lift") and not reason:
        what = "Extending" if kind == "extend" else "Ending an embargo early"
        raise Refused(f"{what} needs a reason (it is audited and the people concerned told)")
    with write_transaction():
        Vulnerability.update(**{field: value, "updated_at": at}).where(
            Vulnerability.id == v.id
        ).execute()
        audit.record(
            actor.user,
            f"vuln.{field}",
            at,
            target=v.tracking_id,
            details={
                "before": jsonable(before),
                "after": jsonable(value),
                "kind": kind,
                "reason": reason,
            },
            actor_label=actor.label,
        )
    return Vulnerability.get_by_id(v.id)


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, User):
        return value.email
    return value


OPEN_STATES = ("new", "triage", "accepted", "fixed")
