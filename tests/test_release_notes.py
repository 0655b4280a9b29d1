"""Release-note lines: embargoed CVEs by id and embargo date alone, published ones with their
title and public page, unvalidated and rejected ones never; by the library, the command line
and the team's page."""

import html
import re
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from app.accounts import team
from app.core import passwords
from app.disclosure import exports
from app.models import CveId, User, Vulnerability
from tests.conftest import PASSWORD
from tests.test_cli import one_line_error

BASE = "https://cna.example.org"
SECRET = "SECRET-Heap overflow in the BLE L2CAP reassembly"


def vuln(at, cve_id, status, tracking_id=None, **fields):
    """A vulnerability with a CVE id from a block, as the workspace leaves it."""
    year, number = cve_id.split("-")[1:]
    cve = CveId.create(
        cve_id=cve_id,
        block=f"CVE-{year}-0000..CVE-{year}-99999",
        year=int(year),
        number=int(number),
        state="published" if status == "published" else "assigned",
        assigned_at=at,
    )
    values = {
        "title": f"Title of {cve_id}",
        "description": f"Description of {cve_id}",
        "reported_at": at - timedelta(days=30),
        "embargo_until": at + timedelta(days=60),
        "created_at": at,
        "updated_at": at,
        **fields,
    }
    tracking_id = tracking_id or f"SEC-{year}-{number}"
    return Vulnerability.create(tracking_id=tracking_id, status=status, cve=cve, **values)


def notes(at, since=None):
    return exports.release_notes(at, since, base_url=BASE)


# -- the lines ------------------------------------------------------------------------------------


def test_embargoed_lines_are_zephyrs_and_published_ones_carry_title_and_link(db, clock):
    vuln(clock.at, "CVE-2026-1001", "accepted", embargo_until=datetime(2027, 2, 23, 14, tzinfo=UTC))
    vuln(clock.at, "CVE-2026-1002", "fixed", embargo_until=datetime(2027, 3, 1, 9, tzinfo=UTC))
    vuln(
        clock.at,
        "CVE-2026-1003",
        "published",
        tracking_id="SEC-2026-0007",
        title="Out-of-bounds read in the USB stack",
        embargo_until=clock.at - timedelta(days=2),
        published_at=clock.at - timedelta(days=2),
    )

    assert notes(clock.at) == [
        "CVE-2026-1001: Under embargo until 2027-02-23",
        "CVE-2026-1002: Under embargo until 2027-03-01",
        "CVE-2026-1003: Out-of-bounds read in the USB stack "
        f"({BASE}/vulnerabilities/SEC-2026-0007)",
    ]


def test_the_embargo_date_is_the_utc_day(db, clock):
    # 23:30 in New York on the 23rd is already the 24th in UTC.
    new_york = timezone(timedelta(hours=-5))
    vuln(
        clock.at,
        "CVE-2026-1001",
        "accepted",
        embargo_until=datetime(2027, 2, 23, 23, 30, tzinfo=new_york),
    )

    assert notes(clock.at) == ["CVE-2026-1001: Under embargo until 2027-02-24"]


def test_unvalidated_rejected_and_cve_less_vulnerabilities_never_appear(db, clock):
    vuln(clock.at, "CVE-2026-1001", "new", title="SECRET new")
    vuln(clock.at, "CVE-2026-1002", "triage", title="SECRET triage")
    vuln(clock.at, "CVE-2026-1003", "rejected", title="SECRET rejected")
    vuln(clock.at, "CVE-2026-1004", "accepted")
    Vulnerability.create(
        tracking_id="SEC-2026-0099",
        title="SECRET without a CVE id",
        status="published",
        reported_at=clock.at,
        published_at=clock.at,
        created_at=clock.at,
        updated_at=clock.at,
    )

    lines = notes(clock.at)

    assert lines == [f"CVE-2026-1004: Under embargo until {(clock.at + timedelta(days=60)).date()}"]
    assert "SECRET" not in "\n".join(lines)


def test_a_rejected_cve_id_is_not_listed(db, clock):
    kept = vuln(clock.at, "CVE-2026-1001", "accepted")
    withdrawn = vuln(clock.at, "CVE-2026-1002", "accepted")
    CveId.update(state="rejected").where(CveId.id == withdrawn.cve_id).execute()

    assert [line.split(":")[0] for line in notes(clock.at)] == [kept.cve.cve_id]


def test_lines_are_ordered_by_year_then_number_not_as_text(db, clock):
    for cve_id in ("CVE-2026-10000", "CVE-2026-9999", "CVE-2025-50000", "CVE-2026-1000"):
        vuln(clock.at, cve_id, "accepted")

    assert [line.split(":")[0] for line in notes(clock.at)] == [
        "CVE-2025-50000",
        "CVE-2026-1000",
        "CVE-2026-9999",
        "CVE-2026-10000",
    ]


