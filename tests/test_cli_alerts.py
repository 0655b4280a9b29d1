"""`forewarn alert send VULN_ID`: refused unless accepted or fixed."""

import json

import pytest

from tests import mailcorpus as mc

pytestmark = pytest.mark.db


def test_alert_send_queues_to_approved_registrants_and_refuses_new_ones(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    maker = mc.make_reporter("psirt@cli.example", "CLI PSIRT")
    (tmp_path / "k.asc").write_bytes(maker.cert)
    assert (
        forewarn(
            "registrants",
            "add",
            "--email",
            "psirt@cli.example",
            "--org",
            "CLI Ltd",
            "--key",
            str(tmp_path / "k.asc"),
            "--approve",
        ).returncode
        == 0
    )
    (tmp_path / "d.md").write_text("Details.\n")
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(tmp_path / "d.md")
    ).stdout.strip()
    refused = forewarn("alert", "send", tracking)
    assert refused.returncode == 1
    assert refused.stderr.startswith("forewarn: ") and "accepted or fixed" in refused.stderr
    assert forewarn("vulns", "set", tracking, "status", "accepted").returncode == 0
    sent = forewarn("alert", "send", tracking)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"{tracking} v1 queued to 1 registrant"
    shown = json.loads(forewarn("vulns", "show", tracking, "--json").stdout)
    assert shown["status"] == "accepted"


def test_alert_send_wait_returns_when_every_delivery_has_ended(forewarn, env, db, tmp_path):
    from app.core import clock
    from app.models import Advisory, Delivery
    from app.registry import vetting
    from tests.faults.harness import Workers, registrant_certificates
    from tests.smtpsink import SmtpSink

    assert forewarn("init").returncode == 0
    addresses = [f"psirt@wait{n}.example" for n in range(3)]
    for address, cert in registrant_certificates(addresses).items():
        vetting.add_by_admin(address, address, cert, None, "t", clock.now(), approve=True)
    (tmp_path / "d.md").write_text("Details.\n")
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(tmp_path / "d.md")
    ).stdout.strip()
    assert forewarn("vulns", "set", tracking, "status", "accepted").returncode == 0

    # No worker yet: nothing ends, and --timeout stops the wait with the counts and exit 1.
    stuck = forewarn("alert", "send", tracking, "--wait", "--timeout", "1")
    assert stuck.returncode == 1
    assert stuck.stdout.splitlines()[-1] == "queued 3 sent 0 failed 0 bounced 0"
    assert stuck.stderr.splitlines()[-1].startswith("forewarn: 3 of 3 still queued after 1 s")

    sink = SmtpSink()
    relay = {"FOREWARN_SMTP_RELAY": f"127.0.0.1:{sink.port}"}
    workers = Workers({**env, **relay}, 1, tmp_path)
    try:
        workers.start()
        sent = forewarn("alert", "send", tracking, "--wait", extra_env=relay, timeout=120)
    finally:
        workers.stop()
        sink.stop()
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines()[-1] == "queued 0 sent 3 failed 0 bounced 0"
    assert f"{tracking} v2 queued to 3 registrants" in sent.stderr
    v2 = Advisory.get(Advisory.version == 2)
    assert {d.state for d in Delivery.select().where(Delivery.advisory == v2)} == {"sent"}
    subject = f"Subject: Security advisory {tracking} v2 (embargoed)".encode()
    assert sorted(r.recipients[0] for r in sink.received if subject in r.data) == addresses
