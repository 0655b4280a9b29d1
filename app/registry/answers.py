"""Product makers answer alerts (#17): affected or not, as CSAF/VEX says it.

Every approved registrant starts at "no_answer" about each vulnerability, which is never shown
or counted as "not affected". An answer (web or mail) is a new Answer row: the newest of a
registrant and a vulnerability is current, the older ones are its history, and each is
audited. Whoever was alerted about a vulnerability may answer it while they are approved.

After the lift, the current answers given with consent are public as product makers'
statements (`public_statements`); without consent nothing of an answer is ever public.
"""

import csv
import io
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.core import audit, timefmt
from app.core.db import write_transaction
from app.core.errors import Refused
from app.disclosure import redaction
from app.models import Advisory, Answer, Delivery, Registrant, User, Vulnerability
from app.registry import alerts

STATUSES = ("affected", "not_affected", "fixed", "under_investigation")
NO_ANSWER = "no_answer"
JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "vulnerable_code_not_in_execute_path",
    "inline_mitigations_already_exist",
)
CHANNELS = ("web", "mail")
NUDGE_KIND = "answer-nudge"  # the one reminder to answer before the lift (a Delivery kind)
MAX_STATEMENT = 4000

# In the team's and the registrant's words.
LABELS = {
    "affected": "Affected",
    "not_affected": "Not affected",
    "fixed": "Fixed (deployed)",
    "under_investigation": "Under investigation",
    NO_ANSWER: "No answer",
}
JUSTIFICATION_LABELS = {
    "component_not_present": "The component is not present",
    "vulnerable_code_not_present": "The vulnerable code is not present",
    "vulnerable_code_cannot_be_controlled_by_adversary": (
        "The vulnerable code cannot be controlled by an adversary"
    ),
    "vulnerable_code_not_in_execute_path": "The vulnerable code is not in the execute path",
    "inline_mitigations_already_exist": "Inline mitigations already exist",
}


@dataclass(frozen=True)
class Given:
    """An answer as a registrant wrote it, checked (see `check`)."""

    status: str
    justification: str | None = None
    statement: str = ""
    consent: bool = False


def check(status: str, justification: str | None, statement: str = "", consent=False) -> Given:
    """The answer, or Refused saying in one line what to write instead."""
    status = (status or "").strip().lower()
    justification = (justification or "").strip().lower() or None
    statement = (statement or "").strip()
    if status not in STATUSES:
        raise Refused(f"Unknown status {status!r}: write one of {', '.join(STATUSES)}.")
    if status == "not_affected" and justification is None:
        raise Refused(
            "'not_affected' needs a justification: one of " + ", ".join(JUSTIFICATIONS) + "."
        )
    if justification is not None and status != "not_affected":
        raise Refused(f"A justification goes with 'not_affected' only, not with {status!r}.")
    if justification is not None and justification not in JUSTIFICATIONS:
        raise Refused(
            f"Unknown justification {justification!r}: write one of {', '.join(JUSTIFICATIONS)}."
        )
    if len(statement) > MAX_STATEMENT:
        raise Refused(
            f"The statement is {len(statement)} characters; keep it under {MAX_STATEMENT}."
        )
    return Given(status, justification, statement, bool(consent))


def may_answer(registrant: Registrant, vulnerability: Vulnerability) -> bool:
    """Approved, and alerted about it (a version, a bundle carrying it, or the missed notice)."""
    if registrant.status != "approved":
        return False
    return alerts.alerted(vulnerability).where(Registrant.id == registrant.id).exists()


def record(
    registrant: Registrant,
    vulnerability: Vulnerability,
    given: Given,
    *,
    via: str,
    at: datetime,
    actor: User | None = None,
    actor_label: str | None = None,
    advisory: Advisory | None = None,
) -> Answer:
    """Keep an answer as the registrant's current one about the vulnerability; audited with
    what it replaced. Refused when they may not answer it (see `may_answer`)."""
    if via not in CHANNELS:
        raise ValueError(f"unknown channel {via!r}")
    if not may_answer(registrant, vulnerability):
        raise Refused(
            f"{vulnerability.tracking_id} is not open to answers from this registrant: only an "
            "approved registrant who was alerted about it may answer."
        )
    with write_transaction():
        previous = current_of(registrant, vulnerability)
        answer = Answer.create(
            registrant=registrant,
            vulnerability=vulnerability,
            advisory=advisory,
            status=given.status,
            justification=given.justification,
            statement=given.statement,
            public_consent=given.consent,
            via=via,
            at=at,
        )
        audit.record(
            actor,
            "answer.recorded",
            at,
            target=vulnerability.tracking_id,
            details={
                "registrant": registrant.id,
                "organisation": registrant.organisation,
                "status": given.status,
                "justification": given.justification,
                "public_consent": given.consent,
                "via": via,
                "replaces": previous.status if previous is not None else NO_ANSWER,
            },
            actor_label=actor_label,
        )
    return answer


