"""`forewarn alert send VULN_ID` (CONTRACT.md): refused unless accepted or fixed."""

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
