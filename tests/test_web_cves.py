"""The admin's CVE ids page: what is left (or the CVE Services quota), importing a block and
retiring an id, each ending with a message that says what happened."""

import html as html_lib
import re
from urllib.parse import urlsplit

import pytest

from app.accounts import team
from app.core.errors import OperatorError
from app.models import AuditEvent, CveId, Vulnerability
from app.vulns import cve_records, cve_services, cves
from tests.conftest import PASSWORD, csrf_token

LOW = "CVE ids left: import a block before they run out."


@pytest.fixture(autouse=True)
def _block_mode(monkeypatch):
    """Block mode unless a test says otherwise, whatever the machine's environment holds."""
    for name in (
        cve_services.URL_VAR,
        cve_services.USER_VAR,
        cve_services.KEY_VAR,
        cve_services.ORG_VAR,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def admin(client, auth, admin_user):
    assert auth.login(admin_user.email, PASSWORD).status_code == 302
    return client


def vulnerability(tracking_id: str, at) -> Vulnerability:
    return Vulnerability.create(
        tracking_id=tracking_id, status="accepted", reported_at=at, created_at=at, updated_at=at
    )


def page(client) -> str:
    response = client.get("/admin/cves")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post(client, path: str, **fields) -> str:
    """Submit one of the page's forms, follow the redirect back, return the page shown."""
    token = csrf_token(page(client))
    response = client.post(path, data={"csrf_token": token, **fields})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/cves"
    return page(client)


def messages(html: str) -> list[str]:
    found = re.findall(r'<p class="message (\w+)">(.*?)</p>', html, re.S)
    return [f"{c}: {html_lib.unescape(' '.join(text.split()))}" for c, text in found]


def rows(html: str) -> dict[str, list[str]]:
    """The ids table as {cve id: [state, source, vulnerability, assigned, reason]} (raw HTML)."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body.group(1) if body else "", re.S):
        head = re.search(r"<th[^>]*><code>(.*?)</code></th>", row).group(1)
        found[head] = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    return found


def states() -> dict[str, str]:
    return {row.cve_id: row.state for row in CveId.select()}


# -- who may use it --------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in_and_team_members_are_refused(
    client, auth, db, clock
):
    anonymous = client.get("/admin/cves")
    assert anonymous.status_code == 302
    assert urlsplit(anonymous.headers["Location"]).path == "/login"

    team.create_team_account("bob@example.org", PASSWORD, "team", clock.at, by="test")
    auth.login("bob@example.org", PASSWORD)
    token = csrf_token(client.get("/team/").get_data(as_text=True))
    refused = client.post(
        "/admin/cves/import",
        data={"csrf_token": token, "import-id_range": "CVE-2026-1000..CVE-2026-1009"},
    )

    assert client.get("/admin/cves").status_code == 403
    assert refused.status_code == 403
    assert CveId.select().count() == 0


def test_an_admin_sees_both_forms_with_labelled_inputs(admin):
    html = page(admin)

    assert 'action="/admin/cves/import"' in html
    assert 'action="/admin/cves/retire"' in html
    for field_id, label in [
        ("import-id_range", "Range, e.g. CVE-2026-1000..CVE-2026-1099"),
        ("retire-cve_id", "CVE id"),
        ("retire-reason", "Reason (kept with the id)"),
    ]:
        assert f'<label for="{field_id}">{label}</label>' in html
        assert f'id="{field_id}"' in html


# -- importing -------------------------------------------------------------------------------------


def test_importing_a_range_adds_its_ids_and_says_how_many(admin, clock):
    html = post(admin, "/admin/cves/import", **{"import-id_range": "CVE-2026-1000..CVE-2026-1099"})

    assert messages(html) == ["success: Added 100 ids (0 already known). 100 are available now."]
    assert cves.remaining() == 100
    assert re.search(r'<dd id="available">100</dd>', html)
    assert rows(html)["CVE-2026-1099"][:2] == ["available", "block"]
    event = AuditEvent.get(AuditEvent.action == "cve.import_block")
    assert event.actor_label == "admin@example.org"
    assert event.target == "CVE-2026-1000..CVE-2026-1099"


def test_importing_an_overlapping_range_counts_the_ids_already_known(admin, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)

    html = post(admin, "/admin/cves/import", **{"import-id_range": "CVE-2026-1005..CVE-2026-1014"})

    assert messages(html) == ["success: Added 5 ids (5 already known). 15 are available now."]
    assert cves.remaining() == 15


def test_a_bad_range_flashes_the_error_and_adds_nothing(admin):
    html = post(admin, "/admin/cves/import", **{"import-id_range": "CVE-2026-1099..CVE-2026-1000"})

    assert messages(html) == [
        "error: No ids were imported: CVE-2026-1099..CVE-2026-1000 runs backwards: "
        "its first id comes after its last"
    ]
    assert CveId.select().count() == 0
    assert not AuditEvent.select().where(AuditEvent.action == "cve.import_block").exists()


def test_an_empty_range_is_refused_by_the_form(admin):
    html = post(admin, "/admin/cves/import", **{"import-id_range": "   "})

    assert len(messages(html)) == 1
    assert messages(html)[0].startswith("error: No ids were imported: Range")
    assert CveId.select().count() == 0


# -- the low-water banner --------------------------------------------------------------------------


def test_the_banner_warns_with_nine_ids_left_and_not_with_ten(admin, clock):
    assert cves.LOW_WATER == 10
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)

    ten = page(admin)
    vuln = vulnerability("SEC-2026-0001", clock.at)
    cves.allocate(vuln, None, "test", clock.at)
    nine = page(admin)

    assert LOW not in ten
    assert 'class="banner-low"' not in ten
    assert "Only 9 " + LOW in " ".join(nine.split())


def test_the_banner_warns_when_no_id_was_ever_imported(admin):
    assert "Only 0 " + LOW in " ".join(page(admin).split())


# -- CVE Services mode -----------------------------------------------------------------------------


@pytest.fixture
def services_mode(monkeypatch):
    monkeypatch.setenv(cve_services.URL_VAR, "https://cve.example.org/api/")
    monkeypatch.setenv(cve_services.USER_VAR, "robot@example.org")
    monkeypatch.setenv(cve_services.KEY_VAR, "not-a-real-key")
    monkeypatch.setenv(cve_services.ORG_VAR, "example")


def test_in_cve_services_mode_the_quota_is_shown(admin, services_mode, monkeypatch):
    asked = []

    def quota(config):
        asked.append(config.org)
        return {"id_quota": 1000, "total_reserved": 993, "available": 7}

    monkeypatch.setattr(cve_services, "quota", quota)

    html = " ".join(page(admin).split())

    assert asked == ["example"]
    assert "<dt>CVE Services quota</dt><dd>1000</dd>" in html
    assert "<dt>Still available there</dt><dd>7</dd>" in html
    assert "Only 7 ids left in the CVE Services quota" in html
    assert LOW not in html  # the blocks are not used in this mode


def test_an_unreachable_cve_services_shows_its_error_instead_of_failing(
    admin, services_mode, monkeypatch
):
    def unreachable(config):
        raise OperatorError("cannot read the id quota at CVE Services (ConnectionError)")

    monkeypatch.setattr(cve_services, "quota", unreachable)

    response = admin.get("/admin/cves")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert (
        '<p class="error" id="services-error">cannot read the id quota at CVE Services '
        "(ConnectionError)</p>" in html
    )
    assert "Import a block" in html


# -- retiring --------------------------------------------------------------------------------------


def test_retiring_an_available_id_rejects_it_and_shows_the_reason(admin, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)

    html = post(
        admin,
        "/admin/cves/retire",
        **{"retire-cve_id": "cve-2026-1003", "retire-reason": "burnt in a  test mail"},
    )

    assert messages(html) == [
        "success: CVE-2026-1003 is rejected (burnt in a test mail). "
        "It will not be given to any vulnerability."
    ]
    assert states()["CVE-2026-1003"] == "rejected"
    assert rows(html)["CVE-2026-1003"][0] == "rejected"
    assert rows(html)["CVE-2026-1003"][4] == "burnt in a test mail"
    assert cves.remaining() == 9


def test_retiring_an_assigned_id_says_the_vulnerability_needs_another(admin, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1009", None, "test", clock.at)
    vuln = vulnerability("SEC-2026-0007", clock.at)
    cves.allocate(vuln, None, "test", clock.at)

    html = post(
        admin,
        "/admin/cves/retire",
        **{"retire-cve_id": "CVE-2026-1000", "retire-reason": "duplicate of CVE-2026-0042"},
    )

    assert messages(html) == [
        "success: CVE-2026-1000 is rejected (duplicate of CVE-2026-0042). "
        "SEC-2026-0007 has no CVE id now; give it a new one from its page."
    ]
    assert Vulnerability.get_by_id(vuln.id).cve_id is None
    assert rows(html)["CVE-2026-1000"][2] == ""  # no longer linked


def test_retiring_a_published_id_is_refused_with_a_message(admin, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1001", None, "test", clock.at)
    CveId.update(state="published").where(CveId.cve_id == "CVE-2026-1000").execute()

    html = post(
        admin, "/admin/cves/retire", **{"retire-cve_id": "CVE-2026-1000", "retire-reason": "oops"}
    )

    assert messages(html) == [
        "error: No id was retired: CVE-2026-1000 is published; a published record is "
        "rejected by updating it at CVE Services, not by retiring the id"
    ]
    assert states()["CVE-2026-1000"] == "published"
    assert not AuditEvent.select().where(AuditEvent.action == "cve.retire").exists()


@pytest.mark.parametrize(
    ("cve_id", "reason", "expected"),
    [
        ("CVE-2026-5555", "typo", "error: No id was retired: CVE-2026-5555 is not one of our"),
        ("CVE-2026-1000", "", "error: No id was retired: Reason"),
        ("not-an-id", "typo", "error: No id was retired: 'not-an-id' is not a CVE id"),
    ],
)
def test_retiring_needs_one_of_our_ids_and_a_reason(admin, clock, cve_id, reason, expected):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)

    html = post(admin, "/admin/cves/retire", **{"retire-cve_id": cve_id, "retire-reason": reason})

    assert len(messages(html)) == 1
    assert messages(html)[0].startswith(expected)
    assert states() == {"CVE-2026-1000": "available"}


# -- the table -------------------------------------------------------------------------------------


def test_the_table_links_assigned_ids_to_their_vulnerability_with_a_utc_time(admin, clock):
    cves.import_block("CVE-2026-1000..CVE-2026-1002", None, "test", clock.at)
    cves.allocate(vulnerability("SEC-2026-0003", clock.at), None, "test", clock.at)

    table = rows(page(admin))

    assigned = table["CVE-2026-1000"]
    assert assigned[0] == "assigned"
    assert assigned[2] == '<a href="/team/vulnerabilities/SEC-2026-0003">SEC-2026-0003</a>'
    assert assigned[3] == '<time datetime="2026-11-25T12:00:00Z">2026-11-25 12:00 UTC</time>'
    assert table["CVE-2026-1001"][2:4] == ["", ""]
    assert list(table) == ["CVE-2026-1002", "CVE-2026-1001", "CVE-2026-1000"]  # newest first


def test_html_in_a_reason_is_escaped(admin, clock):
    cves.import_block("CVE-2026-1000", None, "test", clock.at)
    cve_records.retire(
        "CVE-2026-1000", "<script>alert(1)</script> & <b>bold</b>", None, "t", clock.at
    )

    html = page(admin)

    assert "<script>alert(1)</script>" not in html
    assert "<b>bold</b>" not in html
    assert rows(html)["CVE-2026-1000"][4] == (
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    )


def test_a_long_list_is_capped_with_a_note(admin, clock, monkeypatch):
    from app.web import admin as admin_views

    monkeypatch.setattr(admin_views, "CVE_ROWS", 5)
    cves.import_block("CVE-2026-1000..CVE-2026-1011", None, "test", clock.at)

    html = page(admin)

    assert list(rows(html)) == [f"CVE-2026-{n}" for n in range(1011, 1006, -1)]
    assert "the 5 newest of 12 ids" in " ".join(html.split())
