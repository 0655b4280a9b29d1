"""`forewarn vulns ...` as operators and scripts use it (names, --json keys)."""

import json
import re

import pytest

pytestmark = pytest.mark.db

LIST_KEYS = {"id", "title", "status", "cve", "reported_at", "embargo_until", "fix_due", "assignee"}


@pytest.fixture
def ready(forewarn, tmp_path):
    assert forewarn("init").returncode == 0
    description = tmp_path / "description.md"
    description.write_text("A heap overflow in the L2CAP reassembly.\n")
    return description


def test_create_prints_the_tracking_id_alone(forewarn, ready):
    result = forewarn(
        "vulns",
        "create",
        "--title",
        "L2CAP overflow",
        "--description-file",
        str(ready),
        "--embargo-until",
        "2027-03-02",
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"SEC-\d{4}-0001\n", result.stdout)
    shown = json.loads(forewarn("vulns", "show", result.stdout.strip(), "--json").stdout)
    assert shown["embargo_until"] == "2027-03-02T14:00:00+00:00"
    assert shown["description"].startswith("A heap overflow")


def test_list_and_show_print_one_json_document_with_the_contract_keys(forewarn, ready):
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(ready)
    ).stdout.strip()
    listed = json.loads(forewarn("vulns", "list", "--json").stdout)
    assert [set(row) for row in listed] == [LIST_KEYS]
    assert listed[0]["id"] == tracking and listed[0]["status"] == "new"
    shown = json.loads(forewarn("vulns", "show", tracking, "--json").stdout)
    assert LIST_KEYS | {"description", "affected", "severity", "credits", "correspondence"} <= set(
        shown
    )
    assert shown["correspondence"] == []


def test_set_follows_the_rules_with_the_operators_reason(forewarn, ready):
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(ready)
    ).stdout.strip()
    ok = forewarn(
        "vulns", "set", tracking, "severity", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(forewarn("vulns", "show", tracking, "--json").stdout)["cvss_score"] == 9.8
    # Extending needs a reason; the command line supplies the operator's by default.
    assert forewarn("vulns", "set", tracking, "embargo_until", "2027-06-01").returncode == 0
    refused = forewarn("vulns", "set", tracking, "status", "published")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("forewarn: ")
    assert "can go to" in refused.stderr


def test_unknown_ids_and_fields_are_one_line_errors(forewarn, ready):
    missing = forewarn("vulns", "show", "SEC-2026-0042")
    assert missing.returncode == 1 and "forewarn vulns list" in missing.stderr
    assert missing.stdout == ""
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(ready)
    ).stdout.strip()
    bad = forewarn("vulns", "set", tracking, "colour", "red")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_a_title_with_a_line_break_is_refused_by_create_and_set(forewarn, ready):
    refused = forewarn(
        "vulns",
        "create",
        "--title",
        "Overflow\r\nBcc: x@example.org",
        "--description-file",
        str(ready),
    )
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == "forewarn: the title must be one line without control characters\n"
    assert json.loads(forewarn("vulns", "list", "--json").stdout) == []
    tracking = forewarn(
        "vulns", "create", "--title", "Overflow", "--description-file", str(ready)
    ).stdout.strip()
    for title in ("Overflow\r\nin L2CAP", "Overflow\nin L2CAP", "Overflow\tin L2CAP"):
        bad = forewarn("vulns", "set", tracking, "title", title)
        assert bad.returncode == 1, title
        assert bad.stderr == "forewarn: the title must be one line without control characters\n"
    assert json.loads(forewarn("vulns", "show", tracking, "--json").stdout)["title"] == "Overflow"


def test_every_command_taking_a_vuln_id_takes_its_cve_id_too(forewarn, ready):
    tracking = forewarn(
        "vulns", "create", "--title", "T", "--description-file", str(ready)
    ).stdout.strip()
    assert forewarn("cve", "import-block", "CVE-2026-1000..CVE-2026-1009").returncode == 0
    assert forewarn("cve", "assign", tracking).stdout == "CVE-2026-1000\n"

    shown = forewarn("vulns", "show", "CVE-2026-1000", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == tracking
    for field, value in (
        ("title", "Overflow"),
        ("affected", "zephyr <4.2"),
        ("status", "accepted"),
    ):
        changed = forewarn("vulns", "set", "cve-2026-1000", field, value)
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.startswith(f"{tracking}: {field} set")
    exported = forewarn("export", "osv", "CVE-2026-1000", "--embargoed")
    assert exported.returncode == 0, exported.stderr
    record = json.loads(exported.stdout)  # the team's own OSV id, the CVE id its alias
    assert (record["id"], record["aliases"]) == (tracking, ["CVE-2026-1000"])
    alerted = forewarn("alert", "send", "CVE-2026-1000")
    assert alerted.returncode == 0, alerted.stderr
    assert alerted.stdout == f"{tracking} v1 queued to 0 registrants\n"
    again = forewarn("cve", "assign", "CVE-2026-1000")  # found, and refused for what it is
    assert again.returncode == 1
    assert again.stderr.startswith(f"forewarn: {tracking} already has CVE-2026-1000")
    for command in (("vulns", "show"), ("export", "cve"), ("alert", "send"), ("cve", "assign")):
        unknown = forewarn(*command, "CVE-2026-1009")
        assert unknown.returncode == 1 and unknown.stdout == "", command
        assert unknown.stderr == (
            "forewarn: no vulnerability CVE-2026-1009; `forewarn vulns list` shows them\n"
        ), command


def test_show_names_who_each_message_in_the_thread_is_from(forewarn, db, keyring, settings, clock):
    from app.reports import inbound, processing
    from tests import mailcorpus as mc

    def receive(raw, to="security@localhost"):
        message_id = inbound.store(raw, "x@example.net", [to], clock.at)
        processing.process_inbound(message_id, keyring, settings, clock.at)

    receive(mc.plain("The report.", subject="Bug"))
    stranger = mc.plain("Me too.", sender="Mallory <mallory@example.net>")
    receive(stranger.replace(b"<report-1@", b"<m-1@"), to="security+SEC-2026-0001@localhost")

    shown = json.loads(forewarn("vulns", "show", "SEC-2026-0001", "--json").stdout)
    assert [
        (e["sender"], e["from_reporter"], e["signed_by_reporter"]) for e in shown["correspondence"]
    ] == [("rita@example.org", True, False), ("mallory@example.net", False, False)]
    text = forewarn("vulns", "show", "SEC-2026-0001").stdout
    assert "from the reporter rita@example.org, unsigned" in text
    assert "from mallory@example.net, not the reporter, unsigned" in text
