"""Every kind of mail the desk sends to people outside it, read by two OpenPGP implementations
that are not GnuPG: Sequoia (`sqop`) and RNP (the engine inside Thunderbird).

One product run makes the mail: a report through the processing path (the acknowledgement),
registrants added by an admin, patches attached, an advisory sent, the embargo extended, and
the lift's announcement, notices and publication mail; each delivery is sent by the outbox over
real SMTP to a sink. Each message is then decrypted and verified from the raw bytes as the sink
received them (parts cut out as sent, never regenerated), once with each implementation.
"""

import gzip
import hashlib
import shutil
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import formataddr
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from app.core import clock as app_clock
from app.core import db as app_db
from app.core.config import load_settings
from app.disclosure import announcements, embargo_change
from app.models import Delivery, PublicKey, Vulnerability
from app.models import database as database_proxy
from app.outbox import sending
from app.registry import alerts, vetting
from app.reports import inbound, processing
from app.vulns import lifecycle, patches
from keys.keyring import ServiceKeyring
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PG_URL, free_port, short_tempdir
from tests.openpgp import body_of, encrypted_payload, parse, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink
from tests.test_compose import assert_sendable

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
TOOLS = ("sqop", "rnp")

REPORTED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALERTED = REPORTED + timedelta(hours=1)
EXTENDED = REPORTED + timedelta(hours=2)
ANNOUNCE = "announce@lists.example"

REPORTER_NAME = "Jürgen Müller"
KEYLESS_NAME = "Åsa Öberg"
ORGANISATION = "Jürgen Müller, Ærø, 漏洞 PSIRT"
TITLE = "Überlauf im Ærø-Parser (漏洞)"
KEYLESS_TITLE = "Absturz beim Import in Ærø"
REPORT_TEXT = "Der Parser läuft über, wenn die Länge 0xFFFF ist. 漏洞!\n"
EXTEND_REASON = "the fix needs a second review"


def _long_line() -> str:
    line = "".join(f"Grüße aus Ærø, 漏洞 {n:04d}; " for n in range(100))[:1199] + "."
    assert len(line) == 1200 and "\n" not in line
    return line


LONG_LINE = _long_line()
DESCRIPTION = (
    "Ein Überlauf im Parser von Ærø: Jürgen Müller fand ihn (漏洞).\n"
    "\n"
    f"{LONG_LINE}\n"
    "\n"
    "From the start of a line, and trailing spaces kept as they are:   \n"
    "Grüße"
)

PATCH_NAME = "0001-Überlauf-beheben.patch"
PATCH = (
    "From 0123abcd Mon Sep 17 00:00:00 2001\n"
    "From: Jürgen Müller <juergen@reporter.example>\n"
    "Subject: [PATCH] Überlauf beheben (漏洞)\n"
    "\n"
    "--- a/parser.c\n"
    "+++ b/parser.c\n"
    "@@ -1 +1 @@\n"
    "-\tlen = n;  \n"
    "+\tlen = min(n, MAX); /* 漏洞 */\n"
    ".\n"
).encode()


def _long_name() -> str:
    stem = "0002-Überlauf-im-Ærø-Parser-漏洞-修复-für-alle-Zweige-" * 4
    suffix = ".patch.gz"
    name = stem[: 150 - len(suffix)].rstrip("-") + suffix
    assert 140 < len(name) <= 150
    return name


LONG_NAME = _long_name()
BINARY = gzip.compress(bytes(range(256)) * 8 + b"\r\n.\r\nFrom \x00\xff\n" + PATCH, mtime=0)


# -- keys: made once for the module --------------------------------------------------------------


@pytest.fixture(scope="module")
def people():
    return {
        "reporter": mc.make_reporter("juergen@reporter.example", REPORTER_NAME),
        "maker": mc.make_reporter("psirt@aero.example", ORGANISATION),
        "lapsed": mc.make_reporter("psirt@lapsed.example", "Lapsed PSIRT"),
    }


# -- one product run, module-scoped ------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    kind: str
    recipient: str
    tracking_id: str | None
    result: str  # what outbox.send returned
    answer: str  # the delivery's last answer
    raw: bytes | None  # as the SMTP sink received it


