"""DKIM on outgoing mail: alerts leave signed over their one-click unsubscribe headers, and
dkimpy's own verifier (with a local DNS answer) accepts them; the operator's key set-up."""

import dataclasses
import email
import re
import stat
import subprocess

import dkim
import pytest

from app.core.config import dkim_private_key, load_settings
from app.core.errors import ConfigError
from app.models import Delivery
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle
from mail import domainkeys
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
SELECTOR = "fw2026"
DOMAIN = "example.org"
TXT_LINE = re.compile(r"^(\S+) IN TXT ((?:\"[^\"]*\" ?)+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("dkim") / "dkim.key"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True
    )
    return path


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@maker.example", "Maker")


def dns_answering(name: str, record: str):
    """dkimpy's dnsfunc: this TXT record for this name, nothing for any other."""

    def lookup(qname: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if qname == f"{name}.".encode() else None

    return lookup


def dns_for(key_path):
    record = domainkeys.dns_record(key_path.read_bytes())
    return dns_answering(f"{SELECTOR}._domainkey.{DOMAIN}", record)


def send_one_alert(settings, keyring, clock, maker) -> bytes:
    """A real pre-disclosure alert, composed by the outbox and received by an SMTP sink."""
    vetting.add_by_admin(maker.address, "Maker", maker.cert, None, "t", clock.at, approve=True)
    v = lifecycle.create("Heap overflow in L2CAP", "Details.", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    advisory = alerts.send(v, None, "t", clock.at, settings)
    sink = SmtpSink()
    try:
        [delivery] = Delivery.select().where(Delivery.advisory == advisory)
        transport = SmtpTransport("127.0.0.1", sink.port)
        assert sending.send(delivery.id, keyring, settings, transport, clock.at) == "sent"
        [received] = sink.received
    finally:
        sink.stop()
    return received.data


def signed_header_names(raw: bytes) -> list[str]:
    value = re.sub(r"\s+", "", email.message_from_bytes(raw)["DKIM-Signature"])
    return re.search(r"(?:^|;)h=([^;]+)", value).group(1).split(":")


def with_dkim(settings, key_path):
    return dataclasses.replace(
        settings, dkim_key_file=key_path, dkim_selector=SELECTOR, dkim_domain=DOMAIN
    )


def test_alert_is_dkim_signed_over_its_one_click_unsubscribe_headers(
    db, clock, settings, keyring, maker, rsa_key
):
    raw = send_one_alert(with_dkim(settings, rsa_key), keyring, clock, maker)
    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;")
    assert dkim.verify(raw, dnsfunc=dns_for(rsa_key))
    signed = signed_header_names(raw)
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed
    for name in ("from", "to", "subject", "date", "message-id", "reply-to", "content-type"):
        assert name in signed, name
    # Still a valid SMTP message: CRLF lines only, none over 998 octets.
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 998


def test_tampering_with_the_subject_or_the_body_breaks_the_signature(
    db, clock, settings, keyring, maker, rsa_key
):
    raw = send_one_alert(with_dkim(settings, rsa_key), keyring, clock, maker)
    dns = dns_for(rsa_key)
    assert dkim.verify(raw, dnsfunc=dns)
    subject = re.search(rb"^Subject: [^\r\n]*", raw, re.MULTILINE).group(0)
    assert not dkim.verify(raw.replace(subject, subject + b" (resent)"), dnsfunc=dns)
    armor = re.search(rb"^[A-Za-z0-9+/]{40,}\r$", raw, re.MULTILINE).group(0)
    changed = (b"B" if armor[:1] != b"B" else b"C") + armor[1:]
    assert not dkim.verify(raw.replace(armor, changed, 1), dnsfunc=dns)
    unsubscribe = re.search(rb"^List-Unsubscribe: [^\r\n]*", raw, re.MULTILINE).group(0)
    forged = unsubscribe.replace(b"/registry/unsubscribe/", b"/registry/unsubscribe/x")
    assert not dkim.verify(raw.replace(unsubscribe, forged), dnsfunc=dns)


def test_without_a_dkim_key_mail_carries_no_signature(db, clock, settings, keyring, maker):
    assert settings.dkim_key_file is None
    raw = send_one_alert(settings, keyring, clock, maker)
    assert b"List-Unsubscribe-Post:" in raw
    assert b"DKIM-Signature" not in raw


def test_dkim_domain_defaults_to_the_from_address_domain(env, rsa_key):
    dkim_env = {**env, "FOREWARN_DKIM_KEY_FILE": str(rsa_key), "FOREWARN_DKIM_SELECTOR": "s1"}
    settings = load_settings({**dkim_env, "FOREWARN_FROM_ADDRESS": "psirt@vendor.example"})
    assert (settings.dkim_key_file, settings.dkim_selector) == (rsa_key, "s1")
    assert settings.dkim_domain == "vendor.example"
    chosen = load_settings({**dkim_env, "FOREWARN_DKIM_DOMAIN": "mail.vendor.example"})
    assert chosen.dkim_domain == "mail.vendor.example"


def test_a_key_file_without_a_selector_or_a_bad_selector_is_refused(env, rsa_key):
    with pytest.raises(ConfigError, match="FOREWARN_DKIM_SELECTOR"):
        load_settings({**env, "FOREWARN_DKIM_KEY_FILE": str(rsa_key)})
    with pytest.raises(ConfigError, match="FOREWARN_DKIM_SELECTOR='a b'"):
        load_settings(
            {**env, "FOREWARN_DKIM_KEY_FILE": str(rsa_key), "FOREWARN_DKIM_SELECTOR": "a b"}
        )


def test_a_missing_or_invalid_key_file_is_one_clear_error(settings, tmp_path):
    missing = tmp_path / "nothing.key"
    with pytest.raises(ConfigError, match=r"FOREWARN_DKIM_KEY_FILE=.*nothing\.key.*cannot be read"):
        dkim_private_key(dataclasses.replace(settings, dkim_key_file=missing, dkim_selector="s"))
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="FOREWARN_DKIM_KEY_FILE=.*not an RSA or ed25519"):
        dkim_private_key(dataclasses.replace(settings, dkim_key_file=garbage, dkim_selector="s"))


def test_worker_with_a_bad_key_file_stops_at_start_with_one_line(forewarn, tmp_path):
    bad = tmp_path / "dkim.key"
    bad.write_text("not a key\n")
    result = forewarn(
        "worker",
        extra_env={"FOREWARN_DKIM_KEY_FILE": str(bad), "FOREWARN_DKIM_SELECTOR": "s1"},
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("forewarn: FOREWARN_DKIM_KEY_FILE=") and "not a PEM private key" in line


def test_short_and_encrypted_keys_are_refused_with_the_reason(tmp_path):
    short = tmp_path / "short.key"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(short), "512"], check=True, capture_output=True
    )
    with pytest.raises(domainkeys.UnusableKey, match="512-bit RSA key is too short"):
        domainkeys.check_key(short.read_bytes())
    locked = tmp_path / "locked.key"
    subprocess.run(
        ["openssl", "genrsa", "-aes128", "-passout", "pass:x", "-out", str(locked), "2048"],
        check=True,
        capture_output=True,
    )
    with pytest.raises(domainkeys.UnusableKey, match="encrypted"):
        domainkeys.check_key(locked.read_bytes())