def test_an_embargoed_vulnerability_shows_nothing_but_its_cve_id_and_embargo_date(db, clock):
    vuln(
        clock.at,
        "CVE-2026-1001",
        "fixed",
        tracking_id="SEC-2026-0042",
        title=SECRET,
        description="SECRET description: send 0x41 * 300 to channel 5",
        affected="zephyr >=3.0 <4.2",
        severity="CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        credits="SECRET Ada Reporter",
        fix_refs="https://github.com/zephyrproject-rtos/zephyr/pull/424242",
        reporter_email="ada@example.net",
        embargo_until=datetime(2027, 2, 23, 14, tzinfo=UTC),
    )

    (line,) = notes(clock.at)

    assert line == "CVE-2026-1001: Under embargo until 2027-02-23"
    for secret in ("SECRET", "SEC-2026-0042", "zephyr", "424242", "ada@", "CVSS", BASE):
        assert secret not in line


def test_published_but_not_yet_at_the_given_instant_is_still_a_placeholder(db, clock):
    vuln(
        clock.at,
        "CVE-2026-1001",
        "published",
        title=SECRET,
        embargo_until=clock.at + timedelta(hours=1),
        published_at=clock.at + timedelta(hours=1),
    )

    assert notes(clock.at) == [f"CVE-2026-1001: Under embargo until {clock.at.date()}"]
    assert notes(clock.at + timedelta(hours=1))[0].startswith(f"CVE-2026-1001: {SECRET} (")


def test_a_lift_that_is_due_but_not_done_stays_a_placeholder(db, clock):
    # Accepted, embargo over, not yet published (a held lift): still nothing but the id.
    vuln(
        clock.at,
        "CVE-2026-1001",
        "accepted",
        title=SECRET,
        embargo_until=clock.at - timedelta(days=1),
    )

    assert notes(clock.at) == [
        f"CVE-2026-1001: Under embargo until {(clock.at - timedelta(days=1)).date()}"
    ]


def test_a_published_title_is_kept_on_one_line(db, clock):
    vuln(
        clock.at,
        "CVE-2026-1001",
        "published",
        tracking_id="SEC-2026-0001",
        title="Overflow\r\nin   BLE",
        published_at=clock.at,
    )

    assert notes(clock.at) == [
        f"CVE-2026-1001: Overflow in BLE ({BASE}/vulnerabilities/SEC-2026-0001)"
    ]


def test_since_keeps_those_published_or_ending_on_or_after_the_day(db, clock):
    vuln(
        clock.at,
        "CVE-2026-1001",
        "published",
        published_at=datetime(2026, 11, 19, 23, 59, tzinfo=UTC),
    )
    vuln(
        clock.at,
        "CVE-2026-1002",
        "published",
        published_at=datetime(2026, 11, 20, 0, 0, tzinfo=UTC),
    )
    vuln(clock.at, "CVE-2026-1003", "accepted", embargo_until=datetime(2027, 2, 23, 14, tzinfo=UTC))

    def cves(since):
        return [line.split(":")[0] for line in notes(clock.at, since)]

    assert cves(None) == ["CVE-2026-1001", "CVE-2026-1002", "CVE-2026-1003"]
    assert cves(date(2026, 11, 20)) == ["CVE-2026-1002", "CVE-2026-1003"]
    assert cves(date(2027, 2, 23)) == ["CVE-2026-1003"]
    assert cves(date(2027, 2, 24)) == []


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", "20261101", "2026-W47-1", ""])
def test_parse_date_accepts_only_yyyy_mm_dd(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        exports.parse_date(text)


def test_parse_date_reads_a_date():
    assert exports.parse_date(" 2026-11-20 ") == date(2026, 11, 20)


# -- the command line -----------------------------------------------------------------------------


def test_cli_prints_the_lines(forewarn, db):
    # The command runs on the real clock: dates far from today on both sides.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    vuln(
        now,
        "CVE-2026-9999",
        "accepted",
        title=SECRET,
        embargo_until=datetime(2099, 2, 23, 14, tzinfo=UTC),
    )
    vuln(
        now,
        "CVE-2026-10000",
        "published",
        tracking_id="SEC-2026-0003",
        title="Overflow in BLE",
        published_at=datetime(2020, 5, 4, tzinfo=UTC),
    )
    vuln(now, "CVE-2026-1000", "triage", title=SECRET)

    result = forewarn("release-notes", extra_env={"FOREWARN_BASE_URL": BASE})
    since = forewarn(
        "release-notes", "--since", "2021-01-01", extra_env={"FOREWARN_BASE_URL": BASE}
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "CVE-2026-9999: Under embargo until 2099-02-23\n"
        f"CVE-2026-10000: Overflow in BLE ({BASE}/vulnerabilities/SEC-2026-0003)\n"
    )
    assert SECRET not in result.stdout + result.stderr
    assert since.returncode == 0, since.stderr
    assert since.stdout == "CVE-2026-9999: Under embargo until 2099-02-23\n"


