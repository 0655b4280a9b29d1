"""Splitting a report: one new vulnerability per title, in the same case, at once.

Each new one starts as a new report would (state `new`: nothing of it is public, alerted or
lifted until the team accepts it on its own) with the case's reporter (name, address, key,
whether to credit them), its dates (reported, fix due, embargo end), its credits and its
assignee; its description is empty (the report is the case's thread, shown from every
vulnerability of the case). The vulnerability split from stays as it was.
"""

from datetime import datetime

from app.core import audit, oneline
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Vulnerability
from app.vulns import casemap, cases, lifecycle

MAX_TITLES = 100


def titles_of(text: str) -> list[str]:
    """Titles as the web form takes them: one per line, blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def split(
    v: Vulnerability, titles: list[str], actor: lifecycle.Actor, at: datetime, settings: Settings
) -> list[Vulnerability]:
    """One new vulnerability per title in v's case; all or none (one transaction), audited on
    v and on each new one."""
    wanted = [oneline.checked(title, "title")[:250] for title in titles]
    wanted = [title for title in wanted if title]
    if not wanted:
        raise Refused("give at least one title for the new vulnerabilities")
    if len(wanted) > MAX_TITLES:
        raise Refused(f"at most {MAX_TITLES} vulnerabilities in one split")
    root = cases.root(v)
    made = []
    with write_transaction():
        for title in wanted:
            new = Vulnerability.create(
                tracking_id=lifecycle.next_tracking_id(settings.tracking_prefix, at.year),
                title=title,
                status="new",
                case_root=root,
                reporter_email=root.reporter_email,
                reporter_name=root.reporter_name,
                reporter_key=root.reporter_key_id,
                credit_reporter=root.credit_reporter,
                credits=root.credits,
                assignee=root.assignee_id,
                deploy_before_lift=root.deploy_before_lift,
                reported_at=root.reported_at,
                fix_due=root.fix_due,
                embargo_until=root.embargo_until,
                created_at=at,
                updated_at=at,
            )
            audit.record(
                actor.user,
                "vuln.create",
                at,
                target=new.tracking_id,
                details={"title": title, "split_from": v.tracking_id, "case": root.tracking_id},
                actor_label=actor.label,
            )
            made.append(new)
        audit.record(
            actor.user,
            "vuln.split",
            at,
            target=v.tracking_id,
            details={"case": root.tracking_id, "created": [n.tracking_id for n in made]},
            actor_label=actor.label,
        )
        casemap.tell_reporter(root, at)  # the reporter hears the new map, batched
    return made