@dataclass(frozen=True)
class World:
    sent: list[Sent]
    service_cert: Path
    service_fingerprint: str
    tracking_id: str  # the vulnerability reported with a key and alerted
    keyless_tracking_id: str  # reported in plaintext, without a key
    embargo_before: datetime
    embargo_after: datetime
    title: str  # as the product took it from the report
    keyless_title: str
    from_address: str


@contextmanager
def _database_url():
    """The conftest's choice, for a module: SQLite in the instance, or a PostgreSQL schema."""
    if not PG_URL:
        yield None
        return
    schema = f"fw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _send_queued(keyring, settings, sink, at) -> list[Sent]:
    """Every queued delivery through outbox.send, one at a time, over real SMTP."""
    sent = []
    transport = SmtpTransport("127.0.0.1", sink.port)
    queued = Delivery.select().where(Delivery.state == "queued").order_by(Delivery.id)
    for delivery in list(queued):
        before = len(sink.received)
        result = sending.send(delivery.id, keyring, settings, transport, at)
        received = sink.received[before:]
        assert len(received) == (1 if result == "sent" else 0)
        v = delivery.vulnerability
        sent.append(
            Sent(
                delivery.kind,
                delivery.recipient,
                v.tracking_id if v is not None else None,
                result,
                Delivery.get_by_id(delivery.id).last_answer,
                received[0].data if received else None,
            )
        )
    return sent


def _report(raw: bytes, sender: str, settings, keyring, at) -> Vulnerability:
    message_id = inbound.store(raw, sender, [settings.security_address], at)
    outcome = processing.process_inbound(message_id, keyring, settings, at)
    assert outcome == "new report", outcome
    return Vulnerability.select().order_by(Vulnerability.id.desc()).first()


def _product_run(settings, keyring, sink, people, service_cert_path: Path) -> World:
    reporter, maker, lapsed = people["reporter"], people["maker"], people["lapsed"]
    service_cert = keyring.export_public()
    sent: list[Sent] = []

    # A report encrypted to the service, with the reporter's key attached: the ack is encrypted.
    app_clock.freeze(REPORTED)
    # Protected headers (v1) on the root of the encrypted payload carry the real subject.
    subject = Header(TITLE, "utf-8").encode(maxlinelen=0)
    inner = (
        b"Subject: "
        + subject.encode("ascii")
        + b"\r\n"
        + mc.multipart(
            "mixed",
            [mc.text_part(REPORT_TEXT), mc.key_part(reporter.cert)],
            "in",
            '; protected-headers="v1"',
        )
    )
    raw = mc.pgp_mime_encrypted(
        mc.sqop_encrypt(service_cert, inner, signer=reporter),
        subject="...",
        sender=formataddr((REPORTER_NAME, reporter.address)),
    )
    v = _report(raw, reporter.address, settings, keyring, REPORTED)
    assert v.reporter_key is not None and v.reporter_key.usable
    # A plaintext report from someone without a key: the ack is signed only.
    raw = mc.plain(
        "Import stürzt ab.\n",
        subject=Header(KEYLESS_TITLE, "utf-8").encode(),
        sender=formataddr((KEYLESS_NAME, "asa@keyless.example")),
    )
    keyless = _report(raw, "asa@keyless.example", settings, keyring, REPORTED)
    sent += _send_queued(keyring, settings, sink, REPORTED)

    # Triage, patches, two registrants (one whose key cannot be used), the advisory.
    app_clock.freeze(ALERTED)
    v = lifecycle.set_field(v, "description", DESCRIPTION, CLI, ALERTED)
    v = lifecycle.set_status(v, "accepted", CLI, ALERTED)
    patches.attach(v, PATCH_NAME, PATCH, None, "test", ALERTED)
    patches.attach(v, LONG_NAME, BINARY, None, "test", ALERTED)
    vetting.add_by_admin(maker.address, ORGANISATION, maker.cert, None, "t", ALERTED, approve=True)
    gone = vetting.add_by_admin(
        lapsed.address, "Lapsed Ltd", lapsed.cert, None, "t", ALERTED, approve=True
    )
    PublicKey.update(usable=False).where(PublicKey.id == gone.key_id).execute()
    alerts.send(v, None, "test", ALERTED, settings)
    sent += _send_queued(keyring, settings, sink, ALERTED)

    # The embargo is extended: every registrant alerted is told.
    app_clock.freeze(EXTENDED)
    before = v.embargo_until
    after = before + timedelta(days=7)
    v = embargo_change.change_embargo(
        v, after, EXTEND_REASON, CLI, EXTENDED, settings
    ).vulnerability
    sent += _send_queued(keyring, settings, sink, EXTENDED)

    # The lift (not built yet): published by hand, then the lift's mails.
    lift = after
    app_clock.freeze(lift)
    for published in (v, keyless):
        Vulnerability.update(status="published", published_at=lift).where(
            Vulnerability.id == published.id
        ).execute()
        assert announcements.queue(Vulnerability.get_by_id(published.id), lift, settings) > 0
    sent += _send_queued(keyring, settings, sink, lift)

    return World(
        sent=sent,
        service_cert=service_cert_path,
        service_fingerprint=keyring.fingerprint(),
        tracking_id=v.tracking_id,
        keyless_tracking_id=keyless.tracking_id,
        embargo_before=before,
        embargo_after=after,
        title=Vulnerability.get_by_id(v.id).title,
        keyless_title=Vulnerability.get_by_id(keyless.id).title,
        from_address=settings.from_address,
    )


