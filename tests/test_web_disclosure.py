"""The public vulnerabilities: the list, each page, the Atom feed, conditional requests, and
/.well-known/ (security.txt, the Web Key Directory). Embargoed ones show their id and the end
of their embargo, nothing else; unvalidated and rejected ones never show at all."""

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import url_for

from app.core.config import load_settings
from app.disclosure import feeds, wellknown
from app.models import CveId, Vulnerability
from app.servicekey import public
from app.vulns import lifecycle
from tests.conftest import PASSWORD
from tests.openpgp import run

pytestmark = pytest.mark.db

ACTOR = lifecycle.Actor(None, "cli:test")
CANARY = "CANARY7f3a"
ATOM = "{http://www.w3.org/2005/Atom}"
EMBARGO_END = datetime(2027, 2, 23, 14, 0, tzinfo=UTC)


def give_cve(v: Vulnerability, cve_id: str, at: datetime) -> Vulnerability:
    _, year, number = cve_id.split("-")
    cve = CveId.create(
        cve_id=cve_id,
        block=f"CVE-{year}-0000..CVE-{year}-9999",
        year=int(year),
        number=int(number),
        state="assigned",
        assigned_at=at,
    )
    Vulnerability.update(cve=cve).where(Vulnerability.id == v.id).execute()
    return Vulnerability.get_by_id(v.id)


def make(settings, at, title, description="A description.", status="accepted", cve=None, **fields):
    """A vulnerability as the team leaves it: fields set through the domain, then its state."""
    v = lifecycle.create(title, description, ACTOR, at, settings, embargo_until=EMBARGO_END)
    for field, value in fields.items():
        v = lifecycle.set_field(v, field, value, ACTOR, at)
    if cve:
        v = give_cve(v, cve, at)
    path = {"new": [], "triage": ["triage"], "rejected": ["triage", "rejected"]}
    for step in path.get(status, ["accepted"]):
        v = lifecycle.set_status(v, step, ACTOR, at, reason="not a vulnerability")
    return v


def publish(v: Vulnerability, at: datetime) -> None:
    """What the lift (built elsewhere) does to the row."""
    Vulnerability.update(status="published", published_at=at).where(
        Vulnerability.id == v.id
    ).execute()


def embargoed_canary(settings, at):
    return make(
        settings,
        at,
        f"{CANARY} title",
        f"{CANARY} description",
        cve="CVE-2026-1001",
        affected=f"{CANARY} =1.0",
        fix_refs=f"https://example.org/{CANARY}",
        credits=f"{CANARY} credits",
        mitigation=f"{CANARY} mitigation",
        severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )


