"""`forewarn vulns reply ID --text-file F`: the team's reply to the reporter, the
same as the reply form sends, by an operator."""

import json
from datetime import timedelta

import pytest

from app.accounts import team
from app.models import AuditEvent, Correspondence, Delivery, PublicKey, Vulnerability
from app.outbox import sending
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, parts_as_sent, run, text_of
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db
SECRET = "the length check in l2cap_reassemble is off by one"


@pytest.fixture(scope="module")
def ada():
    return mc.make_reporter("ada@example.net", "Ada Reporter")


def reported(clock, tracking_id, reporter_email="ada@example.net", key=None) -> Vulnerability:
    """A vulnerability as report processing leaves it."""
    return Vulnerability.create(
        tracking_id=tracking_id,
        title="Overflow in BLE",
        reporter_email=reporter_email,
        reporter_name="Ada Reporter",
        reporter_key=key,
        reported_at=clock.at,
        fix_due=clock.at + timedelta(days=30),
        embargo_until=clock.at + timedelta(days=90),
        created_at=clock.at,
        updated_at=clock.at,
    )


def one_line_error(result, expected: str) -> None:
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"forewarn: {expected}\n"


def test_the_reply_queues_what_the_reply_form_queues(
    client, auth, clock, settings, keyring, forewarn, tmp_path, ada
):
    member = team.create_team_account("alice@example.org", PASSWORD, "team", clock.at, "t")
    key = PublicKey.create(
        fingerprint=ada.fingerprint, armored=ada.cert.decode(), usable=True, created_at=clock.at
    )
    by_form, by_cli = (
        reported(clock, "SEC-2026-0001", key=key),
        reported(clock, "SEC-2026-0002", key=key),
    )
    assert auth.login(member.user.email, PASSWORD).status_code == 302
    page = client.get(f"/team/vulnerabilities/{by_form.tracking_id}").get_data(as_text=True)
    posted = client.post(
        f"/team/vulnerabilities/{by_form.tracking_id}/reply",
        data={"csrf_token": csrf_token(page), "text": f"Confirmed: {SECRET}."},
    )
    assert posted.status_code == 302
    reply = tmp_path / "reply.txt"
    reply.write_text(f"Confirmed: {SECRET}.\n")

    result = forewarn("vulns", "reply", by_cli.tracking_id, "--text-file", str(reply))

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{by_cli.tracking_id}: reply queued to ada@example.net, encrypted to their key "
        f"{ada.fingerprint}\n"
    )

    def queued(v):
        [entry] = Correspondence.select().where(Correspondence.vulnerability == v)
        delivery = Delivery.get_by_id(entry.delivery_id)
        return (
            (entry.direction, entry.subject, entry.text, entry.encrypted, entry.signature_status),
            (delivery.kind, delivery.recipient, delivery.user_id, delivery.state),
            set(json.loads(delivery.payload)),
        )

    assert queued(by_cli) == queued(by_form)
    [form_event, cli_event] = AuditEvent.select().where(AuditEvent.action == "report.reply")
    assert (form_event.actor_id, form_event.actor_label) == (member.user.id, "alice@example.org")
    assert cli_event.actor_id is None and cli_event.actor_label.startswith("cli:")
    assert cli_event.target == by_cli.tracking_id
    thread = client.get(f"/team/vulnerabilities/{by_cli.tracking_id}").get_data(as_text=True)
    assert "To the reporter, by an operator" in thread
    # And it reaches the reporter encrypted to their key, as the form's does.
    [delivery] = Delivery.select().where(Delivery.vulnerability == by_cli)
    sink = SmtpSink()
    try:
        relay = SmtpTransport("127.0.0.1", sink.port)
        # Queued at the command's own time (the frozen clock is this process's alone).
        sent = sending.send(delivery.id, keyring, settings, relay, delivery.next_attempt_at)
        [received] = sink.received
    finally:
        sink.stop()
    assert sent == "sent" and SECRET.encode() not in received.data
    secret = tmp_path / "ada.key"
    secret.write_bytes(ada.secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(received.data)).stdout
    assert f"Confirmed: {SECRET}." in text_of(parts_as_sent(entity)[0])


def test_the_reply_says_in_one_line_what_is_wrong_and_queues_nothing(db, clock, forewarn, tmp_path):
    v = reported(clock, "SEC-2026-0001")
    anonymous = reported(clock, "SEC-2026-0002", reporter_email="")
    missing = tmp_path / "missing.txt"
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    text = tmp_path / "reply.txt"
    text.write_text("Thanks, confirmed.\n")

    one_line_error(
        forewarn("vulns", "reply", v.tracking_id, "--text-file", str(missing)),
        f"cannot read {missing}: No such file or directory",
    )
    one_line_error(
        forewarn("vulns", "reply", v.tracking_id, "--text-file", str(empty)),
        "write a reply before sending it",
    )
    one_line_error(
        forewarn("vulns", "reply", anonymous.tracking_id, "--text-file", str(text)),
        "SEC-2026-0002 has no reporter address to reply to",
    )
    one_line_error(
        forewarn("vulns", "reply", "SEC-2026-0099", "--text-file", str(text)),
        "no vulnerability SEC-2026-0099; `forewarn vulns list` shows them",
    )
    assert Delivery.select().count() == 0 and Correspondence.select().count() == 0


def test_without_the_reporters_key_the_reply_says_they_get_a_notice(db, clock, forewarn, tmp_path):
    v = reported(clock, "SEC-2026-0001")
    text = tmp_path / "reply.txt"
    text.write_text("Thanks, confirmed.\n")

    result = forewarn("vulns", "reply", v.tracking_id, "--text-file", str(text))

    assert result.returncode == 0, result.stderr
    assert "they have no usable key on file, so they get a signed notice" in result.stdout
    [delivery] = Delivery.select()
    assert (delivery.kind, delivery.recipient) == ("reply", "ada@example.net")