@pytest.fixture(scope="module")
def world(redis_url, people, tmp_path_factory):
    folder = short_tempdir("fwi")
    service_cert = tmp_path_factory.mktemp("service") / "service.asc"
    try:
        with _database_url() as database_url:
            env = {
                "FOREWARN_INSTANCE": str(folder / "instance"),
                "FOREWARN_REDIS_URL": redis_url,
                "FOREWARN_WEB_LISTEN": f"127.0.0.1:{free_port()}",
                "FOREWARN_INTAKE_LISTEN": f"127.0.0.1:{free_port()}",
            }
            if database_url:
                env["FOREWARN_DATABASE_URL"] = database_url
            settings = replace(load_settings(env), announce_address=ANNOUNCE)
            settings.instance.mkdir(mode=0o700, parents=True, exist_ok=True)
            database = app_db.open_database(settings.database_url)
            app_db.migrate(database)
            database.connect(reuse_if_open=True)
            keyring = ServiceKeyring(settings.gnupg_home)
            sink = SmtpSink()
            try:
                keyring.generate(settings.security_address)
                service_cert.write_text(keyring.export_public())
                made = _product_run(settings, keyring, sink, people, service_cert)
            finally:
                sink.stop()
                app_clock.thaw()
                keyring.stop_agent()
                if not database.is_closed():
                    database.close()
                database_proxy.initialize(None)
    finally:
        gpg_home = folder / "instance" / "gpg"
        if gpg_home.is_dir():
            subprocess.run(["gpgconf", "--homedir", str(gpg_home), "--kill", "all"], check=False)
        shutil.rmtree(folder, ignore_errors=True)
    return made


# -- RNP homes ---------------------------------------------------------------------------------


def _rnp_home(folder: Path, *keys: bytes) -> Path:
    folder.mkdir(mode=0o700)
    for n, key in enumerate(keys):
        (folder / f"import-{n}.asc").write_bytes(key)
        run("rnpkeys", "--homedir", str(folder), "--import", str(folder / f"import-{n}.asc"))
    return folder


@pytest.fixture(scope="module")
def rnp_homes(world, people, tmp_path_factory):
    """One RNP home with the service's certificate (to verify), one per recipient's secret key."""
    base = tmp_path_factory.mktemp("rnp")
    homes = {"service": _rnp_home(base / "service", world.service_cert.read_bytes())}
    for name in ("reporter", "maker"):
        homes[name] = _rnp_home(base / name, people[name].secret)
    return homes


# -- opening a message as a client would --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str
    to: str  # "reporter", "keyless", "maker", "lapsed", "announce"
    about: str  # "v" (reported with a key) or "keyless"
    key: str | None  # whose secret key decrypts it; None: signed only
    outer: str  # the outer Subject ({tid}: the tracking id, {title}: its title)
    inner: str  # the protected Subject inside the signed part


