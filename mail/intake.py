"""The SMTP (or LMTP) intake at FOREWARN_INTAKE_LISTEN.

Only cheap checks happen here: is the recipient ours, is the message too large, does it meet
the plaintext policy. Then the raw bytes are committed to the database by a writer thread (never
on the event loop), and only after that commit does the sender get 250. Anything that prevents
the commit answers 451, so the sending server keeps the message and retries. Processing happens
in a worker.
"""

import asyncio
import logging
import queue
import re
import signal
import ssl
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from mail import addresses

log = logging.getLogger("forewarn.intake")

ACCEPTED = "250 2.0.0 Message accepted"
TEMPORARY = "451 4.3.0 Temporary local problem; please try again later"
UNKNOWN_RECIPIENT = "550 5.1.1 No such mailbox here"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; please try again later"


@dataclass(frozen=True)
class IntakePolicy:
    security_address: str
    max_message_bytes: int
    max_recipients: int = 50
    max_connections: int = 200
    max_connections_per_address: int = 100
    command_timeout: float = 120.0
    refuse_plaintext: bool = False
    plaintext_refusal: str = ""  # the 550 text: how to encrypt and where the key is


_ENCRYPTED = re.compile(
    rb"-----BEGIN PGP MESSAGE-----|multipart/encrypted|application/pgp-encrypted", re.IGNORECASE
)


def looks_encrypted(raw: bytes) -> bool:
    """A cheap look for OpenPGP encryption; the worker decides for real."""
    return _ENCRYPTED.search(raw) is not None


class ConnectionLimits:
    def __init__(self, total: int, per_address: int):
        self.total, self.per_address = total, per_address
        self.by_address: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        if sum(self.by_address.values()) >= self.total:
            return False
        if self.by_address[address] >= self.per_address:
            return False
        self.by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class GroupCommitter:
    """One writer thread for the whole intake: it commits every message waiting at that moment
    in one transaction (one connection kept open, one disk sync), then answers each sender's
    session. Under a burst this costs far less than a connection and a sync per message.

    `commit(batch)` stores [(raw, envelope_from, recipients), ...] durably and returns their
    ids; `after_commit(ids)` hands them to the workers (a failure there loses nothing: the
    reconciler finds stored messages that were never queued).
    """

    MAX_BATCH = 64

    def __init__(
        self,
        commit: Callable[[list[tuple[bytes, str, list[str]]]], list[int]],
        after_commit: Callable[[list[int]], None],
    ):
        self.commit, self.after_commit = commit, after_commit
        self.waiting: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self.thread.start()

    async def store(self, raw: bytes, envelope_from: str, recipients: list[str]) -> int:
        """The message's id, once it is committed; raises if it could not be."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting.put(((raw, envelope_from, recipients), loop, answer))
        return await answer

    def close(self) -> None:
        self.waiting.put(None)
        self.thread.join(30)

    def _run(self) -> None:
        while (first := self.waiting.get()) is not None:
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.waiting.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch) -> None:
        try:
            ids = self.commit([message for message, _, _ in batch])
        except Exception as exc:  # nothing was stored: every sender gets 451 and retries
            for _, loop, answer in batch:
                loop.call_soon_threadsafe(_settle, answer, None, exc)
            return
        for (_, loop, answer), message_id in zip(batch, ids, strict=True):
            loop.call_soon_threadsafe(_settle, answer, message_id, None)
        try:
            self.after_commit(ids)
        except Exception as exc:
            log.warning("messages %s stored but not queued: %s", ids, type(exc).__name__)


def _settle(answer: asyncio.Future, result, error) -> None:
    if answer.done():  # the session went away meanwhile
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


class IntakeHandler:
    """aiosmtpd hooks. `store` (a coroutine, e.g. GroupCommitter.store) returns a message's id
    only once it is durably committed."""

    def __init__(self, policy: IntakePolicy, store: Callable[..., Awaitable[int]]):
        self.policy = policy
        self.store = store

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not addresses.accepts(address, self.policy.security_address):
            return UNKNOWN_RECIPIENT
        if len(envelope.rcpt_tos) >= self.policy.max_recipients:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        if (
            self.policy.refuse_plaintext
            and not looks_encrypted(raw)
            and not self._answers(envelope)
        ):
            return f"550 5.7.1 {self.policy.plaintext_refusal}"
        try:
            message_id = await self.store(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception as exc:  # any failure to commit: the sender must retry
            log.error("could not store a message from %s: %s", session.peer[0], type(exc).__name__)
            return TEMPORARY
        log.info("stored message %d (%d bytes)", message_id, len(raw))
        return ACCEPTED

    def _answers(self, envelope) -> bool:
        """Answers to alerts only (a clear-signed answer need not be encrypted)."""
        security = self.policy.security_address
        return all(addresses.answers_detail(a, security) is not None for a in envelope.rcpt_tos)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default answers 500 with internal text; the sender only learns to retry.
        log.error("intake error: %s", type(error).__name__)
        return TEMPORARY


class _Limited:
    """Connection limits for the aiosmtpd protocol classes (mixed in before SMTP or LMTP)."""

    # Real mail has lines far longer than RFC 5321's 1000 octets.
    line_length_limit = 1 << 20
    limits: ConnectionLimits

    async def _handle_client(self) -> None:
        peer = self.session.peer[0] if self.session and self.session.peer else "?"
        if not self.limits.admit(peer):
            await self.push(TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        try:
            await super()._handle_client()
        finally:
            self.limits.release(peer)


class IntakeSMTP(_Limited, SMTP):
    pass


class IntakeLMTP(_Limited, LMTP):
    pass


def protocol_factory(
    handler: IntakeHandler,
    hostname: str,
    lmtp: bool = False,
    tls_context: ssl.SSLContext | None = None,
) -> Callable[[], SMTP]:
    policy = handler.policy
    limits = ConnectionLimits(policy.max_connections, policy.max_connections_per_address)
    cls = IntakeLMTP if lmtp else IntakeSMTP

    def make() -> SMTP:
        server = cls(
            handler,
            hostname=hostname,
            ident="Forewarn intake",
            data_size_limit=policy.max_message_bytes,
            timeout=policy.command_timeout,
            tls_context=tls_context,
        )
        server.limits = limits
        return server

    return make


async def serve(host: str, port: int, factory: Callable[[], SMTP]) -> None:
    """Serve until SIGTERM or SIGINT."""
    # aiosmtpd logs every command (addresses included) at INFO: keep only its problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host, port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("intake listening on %s:%d", host, port)
    async with server:
        await stop.wait()
    log.info("intake stopped")
