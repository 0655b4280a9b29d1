"""Inbound messages as rows: stored durably at intake, claimed by a worker, quarantined on failure.

The raw bytes are the record: everything later is derived from them, never from a re-serialised
message.
"""

import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime

import peewee

from app.core import retry
from app.core.db import write_transaction
from app.models import InboundMessage

LEASE = retry.LEASE
MAX_ATTEMPTS = 3


class LeaseLost(Exception):  # noqa: N818 (a lost race, not an error to report)
    """Another worker claimed the message after this one's lease ran out: this one's work on it
    must be thrown away (raised inside the finishing transaction, so it rolls back)."""


def store(raw: bytes, envelope_from: str, recipients: list[str], at: datetime) -> int:
    """Commit the message; return its id only once it is durable (the intake then says 250)."""
    return store_many([(raw, envelope_from, recipients)], at)[0]


def committer(database, now) -> Callable[[list[tuple[bytes, str, list[str]]]], list[int]]:
    """store_many for the intake's writer thread: it keeps its connection open between batches,
    and drops a broken one so that the next batch reconnects."""

    def commit(messages: list[tuple[bytes, str, list[str]]]) -> list[int]:
        try:
            _drop_if_dead(database)  # e.g. PostgreSQL restarted while the intake was idle
            database.connect(reuse_if_open=True)
            return store_many(messages, now())
        except Exception:
            if not database.is_closed():
                database.close()
            raise

    return commit


def _drop_if_dead(database) -> None:
    """Close a kept connection that no longer answers (checked before the batch, so a batch is
    never tried twice: a retry after a failed commit could store it twice)."""
    if database.is_closed():
        return
    try:
        database.execute_sql("SELECT 1")
    except (peewee.OperationalError, peewee.InterfaceError):
        # peewee forgets the connection even when the driver complains about closing it
        with contextlib.suppress(peewee.OperationalError, peewee.InterfaceError):
            database.close()


def store_many(messages: list[tuple[bytes, str, list[str]]], at: datetime) -> list[int]:
    """Commit several messages in one transaction (one disk sync); their ids, in order."""
    with write_transaction():
        return [
            InboundMessage.create(
                raw=raw,
                sha256=hashlib.sha256(raw).hexdigest(),
                envelope_from=envelope_from or "",
                envelope_to="\n".join(recipients),
                received_at=at,
            ).id
            for raw, envelope_from, recipients in messages
        ]


def claim(message_id: int, at: datetime) -> InboundMessage | None:
    """Take the message for processing until the lease ends; None if done or held by another.

    The claim's attempt number is its token: finish() and release() act only while no later
    claim has been made (a worker that outlived its lease finds that it has lost it)."""
    with write_transaction():
        claimed = (
            InboundMessage.update(claimed_until=at + LEASE, attempts=InboundMessage.attempts + 1)
            .where(
                InboundMessage.id == message_id,
                InboundMessage.state == "received",
                InboundMessage.claimed_until.is_null() | (InboundMessage.claimed_until < at),
            )
            .execute()
        )
    return InboundMessage.get_by_id(message_id) if claimed else None


def _ours(message: InboundMessage):
    return (
        (InboundMessage.id == message.id)
        & (InboundMessage.state == "received")
        & (InboundMessage.attempts == message.attempts)
    )


def finish(message: InboundMessage, state: str, at: datetime, error: str = "") -> None:
    """Record how processing ended. Raises LeaseLost when another worker has claimed the
    message since (call it inside the transaction that holds the work, which then rolls back:
    of two workers on one message, exactly one finishes it)."""
    finished = (
        InboundMessage.update(state=state, processed_at=at, claimed_until=None, error=error[:2000])
        .where(_ours(message))
        .execute()
    )
    if not finished:
        raise LeaseLost(f"message {message.id} was claimed again by another worker")


def release(message: InboundMessage, error: str) -> None:
    """Processing failed: let the reconciler retry later (and quarantine after MAX_ATTEMPTS).
    A claim that another worker has taken over since is left to that worker."""
    InboundMessage.update(claimed_until=None, error=error[:2000]).where(_ours(message)).execute()


def due(at: datetime) -> peewee.ModelSelect:
    """Messages still to be processed and held by no live worker."""
    return InboundMessage.select(InboundMessage.id).where(
        InboundMessage.state == "received",
        InboundMessage.claimed_until.is_null() | (InboundMessage.claimed_until < at),
    )
