"""Withdrawal (#18): a published vulnerability that proves not to be one is withdrawn, never
deleted. Its page, feed entry and records stay where consumers found them and say so with the
team's reason: the OSV record gets `withdrawn`, the CSAF advisory a final revision saying it,
the CVE record becomes REJECTED (in CVE Services mode the record is rejected there by the
publication's cve-record step, as an update after a revision is). The withdrawal is a revision
(app.vulns.revisions), so every record's version and modification time move with it.

There is no undo: a REJECTED CVE record and an OSV `withdrawn` are final for the consumers that
read them. A vulnerability that is not published yet is rejected instead.
"""

from datetime import datetime

from app.core import audit, timefmt
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import CveId, Vulnerability
from app.vulns import revisions
from app.vulns.lifecycle import Actor

SUMMARY = "Withdrawn"


def withdraw(v: Vulnerability, reason: str, actor: Actor, at: datetime) -> Vulnerability:
    """Mark v withdrawn at `at` with `reason` (shown publicly); audited and a revision. Its CVE
    id becomes rejected in the inventory (release notes name it no more)."""
    reason = " ".join(reason.split())
    if not reason:
        raise Refused("withdrawing needs a reason (--reason); the page and every record show it")
    with write_transaction():
        v = Vulnerability.get_by_id(v.id)  # read again inside the transaction
        _refuse(v, at)
        cve = CveId.get_by_id(v.cve_id) if v.cve_id else None
        Vulnerability.update(withdrawn_at=at, withdrawn_reason=reason, updated_at=at).where(
            Vulnerability.id == v.id
        ).execute()
        if cve is not None:
            CveId.update(state="rejected", reason=f"withdrawn: {reason}").where(
                CveId.id == cve.id
            ).execute()
        revisions.add(v, f"{SUMMARY}: {reason}", at)
        audit.record(
            actor.user,
            "vuln.withdraw",
            at,
            target=v.tracking_id,
            details={
                "reason": reason,
                "cve": cve.cve_id if cve else None,
                "before": {"withdrawn": False, "cve_state": cve.state if cve else None},
                "after": {"withdrawn": True, "cve_state": "rejected" if cve else None},
            },
            actor_label=actor.label,
        )
    return Vulnerability.get_by_id(v.id)


def _refuse(v: Vulnerability, at: datetime) -> None:
    if v.withdrawn_at is not None:
        raise Refused(
            f"{v.tracking_id} was already withdrawn on {timefmt.minute(v.withdrawn_at)}; "
            "there is nothing more to do"
        )
    if not revisions.is_public(v, at):
        raise Refused(
            f"{v.tracking_id} is {v.status}, not published: only a published vulnerability is "
            f"withdrawn; reject it before the lift instead "
            f"(`forewarn vulns set {v.tracking_id} status rejected --reason R`)"
        )