def published_one(settings, at, cve="CVE-2026-1002", title="Heap overflow in L2CAP"):
    v = make(
        settings,
        at,
        title,
        "A **crafted** packet overflows the buffer.\n\n<script>alert(1)</script>",
        cve=cve,
        affected="zephyr >=3.0 <4.2; zephyr =3.7.0",
        fix_refs="https://github.com/zephyrproject-rtos/zephyr/pull/1234",
        credits="Alice Example",
        severity="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )
    publish(v, at)
    return v


def text(response) -> str:
    return response.get_data(as_text=True)


# -- what shows --------------------------------------------------------------------------------


def test_embargoed_vulnerability_shows_only_its_id_and_embargo_end(client, settings, clock):
    v = embargoed_canary(settings, clock.at)
    published_one(settings, clock.at)

    listing = text(client.get("/vulnerabilities"))
    by_cve = client.get("/vulnerabilities/CVE-2026-1001")
    feed = text(client.get("/vulnerabilities.atom"))

    assert by_cve.status_code == 200
    for page in (listing, text(by_cve)):
        assert "CVE-2026-1001" in page
        assert "Under embargo until" in page and "2027-02-23" in page
    for page in (listing, text(by_cve), feed):
        assert CANARY not in page
    assert "Critical" not in text(by_cve) and "CVSS" not in text(by_cve)
    # The CVE id's page does not reveal the tracking id before the lift, nor does the list.
    assert v.tracking_id not in text(by_cve)
    assert v.tracking_id not in listing
    assert "CVE-2026-1001" not in feed


def test_published_vulnerability_shows_its_details_and_links(client, settings, clock):
    v = published_one(settings, clock.at)

    listing = text(client.get("/vulnerabilities"))
    page = text(client.get(f"/vulnerabilities/{v.tracking_id}"))

    for shown in (listing, page):
        assert "CVE-2026-1002" in shown and "Heap overflow in L2CAP" in shown
        assert "<strong>crafted</strong>" in shown  # Markdown, rendered
        assert "<script>" not in shown  # ... safely
        assert "Critical (9.8)" in shown
        assert "zephyr &gt;=3.0 &lt;4.2" in shown and "zephyr =3.7.0" in shown
        assert 'href="https://github.com/zephyrproject-rtos/zephyr/pull/1234"' in shown
        assert "Alice Example" in shown
        for kind in ("osv", "csaf"):
            assert f'href="/vulnerabilities/{v.tracking_id}/{kind}.json"' in shown
        # Without FOREWARN_CNA_ORG_ID there is no CVE record to serve (404): no link to it.
        assert f'href="/vulnerabilities/{v.tracking_id}/cve.json"' not in shown
    assert client.get(f"/vulnerabilities/{v.tracking_id}/cve.json").status_code == 404
    assert f'href="/vulnerabilities/{v.tracking_id}"' in listing
    assert "Under embargo" not in page


def same_answer(response, unknown) -> bool:
    """The same status, body and headers (but the date) as the answer for an unknown id."""

    def headers(r):
        return sorted((k, v) for k, v in r.headers.items() if k not in ("Date",))

    return (response.status_code, response.data, headers(response)) == (
        unknown.status_code,
        unknown.data,
        headers(unknown),
    )


def test_an_embargoed_vulnerability_with_a_cve_id_answers_to_its_cve_id_alone(
    client, settings, clock
):
    v = embargoed_canary(settings, clock.at)
    unknown = client.get("/vulnerabilities/SEC-2026-9999")
    assert unknown.status_code == 404

    for asked in (v.tracking_id, v.tracking_id.lower()):
        by_tracking_id = client.get(f"/vulnerabilities/{asked}")
        assert same_answer(by_tracking_id, unknown), asked
    by_cve = client.get("/vulnerabilities/CVE-2026-1001")
    assert by_cve.status_code == 200
    assert "CVE-2026-1001" in text(by_cve) and "Under embargo until" in text(by_cve)
    assert v.tracking_id not in text(by_cve)
    # Every record's address answers as an unknown id's does, by either id.
    for kind in ("cve", "osv", "csaf"):
        unknown_record = client.get(f"/vulnerabilities/SEC-2026-9999/{kind}.json")
        assert unknown_record.status_code == 404
        for asked in (v.tracking_id, "CVE-2026-1001"):
            record = client.get(f"/vulnerabilities/{asked}/{kind}.json")
            assert same_answer(record, unknown_record), (asked, kind)


def test_without_a_cve_id_the_tracking_id_stays_the_public_handle(client, settings, clock):
    v = make(settings, clock.at, f"{CANARY} no id yet")

    page = client.get(f"/vulnerabilities/{v.tracking_id}")
    listing = text(client.get("/vulnerabilities"))

    assert page.status_code == 200 and "Under embargo until" in text(page)
    assert f'href="/vulnerabilities/{v.tracking_id}"' in listing
    assert CANARY not in text(page) and CANARY not in listing
    for kind in ("cve", "osv", "csaf"):
        assert client.get(f"/vulnerabilities/{v.tracking_id}/{kind}.json").status_code == 404


def test_after_the_lift_the_records_answer_by_either_id(client, settings, clock):
    v = published_one(settings, clock.at)

    for kind in ("cve", "osv", "csaf"):
        if kind != "cve":  # the CVE record needs FOREWARN_CNA_ORG_ID (tests/test_exports.py)
            by_tracking_id = client.get(f"/vulnerabilities/{v.tracking_id}/{kind}.json")
            assert by_tracking_id.status_code == 200, kind
        by_cve = client.get(f"/vulnerabilities/CVE-2026-1002/{kind}.json")
        assert by_cve.status_code == 302
        assert by_cve.headers["Location"] == f"/vulnerabilities/{v.tracking_id}/{kind}.json"


def test_the_cve_record_is_linked_only_for_a_vulnerability_with_a_cve_id(
    settings, clock, db, redis_conn
):
    from app.web import create_app

    cna = dataclasses.replace(settings, cna_org_id="8254265b-2729-46b6-b9e3-3dfca2d5bfca")
    client = create_app(cna, test_config={"TESTING": True}).test_client()
    without = make(settings, clock.at, "No CVE id", affected="zephyr <4.2")
    publish(without, clock.at)
    with_id = published_one(settings, clock.at)

    listing = text(client.get("/vulnerabilities"))
    page = text(client.get(f"/vulnerabilities/{without.tracking_id}"))

    for shown in (listing, page):
        assert f'href="/vulnerabilities/{without.tracking_id}/osv.json"' in shown
        assert f'href="/vulnerabilities/{without.tracking_id}/csaf.json"' in shown
        assert f'href="/vulnerabilities/{without.tracking_id}/cve.json"' not in shown
    assert "CVE JSON 5.1" not in page
    assert f'href="/vulnerabilities/{with_id.tracking_id}/cve.json"' in listing
    assert client.get(f"/vulnerabilities/{with_id.tracking_id}/cve.json").status_code == 200


def test_a_long_description_is_cut_on_the_list_and_whole_on_its_page(client, settings, clock):
    long = " ".join(["word"] * 300) + "\n\nThe second paragraph."
    v = make(settings, clock.at, "Long", long, cve="CVE-2026-1003", affected="zephyr <4.2")
    publish(v, clock.at)

    assert "The second paragraph." not in text(client.get("/vulnerabilities"))
    assert "Read the whole description" in text(client.get("/vulnerabilities"))
    assert "The second paragraph." in text(client.get(f"/vulnerabilities/{v.tracking_id}"))


def test_unvalidated_and_rejected_vulnerabilities_are_never_public(client, settings, clock):
    hidden = [
        make(settings, clock.at, f"{CANARY} new", status="new", cve="CVE-2026-1010"),
        make(settings, clock.at, f"{CANARY} triage", status="triage", cve="CVE-2026-1011"),
        make(settings, clock.at, f"{CANARY} rejected", status="rejected"),
    ]
    unknown = client.get("/vulnerabilities/SEC-2026-9999")
    assert unknown.status_code == 404

    listing = text(client.get("/vulnerabilities"))
    feed = text(client.get("/vulnerabilities.atom"))
    assert CANARY not in listing and CANARY not in feed
    for v in hidden:
        assert v.tracking_id not in listing
        response = client.get(f"/vulnerabilities/{v.tracking_id}")
        assert response.status_code == 404
        assert response.data == unknown.data  # the same page as for an id that does not exist
    for cve_id in ("CVE-2026-1010", "CVE-2026-1011"):
        assert cve_id not in listing
        assert client.get(f"/vulnerabilities/{cve_id}").data == unknown.data


def test_grouped_by_year_of_the_id_newest_first(client, settings, clock):
    old = make(settings, clock.at, "Old", cve="CVE-2025-0042")
    newer = make(settings, clock.at, "Newer", cve="CVE-2026-1005")
    older = make(settings, clock.at, "Older", cve="CVE-2026-1004")
    no_cve = make(settings, clock.at, "No CVE yet")
    for v in (old, older):
        publish(v, clock.at)

    page = text(client.get("/vulnerabilities"))

    years = re.findall(r"<h2[^>]*>(\d{4})</h2>", page)
    assert years == ["2026", "2025"]
    order = [page.index(shown) for shown in (no_cve.tracking_id, "CVE-2026-1005", "CVE-2026-1004")]
    assert order == sorted(order)
    assert page.index("CVE-2026-1004") < page.index("2025</h2>") < page.index("CVE-2025-0042")
    assert newer.tracking_id not in page


def test_a_cve_id_address_redirects_to_the_published_page(client, settings, clock):
    v = published_one(settings, clock.at)

    for asked in ("CVE-2026-1002", "cve-2026-1002", v.tracking_id.lower()):
        response = client.get(f"/vulnerabilities/{asked}")
        assert response.status_code == 302
        assert response.headers["Location"] == f"/vulnerabilities/{v.tracking_id}"


def test_the_embargo_date_can_be_hidden(settings, db, redis_conn, clock):
    from app.web import create_app

    assert settings.show_embargo_dates is True
    assert load_settings({"FOREWARN_SHOW_EMBARGO_DATES": "0"}).show_embargo_dates is False
    hiding = create_app(dataclasses.replace(settings, show_embargo_dates=False), {"TESTING": True})
    make(settings, clock.at, "Embargoed", cve="CVE-2026-1006")

    for url in ("/vulnerabilities", "/vulnerabilities/CVE-2026-1006"):
        page = text(hiding.test_client().get(url))
        assert "CVE-2026-1006" in page and "Under embargo" in page
        assert "2027-02-23" not in page and "Under embargo until" not in page


def test_the_list_is_read_in_a_constant_number_of_queries(app, client, settings, clock):
    database = app.extensions["forewarn.db"]
    executed = []
    original = database.execute_sql

    def counting(sql, *args, **kwargs):
        executed.append(sql)
        return original(sql, *args, **kwargs)

    database.execute_sql = counting
    try:
        counts = []
        for n in range(1, 13):
            v = make(settings, clock.at, f"V{n}", cve=f"CVE-2026-{2000 + n}", affected="z <1")
            if n % 2:
                publish(v, clock.at)
            if n in (2, 12):
                executed.clear()
                assert client.get("/vulnerabilities").status_code == 200
                counts.append(len([sql for sql in executed if "vulnerability" in sql.lower()]))
    finally:
        del database.execute_sql
    # The fingerprint, then the rows (changed each time), then their revisions.
    assert counts[0] == counts[1] == 3


def test_an_unchanged_list_is_served_from_one_aggregate_query_and_gzipped(
    app, client, settings, clock
):
    import gzip

    v = make(settings, clock.at, "Cached", cve="CVE-2026-1900", affected="z <1")
    first = client.get("/vulnerabilities")
    database = app.extensions["forewarn.db"]
    executed = []
    original = database.execute_sql

    def counting(sql, *args, **kwargs):
        executed.append(sql)
        return original(sql, *args, **kwargs)

    database.execute_sql = counting
    try:
        again = client.get("/vulnerabilities", headers={"Accept-Encoding": "gzip, deflate"})
    finally:
        del database.execute_sql
    assert len([sql for sql in executed if "vulnerability" in sql.lower()]) == 1
    assert again.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(again.get_data()) == first.get_data()
    assert again.headers["ETag"] != first.headers["ETag"]  # another representation
    # In production a checked page is served for a second without asking the database.
    app.config["FOREWARN_LIST_FRESH_FOR"] = 60
    client.get("/vulnerabilities")
    executed.clear()
    database.execute_sql = counting
    try:
        assert client.get("/vulnerabilities").get_data() == first.get_data()
    finally:
        del database.execute_sql
    assert executed == []
    app.config["FOREWARN_LIST_FRESH_FOR"] = 0
    # Any change of a public row shows at once.
    lifecycle.set_field(v, "title", "Cached, renamed", ACTOR, clock.at)
    assert "Cached, renamed" not in client.get("/vulnerabilities").get_data(
        as_text=True
    )  # embargoed
    publish(Vulnerability.get_by_id(v.id), clock.at)
    assert "Cached, renamed" in client.get("/vulnerabilities").get_data(as_text=True)


# -- conditional requests --------------------------------------------------------------------


def test_pages_and_feed_answer_304_until_something_shown_changes(client, settings, clock):
    # Without a CVE id: its placeholder answers at its tracking id, as its published page does.
    v = make(settings, clock.at, "Soon public", affected="zephyr <4.2")
    urls = ("/vulnerabilities", f"/vulnerabilities/{v.tracking_id}", "/vulnerabilities.atom")
    first = {url: client.get(url) for url in urls}
    for url, response in first.items():
        etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304, url
        assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304, url

    clock.move(minutes=5)
    publish(v, clock.at)

    for url, response in first.items():
        etag, modified = response.headers["ETag"], response.headers["Last-Modified"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 200, url
        assert again.headers["ETag"] != etag
        assert "Soon public" in text(again)
        assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 200, url


def test_the_pages_change_at_the_lift_instant_without_any_row_changing(client, settings, clock):
    v = make(settings, clock.at, "Lifts at noon", cve="CVE-2026-1008", affected="zephyr <4.2")
    publish(v, clock.at + timedelta(hours=1))  # published_at ahead: still embargoed now
    before = client.get("/vulnerabilities")
    assert "Lifts at noon" not in text(before)

    clock.move(hours=1)

    after = client.get("/vulnerabilities", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert "Lifts at noon" in text(after)
    assert after.headers["Last-Modified"] != before.headers["Last-Modified"]


# -- the feed ----------------------------------------------------------------------------------


def test_the_feed_has_the_published_entries_only_newest_first(client, settings, clock):
    embargoed_canary(settings, clock.at)
    make(settings, clock.at, f"{CANARY} triage", status="triage")
    first = published_one(settings, clock.at, cve="CVE-2026-1002", title="First")
    clock.move(days=2)
    nasty = 'Nasty <title> & "quotes" \x0b\x01 ]]> é'
    second = published_one(settings, clock.at, cve="CVE-2026-1003", title="Nasty")
    # Control characters are refused in new titles (app.core.oneline); older rows may hold them.
    Vulnerability.update(title=nasty).where(Vulnerability.id == second.id).execute()

    response = client.get("/vulnerabilities.atom")

    assert response.mimetype == "application/atom+xml"
    assert CANARY.encode() not in response.data
    feed = ET.fromstring(response.data)  # noqa: S314 (our own output; well-formed, whatever)
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [
        'CVE-2026-1003: Nasty <title> & "quotes"  ]]> é',
        "CVE-2026-1002: First",
    ]
    times = (clock.at, clock.at - timedelta(days=2))
    for entry, v, at in zip(entries, (second, first), times, strict=True):
        assert entry.find(f"{ATOM}id").text.startswith("tag:")
        assert entry.find(f"{ATOM}id").text.endswith(f":{v.tracking_id}")
        assert entry.find(f"{ATOM}updated").text == at.strftime("%Y-%m-%dT%H:%M:%SZ")
        link = entry.find(f"{ATOM}link[@rel='alternate']")
        assert link.get("href") == f"{settings.base_url}/vulnerabilities/{v.tracking_id}"
        assert "Critical" in entry.find(f"{ATOM}summary").text
    assert feed.find(f"{ATOM}updated").text == entries[0].find(f"{ATOM}updated").text


def feed_of(client) -> ET.Element:
    return ET.fromstring(client.get("/vulnerabilities.atom").data)  # noqa: S314 (our own output)


def test_the_feed_entry_id_stays_the_same(client, settings, clock):
    published_one(settings, clock.at)
    before = feed_of(client)
    clock.move(days=30)
    after = feed_of(client)
    ids = [feed.find(f"{ATOM}entry/{ATOM}id").text for feed in (before, after)]
    assert ids[0] == ids[1]


# -- reachable, and as the CSP wants ----------------------------------------------------------


def test_every_page_links_the_list_and_the_feed(client, settings, clock):
    v = published_one(settings, clock.at)
    home = text(client.get("/"))
    assert 'href="/vulnerabilities"' in home and 'href="/vulnerabilities.atom"' in home
    for url in ("/", "/vulnerabilities", f"/vulnerabilities/{v.tracking_id}"):
        page = text(client.get(url))
        assert '<li><a href="/vulnerabilities">Vulnerabilities</a></li>' in page
        assert re.search(r'<link rel="alternate" type="application/atom\+xml"[^>]*>', page)
        assert "<script" not in page and "style=" not in page


# -- /.well-known/ -----------------------------------------------------------------------------


@pytest.fixture
def service_cert(client, keyring, tmp_path) -> Path:
    cert = tmp_path / "service.asc"
    cert.write_bytes(client.get("/key.asc").data)
    return cert


def url_for_policy(client) -> str:
    """The policy page's path as the portal routes it (security.txt, signed by a worker outside
    any request, names wellknown.POLICY_PATH)."""
    with client.application.test_request_context():
        return url_for("registry.policy")


def test_security_txt_has_every_field_and_expires_ahead(client, settings, clock, keyring):
    public.publish(keyring, settings, clock.at)  # as the worker signs it on the day
    response = client.get("/.well-known/security.txt")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    body = text(response)
    assert body.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    fields = dict(
        line.split(": ", 1) for line in body.splitlines() if re.match(r"^[A-Z][A-Za-z-]+: ", line)
    )
    base = settings.base_url
    assert fields["Contact"] == f"mailto:{settings.security_address}"
    assert fields["Encryption"] == f"{base}/key.asc"
    assert fields["Policy"] == f"{base}/registry/policy"
    assert fields["Canonical"] == f"{base}/.well-known/security.txt"
    assert fields["Preferred-Languages"] == "en"
    expires = datetime.fromisoformat(fields["Expires"].replace("Z", "+00:00"))
    assert clock.at + timedelta(days=150) < expires < clock.at + timedelta(days=365)
    assert fields["Policy"] == base + url_for_policy(client)
    assert client.get(fields["Policy"].removeprefix(base)).status_code == 200

    clock.move(days=200)  # renewed by a worker's reconciler: still ahead of the clock
    assert public.tick(clock.at, settings, open_keyring=lambda: keyring)
    later = text(client.get("/.well-known/security.txt"))
    renewed = re.search(r"^Expires: (.+)$", later, re.M).group(1)
    assert datetime.fromisoformat(renewed.replace("Z", "+00:00")) > clock.at


def test_security_txt_signature_verifies_with_sequoia_and_rnp(client, service_cert, tmp_path):
    signed = client.get("/.well-known/security.txt").data
    (tmp_path / "security.txt").write_bytes(signed)

    verified = run("sqop", "inline-verify", str(service_cert), input=signed)
    assert b"Contact: mailto:" in verified.stdout
    tampered = signed.replace(b"Preferred-Languages: en", b"Preferred-Languages: de")
    assert run("sqop", "inline-verify", str(service_cert), input=tampered, check=False).returncode

    home = tmp_path / "rnp"
    home.mkdir(mode=0o700)
    run("rnpkeys", "--homedir", str(home), "--import", str(service_cert))
    run("rnp", "--homedir", str(home), "--verify", str(tmp_path / "security.txt"))


def wks_client() -> str:
    found = shutil.which("gpg-wks-client") or "/usr/lib/gnupg/gpg-wks-client"
    if not Path(found).exists():
        pytest.fail("gpg-wks-client is missing (Debian's gnupg package installs it)")
    return found


def test_wkd_serves_the_service_key_under_the_hash_gnupg_computes(
    client, settings, keyring, service_cert
):
    printed = run(wks_client(), "--print-wkd-hash", settings.security_address).stdout.decode()
    hashed = printed.split()[0]
    assert wellknown.wkd_hash(settings.security_address.split("@")[0]) == hashed
    local = settings.security_address.split("@")[0]

    for url in (
        f"/.well-known/openpgpkey/hu/{hashed}",
        f"/.well-known/openpgpkey/hu/{hashed}?l={local}",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert response.mimetype == "application/octet-stream"
        assert response.data == run("sqop", "dearmor", input=service_cert.read_bytes()).stdout
        # Clients accept the key only if a user id carries the address.
        assert f"<{settings.security_address}>".encode() in response.data

    other = run(wks_client(), "--print-wkd-hash", "alice@localhost").stdout.decode().split()[0]
    assert client.get(f"/.well-known/openpgpkey/hu/{other}").status_code == 404
    policy = client.get("/.well-known/openpgpkey/policy")
    assert policy.status_code == 200 and policy.data == b""


def test_zbase32_matches_the_draft_examples():
    assert wellknown.wkd_hash("Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    assert wellknown.zbase32(b"\x00" * 20) == "y" * 32


def test_the_feed_carries_the_newest_publications_only(client, clock):
    for n in range(feeds.ENTRIES + 3):
        at = clock.at - timedelta(hours=n)
        Vulnerability.create(
            tracking_id=f"SEC-2026-{n + 1:04d}",
            title=f"Published {n}",
            status="published",
            published_at=at,
            reported_at=at,
            created_at=at,
            updated_at=at,
        )

    entries = feed_of(client).findall(f"{ATOM}entry")

    assert len(entries) == feeds.ENTRIES
    assert entries[0].find(f"{ATOM}title").text == "SEC-2026-0001: Published 0"
    assert len(re.findall(r'<article class="vuln"', text(client.get("/vulnerabilities")))) == 53


def test_signed_in_visitors_get_their_own_uncached_page(client, auth, admin_user, settings, clock):
    published_one(settings, clock.at)
    anonymous = client.get("/vulnerabilities")
    assert anonymous.headers["Cache-Control"] == "no-cache"
    assert "Cookie" in anonymous.headers["Vary"]

    auth.login(admin_user.email, PASSWORD)
    signed_in = client.get("/vulnerabilities")

    assert signed_in.headers["Cache-Control"] == "private, no-cache"
    assert admin_user.email in text(signed_in) and "Heap overflow in L2CAP" in text(signed_in)
    assert signed_in.headers["ETag"] != anonymous.headers["ETag"]
