"""Product makers answer an alert by replying to it (#17): the reply goes to the version's
answers address (app/registry/answer_address.py), never to the reporter's case.

An answer counts only when it comes from the registrant's registered address (the From line)
and carries a good signature by their pinned key (clear-signed, or PGP/MIME; encrypted to the
service key or not). Then the lines it was signed with are read (`read`) and recorded as
app.registry.answers records a web answer, with via="mail", and the sender gets a reply saying
what was recorded (`answer-recorded`). Anything else records nothing and gets a short signed
reply saying why and how to fix it (`answer-refused`), unless it is automatic mail or the
address had too many already; a sender who is not a registrant alerted about the advisory is
told nothing about it. An answer never creates a vulnerability, never joins a case's thread and
is never forwarded to the team as a report. A message to an answers address with a wrong token
is kept for a human and answered not at all.

The lines, each at the start of a line (names in any case; quoted lines, starting with ">",
and everything after a signature separator "-- " are skipped; other text is ignored):

    Status: affected | not_affected | fixed | under_investigation
    Justification: one of answers.JUSTIFICATIONS (with not_affected, and only with it)
    Statement: free text, to the end of its paragraph (the next blank line or field line)
    Consent: yes | no (publish the status and statement after the lift; no when absent)

Without a `Vulnerability:` line the answer is about every vulnerability the mail covered (a
bundle's too). With them, each `Vulnerability: <tracking id or CVE id>` line starts the answer
about that one alone, and the fields follow it; vulnerabilities no block names keep their
answer. Any line that cannot be read refuses the whole message: nothing of it is recorded.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import (
    Advisory,
    CveId,
    Delivery,
    InboundMessage,
    PublicKey,
    Registrant,
    User,
)
from app.outbox import deliveries
from app.registry import alerts, answers
from app.registry.answer_address import Addressed
from app.reports import inbound
from keys.keyring import ServiceKeyring
from mail import addresses, hygiene, mime
from mail.parse import ParsedMessage, parse

log = logging.getLogger("forewarn.registry.mail_answers")

STATE = "answer"  # the InboundMessage state of a message to an answers address we read
RECORDED, REFUSED = "answer-recorded", "answer-refused"
REFUSALS_PER_ADDRESS_PER_HOUR = 5
FIELDS = ("vulnerability", "status", "justification", "statement", "consent")
_FIELD = re.compile(r"^([A-Za-z]+)[ \t]*:[ \t]*(.*)$")
_FORWARDED = re.compile(r"^-{2,}\s*(original message|forwarded message)\s*-{2,}$", re.IGNORECASE)
_CONSENT = {"yes": True, "no": False}


@dataclass(frozen=True)
class Block:
    """The fields written for one answer (`vulnerability` None: about every one covered)."""

    vulnerability: str | None
    status: str = ""
    justification: str = ""
    statement: str = ""
    consent: str = ""


def process(
    message: InboundMessage,
    answering: Addressed,
    keyring: ServiceKeyring,
    settings: Settings,
    at: datetime,
) -> str:
    """Read, check and record (or refuse) one message to an answers address, finishing it."""
    advisory = None
    if answering.advisory_id is not None:
        advisory = Advisory.get_or_none(Advisory.id == answering.advisory_id)
    if advisory is None:  # a forged or mistyped address: kept for a human, answered not at all
        problem = answering.problem or f"advisory {answering.advisory_id} does not exist"
        note = f"answer to {answering.address}: {problem}; kept, not read, not answered"
        log.warning("%s", note)
        with write_transaction():
            inbound.finish(message, "quarantined", at, note)
        return "answer"
    raw = bytes(message.raw)
    registrant = _registrant_of(_from_header(raw))
    key = registrant.key if registrant is not None else None
    parsed = parse(raw, keyring, [key.armored] if key is not None else [], at=at)
    with write_transaction():
        if _is_retry(message, parsed.message_id):
            inbound.finish(message, STATE, at, "a retried delivery of an answer already read")
            return "duplicate"
        InboundMessage.update(message_id_header=parsed.message_id).where(
            InboundMessage.id == message.id
        ).execute()
        automatic = hygiene.automatic(parsed, message.envelope_from)
        if automatic:
            inbound.finish(message, "junk", at, f"{automatic} to an answers address: not read")
            return "junk"
        try:
            recorded = _record(advisory, registrant, parsed, settings, at)
        except Stranger as refusal:
            _refuse(message, parsed, None, str(refusal), settings, at)
            return "answer refused"
        except Refused as refusal:
            _refuse(message, parsed, advisory, str(refusal), settings, at)
            return "answer refused"
        _confirm(message, registrant, advisory, recorded, settings, at)
    return "answer"


class Stranger(Refused):  # noqa: N818 (a refusal that says nothing about the advisory)
    """The sender is not a registrant who may answer this advisory: the reply says only that
    answers come from the registered address of an approved product maker."""


def _record(advisory, registrant, parsed: ParsedMessage, settings: Settings, at):
    """Check everything, then record every answer the message gives; Refused (nothing
    recorded) at the first thing wrong."""
    versions = alerts.carried(advisory)
    if registrant is None or not addresses_match(parsed.from_address, registrant.user.email):
        raise Stranger("not from the registered address of a product maker")
    open_ = [a for a in versions if answers.may_answer(registrant, a.vulnerability)]
    if not open_:
        raise Stranger("from a registrant who may not answer this advisory")
    _check_signature(parsed, registrant, settings)
    given = resolve(read(parsed.signed_text), open_)
    return [
        answers.record(
            registrant,
            version.vulnerability,
            answer,
            via="mail",
            at=at,
            actor_label=f"{registrant.user.email} (signed mail)",
            advisory=version,
        )
        for version, answer in given
    ]


def _check_signature(parsed: ParsedMessage, registrant: Registrant, settings: Settings) -> None:
    pinned = (registrant.pinned_fingerprint or "").upper()
    found = parsed.signature
    how = (
        f"sign it with the key the registry holds for you (fingerprint {pinned}), "
        "clear-signed or PGP/MIME"
    )
    if found.status == "valid" and (found.fingerprint or "").upper() == pinned:
        return
    if found.status == "unsigned":
        raise Refused(f"The answer was not signed: {how}.")
    if found.status == "valid" or found.status == "unknown-key":
        raise Refused(f"The answer was signed with another key: {how}.")
    if found.status in ("expired-key", "revoked-key"):
        status_page = f"{settings.base_url}/registry/status"
        raise Refused(
            f"The answer was signed with a key that is {found.status.partition('-')[0]}: "
            f"register a new key at {status_page}, then sign with it."
        )
    raise Refused(f"The signature does not match the text (changed on the way?): {how}.")


def read(text: str) -> list[Block]:
    """The answer blocks a signed text gives, or Refused saying which line is wrong."""
    blocks: list[dict] = [{"vulnerability": None}]
    current = None  # the field whose text a following line continues (Statement only)
    for line in text.splitlines():
        stripped = line.rstrip()
        if stripped == "--" or _FORWARDED.match(stripped.strip()):
            break  # a signature, or a forwarded or quoted original below
        if stripped.startswith(">"):
            current = None
            continue
        if not stripped.strip():
            current = None
            continue
        found = _FIELD.match(stripped)
        name = found.group(1).lower() if found else ""
        if name not in FIELDS:
            if current == "statement":
                blocks[-1]["statement"] += "\n" + stripped.strip()
            continue
        value = found.group(2).strip()
        if name == "vulnerability":
            blocks.append({"vulnerability": value})
            current = None
            continue
        if name in blocks[-1]:
            raise Refused(f"{found.group(1)}: is written twice for one answer: write it once.")
        blocks[-1][name] = value
        current = name
    first, named = blocks[0], blocks[1:]
    if named and len(first) > 1:
        raise Refused(
            "Write each answer's lines under its Vulnerability: line, or leave out every "
            "Vulnerability: line to answer all alike."
        )
    chosen = named or [first]
    for block in chosen:
        if not block.get("status"):
            where = f" under Vulnerability: {block['vulnerability']}" if named else ""
            raise Refused(
                f"No Status: line found{where}: write e.g. 'Status: affected' at the start of "
                "a line."
            )
    return [Block(**block) for block in chosen]


def resolve(blocks: list[Block], versions: list[Advisory]):
    """(version, answers.Given) for each block: checked by answers.check, and each named
    vulnerability one the versions cover, named once."""
    given = []
    for block in blocks:
        consent = _CONSENT.get((block.consent or "no").strip().lower())
        if consent is None:
            raise Refused(f"Consent: {block.consent!r} is neither yes nor no: write one of them.")
        answer = answers.check(block.status, block.justification, block.statement, consent)
        if block.vulnerability is None:
            given += [(version, answer) for version in versions]
            continue
        version = _named(block.vulnerability, versions)
        if any(v is version for v, _ in given):
            raise Refused(f"{block.vulnerability} is answered twice: answer it once.")
        given.append((version, answer))
    return given


def _named(name: str, versions: list[Advisory]) -> Advisory:
    wanted = name.strip().upper()
    for version in versions:
        v = version.vulnerability
        cve = CveId.get_or_none(CveId.id == v.cve_id) if v.cve_id else None
        if wanted in (v.tracking_id.upper(), (cve.cve_id.upper() if cve else None)):
            return version
    covered = ", ".join(v.vulnerability.tracking_id for v in versions)
    raise Refused(
        f"Vulnerability: {name.strip()[:40]!r} is not one this advisory covers: write one of "
        f"{covered}."
    )


def addresses_match(one: str | None, other: str | None) -> bool:
    """The same mailbox, compared without case (as processing compares a reporter's)."""
    one, other = (one or "").strip().lower(), (other or "").strip().lower()
    return bool(one) and one == other


def _from_header(raw: bytes) -> str:
    try:
        return (mime.sender(mime.headers(mime.split_entity(raw)[0]))[1] or "").lower()
    except Exception:  # unreadable headers: nobody's; parse says what is wrong with them
        return ""


def _registrant_of(address: str) -> Registrant | None:
    """The registrant whose account has this address, with their pinned key."""
    if not address:
        return None
    return (
        Registrant.select(Registrant, User, PublicKey)
        .join(User)
        .switch(Registrant)
        .join(PublicKey, peewee.JOIN.LEFT_OUTER, on=(Registrant.key == PublicKey.id))
        .where(peewee.fn.LOWER(User.email) == address)
        .first()
    )


def _is_retry(message: InboundMessage, message_id_header: str | None) -> bool:
    """The same Message-ID read already as an answer: a sender's retry, recorded once."""
    if not message_id_header:
        return False
    return (
        InboundMessage.select()
        .where(
            InboundMessage.id != message.id,
            InboundMessage.message_id_header == message_id_header,
            InboundMessage.state == STATE,
        )
        .exists()
    )


def _confirm(message, registrant: Registrant, advisory: Advisory, recorded, settings, at):
    """The reply saying what was recorded (app.registry.letters: encrypted to their key)."""
    deliveries.queue(
        RECORDED,
        registrant.user.email,
        at,
        user=registrant.user,
        fingerprint=registrant.pinned_fingerprint,
        payload={
            "registrant": registrant.id,
            "advisory": advisory.id,
            "answers": [row.id for row in recorded],
            "message": message.id,
        },
    )
    names = ", ".join(f"{row.vulnerability.tracking_id} {row.status}" for row in recorded)
    inbound.finish(message, STATE, at, f"answer recorded: {names}")


def _refuse(message, parsed: ParsedMessage, advisory, reason: str, settings, at) -> None:
    """Nothing recorded; a short signed reply to the From address when it is plausible: not
    our own, not answered too often. A stranger's reply (advisory None) says nothing about the
    advisory, not even its answers address; a registrant's names the reason, and replying to
    it answers the advisory again."""
    sender = (parsed.from_address or "").strip()
    note = f"answer refused: {reason}"
    if not sender or addresses.accepts(sender, settings.security_address):
        note += "; not answered (no plausible sender)"
    elif not _may_reply(sender, at):
        note += "; not answered (too many replies to this address this hour)"
    else:
        payload = {"message": message.id, "reason": "", "advisory": None}
        if advisory is not None:  # never a delivery of the advisory (alerts.progress counts those)
            payload.update(reason=reason, advisory=advisory.id)
        deliveries.queue(REFUSED, sender, at, payload=payload)
    inbound.finish(message, STATE, at, note)


def _may_reply(address: str, at: datetime) -> bool:
    recent = Delivery.select().where(
        peewee.fn.LOWER(Delivery.recipient) == address.lower(),
        Delivery.kind == REFUSED,
        Delivery.created_at > at - timedelta(hours=1),
    )
    return recent.count() < REFUSALS_PER_ADDRESS_PER_HOUR
