"""The team's replies to a reporter: kept in the case's thread and queued to the reporter."""

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Correspondence, User, Vulnerability
from app.outbox import deliveries
from app.outbox.text import usable_key
from app.reports import followup
from app.vulns import cases


def reply_to_reporter(
    vulnerability: Vulnerability,
    author: User | None,
    text: str,
    at,
    actor_label: str | None = None,
) -> Correspondence:
    """A team member's reply (or an operator's: author None, `actor_label` "cli:NAME"): kept
    in the thread and queued to the reporter (encrypted when their key is known; otherwise the
    reporter gets a signed notice without the text). A reporter without an address is mailed
    nothing: the reply is kept for their follow-up page, if the case has a live link."""
    text = text.strip()
    if not text:
        raise Refused("write a reply before sending it")
    # A reporter who gave no address (the web form) reads replies on their follow-up page.
    mailed = bool(vulnerability.reporter_email)
    if not mailed and followup.live(cases.case_id(vulnerability)) is None:
        raise Refused(f"{vulnerability.tracking_id} has no reporter address to reply to")
    with write_transaction():
        entry = Correspondence.create(
            vulnerability=vulnerability,
            direction="out",
            author=author,
            at=at,
            subject=f"Re: {vulnerability.title}"[:250],
            text=text,
            signature_status="signed",
            encrypted=usable_key(vulnerability.reporter_key) is not None,
        )
        if mailed:
            delivery = deliveries.queue(
                "reply",
                vulnerability.reporter_email,
                at,
                vulnerability=vulnerability,
                payload={"correspondence": entry.id},
            )
            Correspondence.update(delivery=delivery).where(Correspondence.id == entry.id).execute()
            entry.delivery = delivery
        audit.record(
            author,
            "report.reply",
            at,
            target=vulnerability.tracking_id,
            details={"correspondence": entry.id},
            actor_label=actor_label,
        )
    return entry