def test_dkim_init_writes_a_private_key_and_prints_a_record_that_verifies(forewarn, settings):
    result = forewarn("dkim", "init", "--selector", SELECTOR)
    assert result.returncode == 0, result.stderr
    path = settings.instance / f"dkim-{SELECTOR}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"FOREWARN_DKIM_KEY_FILE={path}" in result.stdout.splitlines()
    assert f"FOREWARN_DKIM_SELECTOR={SELECTOR}" in result.stdout.splitlines()
    name, strings = TXT_LINE.search(result.stdout).groups()
    assert name == f"{SELECTOR}._domainkey.localhost."  # the domain of FOREWARN_FROM_ADDRESS
    chunks = re.findall(r'"([^"]*)"', strings)
    assert all(len(chunk) <= 255 for chunk in chunks)  # a TXT character-string's limit
    record = "".join(chunks)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    message = (
        b"From: security@example.org\r\nTo: psirt@maker.example\r\nSubject: test\r\n"
        b"List-Unsubscribe: <https://x.example/u>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello.\r\n"
    )
    signed = domainkeys.sign(message, SELECTOR, DOMAIN, path.read_bytes())
    dns = dns_answering(f"{SELECTOR}._domainkey.{DOMAIN}", record)
    assert dkim.verify(signed, dnsfunc=dns)
    assert signed_header_names(signed) == [
        "from",
        "to",
        "subject",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]


def test_dkim_init_refuses_to_overwrite_an_existing_key(forewarn, settings):
    assert forewarn("dkim", "init").returncode == 0
    path = settings.instance / "dkim-forewarn.key"
    before = path.read_bytes()
    again = forewarn("dkim", "init")
    assert again.returncode == 1
    [line] = again.stderr.splitlines()
    assert line.startswith("forewarn: ") and str(path) in line and "exists already" in line
    assert path.read_bytes() == before
    assert [p.name for p in settings.instance.glob("*dkim*")] == ["dkim-forewarn.key"]