CASES = {
    "ack": Case("ack", "reporter", "v", "reporter", "Security report {tid}", "Re: {title} [{tid}]"),
    "ack-unencrypted": Case(
        "ack", "keyless", "keyless", None, "Security report {tid}", "Security report {tid}"
    ),
    "alert": Case(
        "alert",
        "maker",
        "v",
        "maker",
        "Security advisory {tid} v1 (embargoed)",
        "{tid} v1: {title}",
    ),
    "alert-missed": Case(
        "alert-missed",
        "lapsed",
        "v",
        None,
        "Missed security advisory {tid} v1",
        "Missed security advisory {tid} v1",
    ),
    "alert-embargo": Case(
        "alert-embargo",
        "maker",
        "v",
        "maker",
        "Security advisory {tid} (embargoed)",
        "{tid}: embargo date changed",
    ),
    "alert-embargo-missed": Case(
        "alert-embargo",
        "lapsed",
        "v",
        None,
        "Security advisory {tid} (embargoed)",
        "Security advisory {tid} (embargoed)",
    ),
    "announcement": Case(
        "announcement", "announce", "v", None, "[{tid}] {title}", "[{tid}] {title}"
    ),
    "embargo-lifted": Case(
        "embargo-lifted",
        "maker",
        "v",
        None,
        "{tid} is public: embargo lifted",
        "{tid} is public: embargo lifted",
    ),
    "publication": Case(
        "publication",
        "reporter",
        "v",
        "reporter",
        "Security report {tid} published",
        "Published: [{tid}] {title}",
    ),
    "embargo-changed": Case(
        "embargo-changed",
        "reporter",
        "v",
        "reporter",
        "[{tid}] embargo date changed",
        "[{tid}] embargo date changed",
    ),
    "publication-unencrypted": Case(
        "publication",
        "keyless",
        "keyless",
        None,
        "Security report {tid} published",
        "Security report {tid} published",
    ),
}
ENCRYPTED = [name for name, case in CASES.items() if case.key]


@dataclass(frozen=True)
class Opened:
    raw: bytes  # as received
    entity: bytes  # the multipart/signed entity (decrypted, or the raw message itself)
    signed: bytes  # its first part, the bytes as sent
    signature: bytes  # the armored detached signature
    subject: str  # the expected protected Subject
    outer: str  # the expected outer Subject


def _address(world: World, people, to: str) -> str:
    extra = {"keyless": "asa@keyless.example", "announce": ANNOUNCE}
    return extra[to] if to in extra else people[to].address


def _message(world: World, people, name: str) -> tuple[Case, Sent]:
    case = CASES[name]
    tracking_id = world.tracking_id if case.about == "v" else world.keyless_tracking_id
    found = [
        s
        for s in world.sent
        if s.kind == case.kind
        and s.recipient == _address(world, people, case.to)
        and s.tracking_id == tracking_id
    ]
    assert len(found) == 1, f"expected one {case.kind} to {case.to}: {found}"
    [sent] = found
    assert sent.result == "sent" and sent.raw is not None, f"not sent: {sent.answer}"
    return case, sent


def decrypt(tool: str, payload: bytes, key: str, people, homes, tmp_path: Path) -> bytes:
    if tool == "sqop":
        secret = tmp_path / f"{key}.key"
        secret.write_bytes(people[key].secret)
        return run("sqop", "decrypt", str(secret), input=payload).stdout
    encrypted = tmp_path / "encrypted.asc"
    encrypted.write_bytes(payload)
    return run(
        *("rnp", "--homedir", str(homes[key]), "--decrypt", str(encrypted)),
        *("--output", "-"),
    ).stdout


