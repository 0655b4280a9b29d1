"""Retention: raw inbound mail and decrypted correspondence do not stay forever.

FOREWARN_RETENTION_DAYS (default 365) after a vulnerability's publication or rejection, its
correspondence's text and subject become "[purged YYYY-MM-DD]", so do the names of the files
reporters attached (their content is deleted: app/reports/attachments.py), and the raw bytes of the
inbound messages linked to it become empty. Quarantined and junk messages linked to no
vulnerability, and product makers' answers to alerts, are purged the same time after their
receipt. The rows stay, so ids, threading (Message-ID headers) and the audit trail survive.

Idempotent: a purged row no longer matches, so a pass can run at any time; the reconciler runs
one a day (tick()), `forewarn purge-due` one at once. Each pass that purged anything is recorded
as one audit event ("retention.purge") with counts, never contents.
"""

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import JOIN, fn

from app.core import audit
from app.core.db import write_transaction
from app.models import AuditEvent, Correspondence, InboundMessage, Vulnerability
from app.reports import attachments

log = logging.getLogger("forewarn.retention")

ACTION = "retention.purge"
JUNK_STATES = ("quarantined", "junk")
# Mail linked to no vulnerability, purged the same time after its receipt: held mail, and
# product makers' answers to alerts (the Answer rows keep what was said).
UNLINKED_STATES = (*JUNK_STATES, "answer")
RUN_EVERY_SECONDS = 24 * 3600
_BATCH = 500

_last_run: float | None = None


@dataclass
class Purged:
    vulnerabilities: int = 0
    correspondence: int = 0
    messages: int = 0  # raw inbound messages linked to those vulnerabilities
    unlinked: int = 0  # quarantined/junk messages linked to none

    @property
    def total(self) -> int:
        return self.correspondence + self.messages + self.unlinked

    def as_dict(self) -> dict:
        return {
            "vulnerabilities": self.vulnerabilities,
            "correspondence": self.correspondence,
            "messages": self.messages,
            "unlinked_messages": self.unlinked,
        }


def marker(at: datetime) -> str:
    return f"[purged {at.date().isoformat()}]"


def _unpurged_correspondence():
    return ~Correspondence.text.startswith("[purged ") | ~Correspondence.subject.startswith(
        "[purged "
    )


def _has_raw():
    return fn.LENGTH(InboundMessage.raw) > 0


def purge_correspondence(ids: list[int], at: datetime) -> int:
    """Blank the text and subject of these correspondence rows (not yet purged), and purge
    the files attached to them."""
    attachments.purge(ids, marker(at))
    count = 0
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        count += (
            Correspondence.update(text=marker(at), subject=marker(at))
            .where(Correspondence.id.in_(chunk), _unpurged_correspondence())
            .execute()
        )
    return count


def purge_messages(ids: list[int]) -> int:
    """Empty the raw bytes of these inbound messages (not yet purged)."""
    count = 0
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        count += (
            InboundMessage.update(raw=b"").where(InboundMessage.id.in_(chunk), _has_raw()).execute()
        )
    return count


def purge_vulnerability(v: Vulnerability, at: datetime) -> tuple[int, int]:
    """Purge one vulnerability's correspondence and raw messages; (correspondence, messages)."""
    rows = list(
        Correspondence.select(Correspondence.id, Correspondence.message).where(
            Correspondence.vulnerability == v.id
        )
    )
    texts = purge_correspondence([row.id for row in rows], at)
    raws = purge_messages([row.message_id for row in rows if row.message_id is not None])
    return texts, raws


def rejected_at(v: Vulnerability) -> datetime:
    """When it was rejected: the audit log's last "vuln.status" to rejected (its last change
    otherwise)."""
    for event in (
        AuditEvent.select()
        .where(AuditEvent.action == "vuln.status", AuditEvent.target == v.tracking_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    ):
        if json.loads(event.details or "{}").get("after") == "rejected":
            return event.at
    return v.updated_at


def _with_content():
    """Vulnerabilities that still hold correspondence or raw mail to purge."""
    pending = (
        Correspondence.select(Correspondence.vulnerability)
        .join(
            InboundMessage,
            on=(Correspondence.message == InboundMessage.id),
            join_type=JOIN.LEFT_OUTER,
        )
        .where(_unpurged_correspondence() | (InboundMessage.id.is_null(False) & _has_raw()))
    )
    return Vulnerability.id.in_(pending)


def due(at: datetime, days: int) -> list[Vulnerability]:
    """Vulnerabilities published or rejected `days` ago or more that still hold content."""
    cutoff = at - timedelta(days=days)
    published = Vulnerability.select().where(
        Vulnerability.status == "published",
        Vulnerability.published_at.is_null(False),
        Vulnerability.published_at <= cutoff,
        _with_content(),
    )
    rejected = Vulnerability.select().where(Vulnerability.status == "rejected", _with_content())
    found = list(published.order_by(Vulnerability.id))
    found += [v for v in rejected.order_by(Vulnerability.id) if rejected_at(v) <= cutoff]
    return found


def purge_due(at: datetime, days: int, actor_label: str = "system") -> Purged:
    """Purge everything past its time; one audit event with the counts if anything was."""
    purged = Purged()
    cutoff = at - timedelta(days=days)
    with write_transaction():
        for v in due(at, days):
            texts, raws = purge_vulnerability(v, at)
            if texts or raws:
                purged.vulnerabilities += 1
            purged.correspondence += texts
            purged.messages += raws
        linked = Correspondence.select(Correspondence.message).where(
            Correspondence.message.is_null(False)
        )
        unlinked = InboundMessage.select(InboundMessage.id).where(
            InboundMessage.state.in_(UNLINKED_STATES),
            InboundMessage.received_at <= cutoff,
            _has_raw(),
            InboundMessage.id.not_in(linked),
        )
        purged.unlinked = purge_messages([m.id for m in unlinked])
        if purged.total:
            audit.record(
                None,
                ACTION,
                at,
                details={**purged.as_dict(), "retention_days": days},
                actor_label=actor_label,
            )
    return purged


def tick(at: datetime, settings) -> Purged | None:
    """The reconciler's call: purge_due() about once a day in this process (at start too)."""
    global _last_run
    if _last_run is not None and time.monotonic() - _last_run < RUN_EVERY_SECONDS:
        return None
    _last_run = time.monotonic()
    purged = purge_due(at, settings.retention_days)
    if purged.total:
        log.info("retention purged %s", purged.as_dict())
    return purged
