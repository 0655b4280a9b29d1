"""Fields that reach mail headers are one line: people's input is refused with one clear error,
a reporter's mail is made one line instead (mail is never lost for its subject)."""

import pytest

from app.accounts import team
from app.core import oneline
from app.core.errors import Refused
from app.models import Correspondence, Delivery, Vulnerability
from app.outbox import sending
from app.reports import inbound, processing
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.smtpsink import SmtpSink


@pytest.mark.parametrize(
    "value",
    ["Overflow\r\nBcc: x@example.org", "Overflow\nin L2CAP", "Overflow\tin", "A\x00B", "A\u2028B"],
)
def test_a_line_break_or_control_character_is_refused_with_one_clear_error(value):
    with pytest.raises(Refused) as refused:
        oneline.checked(value, "title")
    assert str(refused.value) == "the title must be one line without control characters"


def test_one_line_of_any_script_is_kept_without_its_surrounding_spaces():
    assert oneline.checked("  Überlauf im L2CAP — Zephyr 3.7  ", "title") == (
        "Überlauf im L2CAP — Zephyr 3.7"
    )
    assert oneline.flattened("Overflow\r\n\tin\x00 L2CAP\u2028") == "Overflow in L2CAP"


def test_a_reported_subject_with_encoded_line_breaks_becomes_a_one_line_title(
    db, keyring, settings, clock
):
    team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, "t")
    raw = mc.plain(
        "The BLE stack overflows.",
        subject="=?utf-8?q?Overflow=0D=0ABcc=3A_x@example.org?=",
        sender="=?utf-8?q?Rita=0D=0AReporter?= <rita@example.org>",
    )
    message_id = inbound.store(raw, "rita@example.org", ["security@localhost"], clock.at)
    assert processing.process_inbound(message_id, keyring, settings, clock.at) == "new report"

    v = Vulnerability.get()
    assert (v.title, v.reporter_name) == ("Overflow Bcc: x@example.org", "Rita Reporter")
    assert Correspondence.get().subject == "Overflow Bcc: x@example.org"
    sink = SmtpSink()
    try:
        outcomes = {
            d.kind: sending.send(
                d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at
            )
            for d in Delivery.select()
        }
    finally:
        sink.stop()
    assert outcomes == {"ack": "sent", "team-forward": "sent"}
