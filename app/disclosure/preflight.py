"""The pre-flight: 24 hours and 1 hour before an embargo ends, every document the lift will
publish (the page, the CVE record, the OSV record, the CSAF advisory, the announcement) is built
from the fields as the lift will reveal them and checked, together with what a CNA must give
for a CVE record (a CVE id, a description, affected products it can read). What is wrong is
mailed to the team and shown on the dashboard while there is time to fix it.

It never holds the lift: an embargo end is a promise to the public and to the reporter, so the
lift publishes on time what exists, and skips only what cannot be made (no CVE id: no CVE
record; app.disclosure.lift says "skipped: ..." for it).

Each window runs once per embargo end, recorded on the vulnerability (reminders_sent, as the
reminders are), so the reconciler may call `run_due` at any time, and a moved end gets its own
pre-flights. Nothing here reaches anything public.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core import markdown, steps
from app.core.config import Settings
from app.core.db import serialise, write_transaction
from app.core.errors import ForewarnError
from app.disclosure import letters, lift, redaction
from app.models import Vulnerability
from app.outbox import deliveries
from app.outbox.text import common
from app.vulns import affected

# Nearest first, as app.core.steps wants them.
WINDOWS = (("1 hour", timedelta(hours=1)), ("24 hours", timedelta(hours=24)))
LIFTABLE = lift.LIFTABLE  # the states whose lift publishes (new and triage are held)
SHOWN_FOR = timedelta(hours=24)  # the dashboard shows the lifts this close
KIND = "preflight"
_PREFIX = "preflight:"


@dataclass(frozen=True)
class Finding:
    """One thing wrong with what the lift will publish. `what` and `fix` name no private
    content (they go into mail signed but not encrypted); `detail` may quote it (a
    validator's words), for the team's dashboard and the operator's command line alone."""

    document: str  # "CVE id", "description", "affected", "title", "page", "cve", "osv", ...
    what: str
    fix: str
    detail: str = ""
    # The fix is another module's message, which might quote the private fields: the mail
    # points to the dashboard for it instead.
    fix_is_quoted: bool = False

    def line(self) -> str:
        return f"{self.document}: {self.what}. Fix: {self.fix}"

    def for_mail(self, v: Vulnerability) -> list[str]:
        """[document, what, fix] as the mail may say them (the payload keeps these)."""
        fix = self.fix
        if self.fix_is_quoted:
            fix = f"as `forewarn preflight {v.tracking_id}` or the team's dashboard says"
        return [self.document, self.what, fix]


def check(v: Vulnerability, at: datetime, settings: Settings) -> list[Finding]:
    """Everything wrong with what v's lift will publish, built now as a dry run; [] when it
    is all ready. `at` is when the check runs (the documents carry the embargo's end)."""
    v = Vulnerability.get_by_id(v.id)
    findings = _required(v)
    if v.embargo_until is None:
        return findings
    view = redaction.revealed(v, v.embargo_until)
    unreadable = any(f.document == "affected" and f.detail for f in findings)
    if not unreadable:  # no record can be made of affected text that does not read: said once
        missing_affected = any(f.document == "affected" for f in findings)
        findings += _documents(v, settings, skip_cve=v.cve_id is None or missing_affected)
    findings += _page(view)
    findings += _announcement(view, settings)
    return findings


def _set(v: Vulnerability, field: str, example: str) -> str:
    return f"forewarn vulns set {v.tracking_id} {field} {example} (or its page's form)"


def _required(v: Vulnerability) -> list[Finding]:
    """What a CNA must give for a CVE record: an id, a description, affected products."""
    found = []
    if v.cve_id is None:
        found.append(
            Finding(
                "CVE id",
                "none assigned, so the lift publishes no CVE record",
                f"forewarn cve assign {v.tracking_id}",
            )
        )
    if not v.title.strip():
        found.append(Finding("title", "empty", _set(v, "title", "'Heap overflow in ...'")))
    if not v.description.strip():
        found.append(
            Finding("description", "empty", _set(v, "description", "'What it is, where, impact'"))
        )
    example = "'zephyr >=3.0 <4.2'"
    if not v.affected.strip():
        found.append(
            Finding("affected", "no product or version given", _set(v, "affected", example))
        )
    else:
        try:
            affected.parse(v.affected)
        except ForewarnError as exc:
            found.append(
                Finding(
                    "affected",
                    "not PRODUCT RANGE items separated by ';'",
                    _set(v, "affected", example),
                    str(exc),
                )
            )
    return found


def _documents(v: Vulnerability, settings: Settings, skip_cve: bool) -> list[Finding]:
    """Each record the lift publishes, built and validated. Not the CVE record when a finding
    above already says why it cannot be made (no CVE id, no affected products)."""
    # Imported here: the validators take about a second to import, which the reconciler and
    # every command that imports this module would otherwise pay (as app.disclosure.lift).
    from app.disclosure import exports

    found = []
    for kind in exports.KINDS:
        if kind == "cve" and skip_cve:
            continue
        try:
            exports.validate(kind, exports.document_at_lift(kind, v, settings), settings)
        except exports.InvalidDocument as exc:
            found.append(
                Finding(
                    kind,
                    f"the {kind} record would not validate (at {exc.path})",
                    "correct the field that path names; `forewarn preflight "
                    f"{v.tracking_id}` shows the validator's words",
                    exc.message,
                )
            )
        except ForewarnError as exc:  # cannot be built: its message says how to fix it
            reason = str(exc).splitlines()[0]
            found.append(Finding(kind, f"the {kind} record cannot be made", reason, "", True))
        except Exception as exc:  # a bug: said, never stopping the other checks
            found.append(_bug(kind, exc))
    return found


def _page(view: redaction.Published) -> list[Finding]:
    """The page's text as the page renders it (sanitised Markdown)."""
    try:
        if view.description.strip() and not markdown.to_html(view.description).strip():
            return [
                Finding(
                    "page",
                    "the description renders to nothing",
                    "write the description as plain text or Markdown",
                )
            ]
    except Exception as exc:
        return [_bug("page", exc)]
    return []


def _announcement(view: redaction.Published, settings: Settings) -> list[Finding]:
    try:
        subject, body = letters.announcement_text(view, settings, common(None, settings))
    except Exception as exc:
        return [_bug("announcement", exc)]
    if "\n" in subject or "\r" in subject:
        return [
            Finding(
                "announcement",
                "the title spans several lines, which a subject cannot",
                "give it a title on one line",
            )
        ]
    if view.id not in body:
        return [_bug("announcement", RuntimeError("the body does not name the vulnerability"))]
    return []


def _bug(document: str, exc: Exception) -> Finding:
    return Finding(
        document,
        f"building it failed ({type(exc).__name__})",
        "report this to Forewarn's maintainers with the server log",
        str(exc).splitlines()[0] if str(exc) else "",
    )


# -- when it runs ------------------------------------------------------------------------------


def watched():
    """The lifts a pre-flight prepares: accepted or fixed vulnerabilities with an embargo end."""
    return Vulnerability.select().where(
        Vulnerability.status.in_(LIFTABLE), Vulnerability.embargo_until.is_null(False)
    )


def awaiting(at: datetime):
    """Every lift still to come, soonest first (the command line checks them all)."""
    return (
        watched()
        .where(Vulnerability.embargo_until > at)
        .order_by(Vulnerability.embargo_until, Vulnerability.id)
    )


def run_due(at: datetime, settings: Settings) -> int:
    """Run every pre-flight whose window has come and that has not run for this embargo end;
    returns how many ran. The team is mailed when one finds something, and when one finds all
    clear after an earlier one for the same end did not."""
    candidates = watched().where(
        Vulnerability.embargo_until > at, Vulnerability.embargo_until <= at + WINDOWS[-1][1]
    )
    return sum(_run(v, at, settings) for v in candidates)


def _key(v: Vulnerability, window: str) -> str:
    return f"{_PREFIX}{v.embargo_until.isoformat()}:{window}"


def _run(v: Vulnerability, at: datetime, settings: Settings) -> int:
    window = steps.due(WINDOWS, v.embargo_until, at)
    if window is None:
        return 0
    with write_transaction():
        serialise(f"preflight-{v.id}")  # two reconcilers: one pre-flight, one mail
        v = Vulnerability.get_by_id(v.id)
        if v.status not in LIFTABLE or v.embargo_until is None:
            return 0
        key = _key(v, window)
        ran = json.loads(v.reminders_sent or "{}")
        if key in ran:
            return 0
        findings = check(v, at, settings)
        earlier = [
            record
            for name, record in ran.items()
            if name.startswith(f"{_PREFIX}{v.embargo_until.isoformat()}:")
        ]
        told = [f.for_mail(v) for f in findings]
        ran[key] = {"at": at.isoformat(), "findings": told}
        Vulnerability.update(reminders_sent=json.dumps(ran, sort_keys=True)).where(
            Vulnerability.id == v.id
        ).execute()
        was_wrong = any(isinstance(r, dict) and r.get("findings") for r in earlier)
        if findings or was_wrong:
            payload = {
                "window": window,
                "embargo_until": v.embargo_until.isoformat(),
                "findings": told,
            }
            deliveries.queue_to_team(KIND, at, payload, vulnerability=v)
    return 1


def last_run(v: Vulnerability) -> tuple[str, datetime] | None:
    """The latest pre-flight window run for v's current embargo end, and when; None if none."""
    if v.embargo_until is None:
        return None
    ran = json.loads(v.reminders_sent or "{}")
    prefix = f"{_PREFIX}{v.embargo_until.isoformat()}:"
    runs = [
        (name.removeprefix(prefix), datetime.fromisoformat(record["at"]))
        for name, record in ran.items()
        if name.startswith(prefix) and isinstance(record, dict)
    ]
    return max(runs, key=lambda run: run[1]) if runs else None


# -- what the team sees ------------------------------------------------------------------------


@dataclass(frozen=True)
class Upcoming:
    vulnerability: Vulnerability
    findings: list[Finding]
    last_run: tuple[str, datetime] | None


def upcoming(at: datetime, settings: Settings, within: timedelta = SHOWN_FOR) -> list[Upcoming]:
    """For the dashboard: each lift due within `within`, soonest first, with what a pre-flight
    finds now (so a fixed field clears at once) and when the last scheduled one ran."""
    rows = awaiting(at).where(Vulnerability.embargo_until <= at + within)
    return [Upcoming(v, check(v, at, settings), last_run(v)) for v in rows]