@pytest.mark.parametrize("bad", ["2026-02-30", "last week"])
def test_cli_refuses_a_bad_since_date_in_one_line(forewarn, db, bad):
    result = forewarn("release-notes", "--since", bad)

    one_line_error(result, "--since", bad, "YYYY-MM-DD")
    assert result.stdout == ""


# -- the team's page ------------------------------------------------------------------------------


PRE = re.compile(r'<pre class="release-notes">(.*?)</pre>', re.S)


def shown_lines(response) -> list[str]:
    match = PRE.search(response.get_data(as_text=True))
    assert match, "the page has no release-notes block"
    return html.unescape(match.group(1)).split("\n")


@pytest.fixture
def member(db, clock):
    return team.create_team_account("alice@example.org", PASSWORD, "team", clock.at, by="test").user


def test_the_page_asks_anonymous_visitors_to_sign_in(client, db):
    response = client.get("/team/release-notes/")

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_the_page_is_forbidden_to_a_registrant(client, auth, db, clock):
    User.create(
        email="maker@example.com",
        password_hash=passwords.hash_password(PASSWORD),
        role="registrant",
        session_token=team.new_session_token(),
        created_at=clock.at,
    )
    assert auth.login("maker@example.com", PASSWORD).status_code == 302

    assert client.get("/team/release-notes/").status_code == 403
    assert client.get("/team/release-notes/release-notes.txt").status_code == 403


@pytest.mark.parametrize("who", ["member", "admin_user"])
def test_the_team_and_admins_see_the_lines_in_a_block_to_copy(
    client, auth, db, clock, who, request
):
    user = request.getfixturevalue(who)
    vuln(
        clock.at,
        "CVE-2026-1001",
        "accepted",
        title=SECRET,
        embargo_until=datetime(2027, 2, 23, 14, tzinfo=UTC),
    )
    vuln(
        clock.at,
        "CVE-2026-1002",
        "published",
        tracking_id="SEC-2026-0002",
        title="Use <after> free & more",
        published_at=clock.at,
    )
    assert auth.login(user.email, PASSWORD).status_code == 302

    response = client.get("/team/release-notes/")

    assert response.status_code == 200
    assert shown_lines(response) == [
        "CVE-2026-1001: Under embargo until 2027-02-23",
        "CVE-2026-1002: Use <after> free & more (http://127.0.0.1:8000/vulnerabilities/SEC-2026-0002)",
    ]
    page = response.get_data(as_text=True)
    assert "Use &lt;after&gt; free &amp; more" in page
    assert SECRET not in page
    assert '<label for="since">' in page


def test_the_page_filters_by_since_and_offers_plain_text(client, auth, admin_user, clock):
    vuln(clock.at, "CVE-2026-1001", "published", published_at=datetime(2026, 11, 1, tzinfo=UTC))
    vuln(
        clock.at,
        "CVE-2026-1002",
        "accepted",
        title=SECRET,
        embargo_until=datetime(2027, 2, 23, 14, tzinfo=UTC),
    )
    assert auth.login(admin_user.email, PASSWORD).status_code == 302

    page = client.get("/team/release-notes/?since=2026-11-02")
    text = client.get("/team/release-notes/release-notes.txt?since=2026-11-02")

    assert shown_lines(page) == ["CVE-2026-1002: Under embargo until 2027-02-23"]
    assert text.status_code == 200
    assert text.mimetype == "text/plain"
    assert text.get_data(as_text=True) == "CVE-2026-1002: Under embargo until 2027-02-23\n"


def test_the_page_explains_a_bad_since_date(client, auth, admin_user, clock):
    vuln(clock.at, "CVE-2026-1001", "accepted")
    assert auth.login(admin_user.email, PASSWORD).status_code == 302

    response = client.get("/team/release-notes/?since=2026-02-30")
    page = response.get_data(as_text=True)

    assert response.status_code == 400
    assert 'aria-invalid="true"' in page
    assert "YYYY-MM-DD" in page
    assert "CVE-2026-1001" not in page
