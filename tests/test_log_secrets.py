"""No secret reaches a log line: over a whole scenario (an encrypted report processed and
acknowledged, the team's encrypted reply, a password reset, a registry sign-up with its proof
link) every logger is captured at DEBUG and searched for the decrypted text, the reporter's
words, the tokens mailed out and the passwords."""

import json
import logging

import pytest

from app.accounts import password_reset
from app.core import logs
from app.core.instance import secret_key
from app.models import Delivery, User, Vulnerability
from app.outbox import sending
from app.registry import proof, vetting
from app.reports import replies
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD
from tests.smtpsink import SmtpSink
from tests.test_report_flow import flow, relay, rita  # noqa: F401 (fixtures)

pytestmark = pytest.mark.db

REPORT_CANARY = "CANARY-report-7f3a: the overflow is in l2cap_reassemble"
REPLY_CANARY = "CANARY-reply-91c2: please test the attached fix"
SIGNUP_PASSWORD = "CANARY-password-5d1e horse staple"


@pytest.fixture
def quiet_content_loggers():
    """As every process configures logging (app/core/logs.py); undone after the test."""
    before = {name: logging.getLogger(name).level for name in logs.CONTENT_LOGGERS}
    logs.quiet_content_loggers()
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@logs.example", "Logs PSIRT")


def test_no_decrypted_text_token_or_password_in_any_log_line(
    flow,  # noqa: F811 (the report flow's fixtures)
    relay,  # noqa: F811
    rita,  # noqa: F811
    maker,
    keyring,
    settings,
    clock,
    admin_user,
    caplog,
    quiet_content_loggers,
):
    caplog.set_level(logging.DEBUG)  # every other logger, every level
    inner = mc.multipart("mixed", [mc.text_part(REPORT_CANARY), mc.key_part(rita.cert)], "in")
    ciphertext = mc.sqop_encrypt(flow.service_cert, inner, signer=rita)
    assert flow.report(mc.pgp_mime_encrypted(ciphertext, subject="...")).state == "processed"
    v = Vulnerability.get()
    replies.reply_to_reporter(v, admin_user, REPLY_CANARY, clock.at)
    password_reset.request_reset(admin_user.email, clock.at)
    registrant = vetting.sign_up(
        vetting.SignUp(
            email=maker.address,
            password=SIGNUP_PASSWORD,
            organisation="Logs Ltd",
            products="gateway",
            website="",
            justification="We ship it.",
            key=maker.cert,
            agrees_to_policy=True,
        ),
        clock.at,
    )
    sink = SmtpSink()
    try:
        for d in Delivery.select().where(Delivery.state == "queued"):
            sending.send(d.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at)
    finally:
        sink.stop()
    secret = secret_key(settings)
    reset = password_reset.reset_token(secret, User.get_by_id(admin_user.id), clock.at)
    proof_delivery = Delivery.get(Delivery.kind == "verify-key")
    payload = json.loads(proof_delivery.payload)
    proof_token = proof.verification_token(secret, payload["registrant"], payload["key"], clock.at)
    assert registrant.id == payload["registrant"]

    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert caplog.records, "nothing was logged: is the capture working?"
    for secret_text in (
        "CANARY-report-7f3a",
        "CANARY-reply-91c2",
        SIGNUP_PASSWORD,
        PASSWORD,
        reset,
        proof_token,
        secret,
    ):
        assert secret_text not in logged, f"{secret_text[:20]}... was logged"