def current_of(registrant: Registrant, vulnerability: Vulnerability) -> Answer | None:
    return (
        Answer.select()
        .where(Answer.registrant == registrant, Answer.vulnerability == vulnerability)
        .order_by(Answer.at.desc(), Answer.id.desc())
        .first()
    )


def history(registrant: Registrant, vulnerability: Vulnerability) -> list[Answer]:
    """Every answer the registrant gave about it, oldest first."""
    return list(
        Answer.select()
        .where(Answer.registrant == registrant, Answer.vulnerability == vulnerability)
        .order_by(Answer.at, Answer.id)
    )


def _is_newest() -> peewee.Expression:
    """True of an Answer row no later row of the same registrant and vulnerability follows."""
    newer = Answer.alias()
    later = newer.select(newer.id).where(
        newer.registrant == Answer.registrant,
        newer.vulnerability == Answer.vulnerability,
        (newer.at > Answer.at) | ((newer.at == Answer.at) & (newer.id > Answer.id)),
    )
    return ~peewee.fn.EXISTS(later)


def _latest(vulnerability_ids) -> peewee.ModelSelect:
    """The current answer of each registrant about each of these vulnerabilities."""
    return Answer.select().where(Answer.vulnerability.in_(vulnerability_ids), _is_newest())


def current(vulnerability: Vulnerability) -> dict[int, Answer]:
    """The current answers about a vulnerability, by registrant id."""
    return {a.registrant_id: a for a in _latest([vulnerability.id])}


def of_registrant(registrant: Registrant) -> list[Answer]:
    """A registrant's current answers, newest first, with their vulnerabilities."""
    return list(
        Answer.select(Answer, Vulnerability)
        .join(Vulnerability)
        .where(Answer.registrant == registrant, _is_newest())
        .order_by(Answer.at.desc(), Answer.id.desc())
    )


@dataclass(frozen=True)
class Row:
    """One cell of the matrix: a registrant about a vulnerability."""

    vulnerability: Vulnerability
    registrant: Registrant
    email: str
    status: str  # one of STATUSES or NO_ANSWER
    justification: str | None
    statement: str
    consent: bool
    at: datetime | None
    via: str | None
    alerted: bool
    answers: int  # how many times they answered (1: never changed)
    nudged_at: datetime | None  # when the reminder to answer went (kind "answer-nudge")


def matrix(vulnerabilities: list[Vulnerability], status: str | None = None) -> list[Row]:
    """Every approved registrant × each vulnerability, with their current status (NO_ANSWER
    when they never answered), ordered by vulnerability, then organisation. `status` keeps the
    rows at that status only (e.g. NO_ANSWER: the silent)."""
    if status is not None and status not in STATUSES + (NO_ANSWER,):
        raise Refused(f"Unknown status {status!r}: one of {', '.join(STATUSES + (NO_ANSWER,))}.")
    ids = [v.id for v in vulnerabilities]
    latest = {(a.vulnerability_id, a.registrant_id): a for a in _latest(ids)}
    counts = dict(
        (((v, r), n))
        for v, r, n in Answer.select(
            Answer.vulnerability, Answer.registrant, peewee.fn.COUNT(Answer.id)
        )
        .where(Answer.vulnerability.in_(ids))
        .group_by(Answer.vulnerability, Answer.registrant)
        .tuples()
    )
    nudged = {
        (v, u): at
        for v, u, at in Delivery.select(
            Delivery.vulnerability,
            Delivery.user,
            peewee.fn.MIN(Delivery.created_at).python_value(Delivery.created_at.python_value),
        )
        .where(Delivery.kind == NUDGE_KIND, Delivery.vulnerability.in_(ids))
        .group_by(Delivery.vulnerability, Delivery.user)
        .tuples()
    }
    registrants = list(
        Registrant.select(Registrant, User)
        .join(User, on=(Registrant.user == User.id))
        .where(Registrant.status == "approved")
        .order_by(peewee.fn.LOWER(Registrant.organisation), Registrant.id)
    )
    rows = []
    for v in vulnerabilities:
        alerted = {r.id for r in alerts.alerted(v).select(Registrant.id)}
        for registrant in registrants:
            answer = latest.get((v.id, registrant.id))
            row = Row(
                vulnerability=v,
                registrant=registrant,
                email=registrant.user.email,
                status=answer.status if answer else NO_ANSWER,
                justification=answer.justification if answer else None,
                statement=answer.statement if answer else "",
                consent=answer.public_consent if answer else False,
                at=answer.at if answer else None,
                via=answer.via if answer else None,
                alerted=registrant.id in alerted,
                answers=counts.get((v.id, registrant.id), 0),
                nudged_at=nudged.get((v.id, registrant.user_id)),
            )
            if status is None or row.status == status:
                rows.append(row)
    return rows