def verify(tool: str, data: bytes, signature: bytes, world: World, homes, tmp_path: Path):
    """Whether the detached signature over data is good and by the service key."""
    sig = tmp_path / "part.asc"
    sig.write_bytes(signature)
    if tool == "sqop":
        result = run("sqop", "verify", str(sig), str(world.service_cert), input=data, check=False)
        return result.returncode == 0 and world.service_fingerprint in result.stdout.decode()
    part = tmp_path / "part"
    part.write_bytes(data)
    result = run(
        *("rnp", "--homedir", str(homes["service"]), "--verify", str(sig)),
        *("--source", str(part)),
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    return result.returncode == 0 and world.service_fingerprint.lower() in output


def open_message(name, tool, world, people, homes, tmp_path) -> Opened:
    case, sent = _message(world, people, name)
    raw = sent.raw
    if case.key is not None:
        assert parse(raw).get_content_type() == "multipart/encrypted"
        entity = decrypt(tool, encrypted_payload(raw), case.key, people, homes, tmp_path)
    else:
        entity = raw
    assert parse(entity).get_content_type() == "multipart/signed"  # nested RFC 3156 when both
    signed_part, signature_part = parts_as_sent(entity)
    assert parse(signature_part).get_content_type() == "application/pgp-signature"
    signature = body_of(signature_part)
    assert verify(tool, signed_part, signature, world, homes, tmp_path), f"{tool}: bad signature"
    tid = world.tracking_id if case.about == "v" else world.keyless_tracking_id
    title = world.title if case.about == "v" else world.keyless_title
    return Opened(
        raw,
        entity,
        signed_part,
        signature,
        case.inner.format(tid=tid, title=title),
        case.outer.format(tid=tid, title=title),
    )


@pytest.fixture
def opener(world, people, rnp_homes, tmp_path):
    return lambda name, tool: open_message(name, tool, world, people, rnp_homes, tmp_path)


def text_part(signed: bytes):
    """The text/plain part of the signed content (alone, or first in a multipart/mixed)."""
    inner = parse(signed)
    if inner.get_content_type() == "multipart/mixed":
        return inner.get_payload()[0]
    return inner


def text_of_signed(signed: bytes) -> str:
    part = text_part(signed)
    assert part.get_content_type() == "text/plain"
    assert part.get_content_charset() == "utf-8"
    return part.get_content().replace("\r\n", "\n")


def attachments(signed: bytes):
    inner = parse(signed)
    if inner.get_content_type() != "multipart/mixed":
        return []
    return inner.get_payload()[1:]


# -- every message: decrypts, verifies, says what it should where it should -------------------


def test_the_product_run_sent_every_kind(world):
    kinds = {s.kind for s in world.sent}
    assert set(announcements.KINDS) | {"ack", "alert", "alert-missed", "alert-embargo"} <= kinds
    assert [s for s in world.sent if s.result != "sent"] == []


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", list(CASES))
def test_message_decrypts_and_verifies(name, tool, opener, world, people):
    opened = opener(name, tool)
    outer = parse(opened.raw)
    inner = parse(opened.signed)

    assert_sendable(opened.raw)
    assert outer["Subject"] == opened.outer
    assert inner["Subject"] == opened.subject  # protected headers (v1)
    assert inner.get_param("protected-headers") == "v1"
    assert outer["To"] == _address(world, people, CASES[name].to)
    assert inner["From"] == outer["From"] == world.from_address
    if name == "alert":
        # Signed once per version (app.registry.alerts.signed_entity): the protected part names no
        # recipient and carries the version's own Message-ID and date.
        assert inner["To"] is None
        assert inner["Message-ID"].startswith("<forewarn.advisory.")
        assert inner["Message-ID"] != outer["Message-ID"]
    else:
        assert inner["To"] == outer["To"]
        assert inner["Message-ID"] == outer["Message-ID"]
        assert inner["Date"] == outer["Date"]
    micalg = parse(opened.entity).get_param("micalg")
    assert micalg.startswith("pgp-") and parse(opened.entity).get_param("protocol") == (
        "application/pgp-signature"
    )


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", list(CASES))
def test_a_changed_byte_fails_verification(name, tool, opener, world, rnp_homes, tmp_path):
    """The check above is a real one: the same tool refuses the signed part altered."""
    opened = opener(name, tool)
    altered = opened.signed.replace(b"Subject:", b"Subject: ", 1)
    assert altered != opened.signed
    assert not verify(tool, altered, opened.signature, world, rnp_homes, tmp_path)


@pytest.mark.parametrize("name", ENCRYPTED)
def test_sequoia_and_rnp_decrypt_to_the_same_bytes(name, opener):
    assert opener(name, "sqop").entity == opener(name, "rnp").entity


@pytest.mark.parametrize("name", ENCRYPTED)
def test_another_key_cannot_decrypt(name, world, people, tmp_path):
    case, sent = _message(world, people, name)
    other = people["lapsed"]
    secret = tmp_path / "other.key"
    secret.write_bytes(other.secret)
    result = run("sqop", "decrypt", str(secret), input=encrypted_payload(sent.raw), check=False)
    assert result.returncode != 0


# -- acknowledgements --------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_ack_is_encrypted_to_the_reporter_and_names_the_report(tool, opener, world):
    opened = opener("ack", tool)
    text = text_of_signed(opened.signed)

    assert world.title == TITLE  # taken from the report's protected subject, non-ASCII intact
    assert f"We track it as {world.tracking_id}." in text
    assert "reached us unencrypted" not in text
    assert TITLE.encode() not in opened.raw and b"Parser" not in opened.raw
    assert parse(opened.raw)["Auto-Submitted"] == "auto-replied"
    assert parse(opened.raw)["In-Reply-To"] == "<report-1@example.org>"


@pytest.mark.parametrize("tool", TOOLS)
def test_ack_without_a_key_is_signed_and_asks_for_encryption(tool, opener, world):
    opened = opener("ack-unencrypted", tool)
    text = text_of_signed(opened.signed)

    assert f"We track it as {world.keyless_tracking_id}." in text
    assert "reached us unencrypted" in text and world.service_fingerprint in text
    assert "Import" not in text and "Absturz" not in text  # neither the report nor its title
    assert b"Absturz" not in opened.raw


# -- the advisory ------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_alert_text_round_trips_non_ascii_and_a_1200_character_line(tool, opener, world):
    opened = opener("alert", tool)
    text = text_of_signed(opened.signed)

    assert DESCRIPTION in text  # Jürgen Müller, Ærø, 漏洞 ... exactly
    assert LONG_LINE in text.split("\n")  # one line, intact
    assert "is for the approved registrants of the" in " ".join(text.split())
    assert f"{world.tracking_id}: {TITLE}" in text
    assert parse(opened.signed)["Subject"] == f"{world.tracking_id} v1: {TITLE}"


@pytest.mark.parametrize("tool", TOOLS)
def test_alert_carries_both_patches_byte_for_byte_as_listed(tool, opener):
    opened = opener("alert", tool)
    text = text_of_signed(opened.signed)
    parts = attachments(opened.signed)

    assert [p.get_filename() for p in parts] == [PATCH_NAME, LONG_NAME]
    assert [p.get_payload(decode=True) for p in parts] == [PATCH, BINARY]
    assert [p.get_content_type() for p in parts] == ["text/x-diff", "application/octet-stream"]
    for part, content in zip(parts, (PATCH, BINARY), strict=True):
        digest = hashlib.sha256(content).hexdigest()
        assert hashlib.sha256(part.get_payload(decode=True)).hexdigest() == digest
        assert f"  {part.get_filename()} ({len(content)} bytes)\n    sha256 {digest}" in text
        assert part.get_content_disposition() == "attachment"


@pytest.mark.parametrize("tool", TOOLS)
def test_long_non_ascii_filename_decodes_exactly(tool, opener):
    """RFC 2231 continuations: Python's parser (policy.default) reads back the very name."""
    opened = opener("alert", tool)
    [_, part] = attachments(opened.signed)

    assert len(LONG_NAME) >= 140
    assert part.get_filename() == LONG_NAME
    assert part["Content-Type"].params["name"] == LONG_NAME
    assert part["Content-Disposition"].params["filename"] == LONG_NAME


def test_outer_alert_reveals_nothing_embargoed(world, people):
    """Nothing of the advisory outside encryption: not in the outer headers, not in the raw
    bytes in any encoding, and not in the text of the notices that are signed only."""
    for name in ("alert", "alert-embargo", "alert-embargo-missed", "alert-missed"):
        case, sent = _message(world, people, name)
        raw = sent.raw
        outer = parse(raw)
        readable = str(outer["Subject"])
        if case.key is None:
            signed_part, _ = parts_as_sent(raw)
            readable += text_of_signed(signed_part)
        for secret in (TITLE, "Überlauf", "Parser", "漏洞", LONG_NAME, PATCH_NAME, EXTEND_REASON):
            assert secret not in readable, name
            assert secret.encode() not in raw, name
            assert quote(secret).encode()[:30] not in raw, name
        for content in (PATCH, BINARY):
            assert hashlib.sha256(content).hexdigest().encode() not in raw, name


@pytest.mark.parametrize("tool", TOOLS)
def test_alert_missed_is_a_notice_without_the_advisory(tool, opener, world):
    opened = opener("alert-missed", tool)
    text = text_of_signed(opened.signed)

    assert "You missed a pre-disclosure advisory" in text
    assert f"({world.tracking_id} v1)" in text
    assert attachments(opened.signed) == []
    assert "Überlauf" not in text and "漏洞" not in text


@pytest.mark.parametrize("tool", TOOLS)
def test_embargo_notice_is_encrypted_and_gives_both_dates(tool, opener, world):
    opened = opener("alert-embargo", tool)
    text = text_of_signed(opened.signed)

    assert f"The embargo of {world.tracking_id} has been extended." in text
    assert f"now   {world.embargo_after:%Y-%m-%d %H:%M} UTC" in text
    assert f"was   {world.embargo_before:%Y-%m-%d %H:%M} UTC" in text
    assert f"This notice is for {ORGANISATION} alone" in " ".join(text.split())


@pytest.mark.parametrize("tool", TOOLS)
def test_reporter_is_told_of_the_new_date_with_the_reason(tool, opener, world):
    text = text_of_signed(opener("embargo-changed", tool).signed)

    assert f"The planned publication of your report {world.tracking_id} has moved" in text
    assert f"now   {world.embargo_after:%Y-%m-%d %H:%M} UTC" in text
    assert EXTEND_REASON in text


@pytest.mark.parametrize("tool", TOOLS)
def test_embargo_notice_without_a_key_is_signed(tool, opener, world):
    text = text_of_signed(opener("alert-embargo-missed", tool).signed)

    assert f"The embargo of {world.tracking_id}, a pre-disclosure advisory" in text
    assert f"It now ends {world.embargo_after:%Y-%m-%d %H:%M} UTC" in " ".join(text.split())
    assert "We could not encrypt this notice" in text


# -- the lift ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_announcement_is_signed_with_the_public_text_intact(tool, opener, world):
    opened = opener("announcement", tool)
    text = text_of_signed(opened.signed)

    assert parse(opened.raw)["Subject"] == f"[{world.tracking_id}] {TITLE}"
    assert f"{world.tracking_id}: {TITLE}" in text
    assert DESCRIPTION in text
    assert LONG_LINE in text.split("\n")
    assert f"Credits: {REPORTER_NAME}" in text
    assert world.service_fingerprint in text
    assert REPORTER_NAME in text and "juergen@reporter.example" not in text


@pytest.mark.parametrize("tool", TOOLS)
def test_embargo_lifted_notice_is_signed(tool, opener, world):
    text = text_of_signed(opener("embargo-lifted", tool).signed)

    assert f"The embargo of {world.tracking_id} ended" in text
    assert f"  {TITLE}\n" in text


@pytest.mark.parametrize("tool", TOOLS)
def test_publication_is_encrypted_to_the_reporter_with_the_credit(tool, opener, world):
    opened = opener("publication", tool)
    text = text_of_signed(opened.signed)

    assert f"Your report {world.tracking_id} is public now" in text
    assert f"  {TITLE}\n" in text
    assert f"It credits: {REPORTER_NAME}" in text


@pytest.mark.parametrize("tool", TOOLS)
def test_publication_without_a_key_is_signed(tool, opener, world):
    text = text_of_signed(opener("publication-unencrypted", tool).signed)

    assert f"Your report {world.keyless_tracking_id} is public now" in text
    assert f"  {KEYLESS_TITLE}\n" in text
    assert f"It credits: {KEYLESS_NAME}" in text


def test_text_of_helper_agrees_with_the_parser(world, people):
    """tests.openpgp.text_of reads a lone text part the same way (sanity of the helpers)."""
    _, sent = _message(world, people, "announcement")
    signed_part, _ = parts_as_sent(sent.raw)
    assert text_of(signed_part) == text_of_signed(signed_part)
