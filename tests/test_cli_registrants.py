"""`forewarn registrants ...`: add, import, list, approve, suspend."""

import json

import pytest

from tests import mailcorpus as mc

pytestmark = pytest.mark.db
LIST_KEYS = {"id", "email", "org", "status", "fingerprint", "key_expires"}


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@maker{n}.example", f"Maker {n}") for n in range(3)]


@pytest.fixture
def ready(forewarn):
    assert forewarn("init").returncode == 0


def test_add_pins_the_key_and_list_shows_the_contract_keys(forewarn, ready, makers, tmp_path):
    key = tmp_path / "key.asc"
    key.write_bytes(makers[0].cert)
    added = forewarn(
        "registrants",
        "add",
        "--email",
        "psirt@maker0.example",
        "--org",
        "Maker 0",
        "--key",
        str(key),
    )
    assert added.returncode == 0, added.stderr
    [row] = json.loads(forewarn("registrants", "list", "--json").stdout)
    assert set(row) == LIST_KEYS
    assert (row["status"], row["fingerprint"]) == ("pending_review", makers[0].fingerprint)
    assert forewarn("registrants", "approve", str(row["id"])).stdout.strip().endswith("approved")
    assert forewarn("registrants", "suspend", str(row["id"])).stdout.strip().endswith("suspended")
    again = forewarn("registrants", "suspend", str(row["id"]))
    assert again.returncode == 1 and again.stderr.count("\n") == 1


def test_import_skips_bad_rows_by_line_number_and_imports_the_rest(
    forewarn, ready, makers, tmp_path
):
    (tmp_path / "m1.asc").write_bytes(makers[1].cert)
    armored = makers[2].cert.decode().replace('"', '""')
    (tmp_path / "list.csv").write_text(
        "email,org,product,key_file,key\n"
        "psirt@maker1.example,Maker 1,Gateway,m1.asc,\n"
        "broken@nowhere.example,Nowhere,Thing,missing.asc,\n"
        "psirt@maker1.example,Maker 1 again,Gateway,m1.asc,\n"
        f'psirt@maker2.example,Maker 2,Sensor,,"{armored}"\n'
        "psirt@maker3.example,Maker 3,Sensor,,not a key\n"
    )
    result = forewarn("registrants", "import", str(tmp_path / "list.csv"), "--approve")
    assert result.returncode == 1
    assert "imported 2 of 5 registrants" in result.stdout
    assert "skipped line 3: broken@nowhere.example: cannot read the key file" in result.stderr
    assert "skipped line 4: psirt@maker1.example: an account for" in result.stderr
    last = 6 + makers[2].cert.decode().count("\n")  # the armored key spans lines
    assert f"skipped line {last}: psirt@maker3.example: The key was not accepted" in result.stderr
    rows = json.loads(forewarn("registrants", "list", "--json").stdout)
    assert sorted((r["email"], r["status"]) for r in rows) == [
        ("psirt@maker1.example", "approved"),
        ("psirt@maker2.example", "approved"),
    ]


def test_an_organisation_with_a_line_break_is_refused_by_add_and_import(
    forewarn, ready, makers, tmp_path
):
    (tmp_path / "m0.asc").write_bytes(makers[0].cert)
    (tmp_path / "m1.asc").write_bytes(makers[1].cert)
    added = forewarn(
        "registrants",
        "add",
        "--email",
        "psirt@maker0.example",
        "--org",
        "Maker\r\n0",
        "--key",
        str(tmp_path / "m0.asc"),
    )
    assert added.returncode == 1
    assert (
        added.stderr == "forewarn: the organisation must be one line without control characters\n"
    )
    (tmp_path / "list.csv").write_bytes(
        b'email,org,product,key_file,key\r\npsirt@maker1.example,"Maker\r\n1",Gateway,m1.asc,\r\n'
    )
    imported = forewarn("registrants", "import", str(tmp_path / "list.csv"))
    assert imported.returncode == 1
    assert "imported 0 of 1 registrants" in imported.stdout
    assert (
        "skipped line 2: psirt@maker1.example: "
        "the organisation must be one line without control characters"
    ) in imported.stderr
    assert json.loads(forewarn("registrants", "list", "--json").stdout) == []


def test_answers_lists_every_approved_registrant_as_the_contract_says(
    forewarn, ready, db, settings, makers
):
    from app.core import clock
    from app.registry import alerts, answers, vetting
    from app.vulns import lifecycle

    at = clock.now()
    cli = lifecycle.Actor(None, "test")
    found = [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", at, approve=True)
        for n, m in enumerate(makers)
    ]
    v = lifecycle.set_status(lifecycle.create("T", "", cli, at, settings), "accepted", cli, at)
    alerts.send(v, None, "t", at, settings)
    answers.record(
        found[0],
        v,
        answers.check("not_affected", "component_not_present", "No radio.", True),
        via="web",
        at=at,
    )
    answers.record(found[1], v, answers.check("affected", None), via="mail", at=at)
    assert forewarn("cve", "import-block", "CVE-2026-1000..CVE-2026-1001").returncode == 0
    cve = forewarn("cve", "assign", v.tracking_id).stdout.strip()

    shown = forewarn("registrants", "answers", cve.lower(), "--json")  # a CVE id works too
    assert shown.returncode == 0, shown.stderr
    entries = json.loads(shown.stdout)
    assert [set(e) for e in entries] == [
        {"email", "org", "status", "justification", "statement", "at", "via"}
    ] * 3
    assert [(e["org"], e["status"], e["justification"], e["via"]) for e in entries] == [
        ("Maker 0", "not_affected", "component_not_present", "web"),
        ("Maker 1", "affected", None, "mail"),
        ("Maker 2", "no_answer", None, None),
    ]
    assert entries[0]["statement"] == "No radio." and entries[0]["at"].endswith("Z")
    assert entries[2]["at"] is None

    silent = json.loads(
        forewarn("registrants", "answers", v.tracking_id, "--json", "--status", "no_answer").stdout
    )
    assert [e["email"] for e in silent] == ["psirt@maker2.example"]
    table = forewarn("registrants", "answers", v.tracking_id).stdout.splitlines()
    assert len(table) == 4 and "not_affected (component_not_present)" in table[0]
    assert table[-1] == f"{v.tracking_id}: 1 affected, 1 not_affected, 1 no_answer"

    unknown = forewarn("registrants", "answers", "SEC-1999-0001")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "no vulnerability SEC-1999-0001" in unknown.stderr
    bad = forewarn("registrants", "answers", v.tracking_id, "--status", "maybe")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "Unknown status 'maybe'" in bad.stderr