def counts(rows: list[Row]) -> dict[str, int]:
    """How many rows are at each status (every status present, NO_ANSWER last)."""
    found = {s: 0 for s in STATUSES + (NO_ANSWER,)}
    for row in rows:
        found[row.status] += 1
    return found


CSV_COLUMNS = (
    "vulnerability",
    "cve",
    "organisation",
    "email",
    "status",
    "justification",
    "statement",
    "public_consent",
    "at",
    "via",
    "alerted",
)


def as_csv(rows: list[Row]) -> str:
    """The matrix as CSV (a header, then a line per row; times in ISO 8601 UTC). Cells that a
    spreadsheet would read as a formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cve = row.vulnerability.cve.cve_id if row.vulnerability.cve_id else ""
        writer.writerow(
            _cell(value)
            for value in (
                row.vulnerability.tracking_id,
                cve,
                row.registrant.organisation,
                row.email,
                row.status,
                row.justification or "",
                row.statement,
                "yes" if row.consent else "no",
                timefmt.zulu(row.at) if row.at else "",
                row.via or "",
                "yes" if row.alerted else "no",
            )
        )
    return out.getvalue()


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def as_json(rows: list[Row]) -> list[dict]:
    """The CLI's entries (CONTRACT: `registrants answers VULN_ID --json`)."""
    return [
        {
            "email": row.email,
            "org": row.registrant.organisation,
            "status": row.status,
            "justification": row.justification,
            "statement": row.statement,
            "at": timefmt.zulu(row.at) if row.at else None,
            "via": row.via,
        }
        for row in rows
    ]


@dataclass(frozen=True)
class Statement:
    """A product maker's statement as the public reads it, after the lift."""

    organisation: str
    status: str  # in public words (LABELS), never "No answer"
    justification: str | None  # in public words (JUSTIFICATION_LABELS), with "Not affected"
    statement: str  # as the registrant wrote it: plain text, never Markdown
    at: datetime


def public_statements(vulnerability: Vulnerability, at: datetime) -> tuple[Statement, ...]:
    """The product makers' statements the public may read about a vulnerability at `at`:
    nothing before it is published (app.disclosure.redaction decides that); after it, each
    registrant's current answer when that answer was given with consent (a later answer
    without consent withdraws an earlier one), from registrants still approved (suspended and
    removed ones' are withdrawn with them). By organisation."""
    if not redaction.is_published(vulnerability, at):
        return ()
    rows = (
        Answer.select(Answer, Registrant)
        .join(Registrant)
        .join(User, on=(Registrant.user == User.id))
        .where(
            Answer.vulnerability == vulnerability,
            _is_newest(),
            Answer.public_consent == True,  # noqa: E712
            Answer.status.in_(STATUSES),
            Registrant.status == "approved",
            User.active == True,  # noqa: E712
        )
        .order_by(peewee.fn.LOWER(Registrant.organisation), Registrant.id)
    )
    return tuple(
        Statement(
            organisation=answer.registrant.organisation,
            status=LABELS[answer.status],
            justification=JUSTIFICATION_LABELS.get(answer.justification)
            if answer.justification
            else None,
            statement=answer.statement,
            at=answer.at,
        )
        for answer in rows
    )
