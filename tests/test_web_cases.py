"""The case page (#15): reached from any vulnerability of the case, it lists the case's
vulnerabilities, holds the actions on the whole case and shows the case's one thread."""

import pytest

from app.models import Correspondence
from app.vulns import lifecycle, split
from tests.conftest import PASSWORD, csrf_token

CLI = lifecycle.Actor(None, "test")


@pytest.fixture
def report(db, clock, settings):
    v = lifecycle.create("Audit of the kernel", "31 findings.", CLI, clock.at, settings)
    Correspondence.create(
        vulnerability=v,
        direction="in",
        at=clock.at,
        subject="Audit",
        text="Finding NCC-ZEP-001: stack overflow on ARM.",
        sender="auditor@ncc.example",
    )
    return v


@pytest.fixture
def signed_in(client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    return client


def test_the_case_page_is_the_same_from_every_vulnerability_of_the_case(
    signed_in, report, clock, settings
):
    arm, arc = split.split(
        report, ["ARM: stack overflow", "ARC: stack overflow"], CLI, clock.at, settings
    )
    pages = [
        signed_in.get(f"/team/cases/{ident}").get_data(as_text=True)
        for ident in (report.tracking_id, arm.tracking_id, arc.tracking_id)
    ]
    for page in pages:
        assert f"Case {report.tracking_id}" in page
        for member in (report, arm, arc):
            assert member.tracking_id in page
        assert "ARM: stack overflow" in page and "ARC: stack overflow" in page
        assert "Finding NCC-ZEP-001: stack overflow on ARM." in page  # the one thread
    current = pages[1].split('<tr aria-current="page">', 1)[1].split("</tr>", 1)[0]
    assert arm.tracking_id in current  # the row of the vulnerability the team came from


def test_the_vulnerability_page_links_to_its_case_page(signed_in, report):
    page = signed_in.get(f"/team/vulnerabilities/{report.tracking_id}").get_data(as_text=True)
    assert f'href="/team/cases/{report.tracking_id}"' in page


def test_splitting_from_the_case_page(signed_in, report):
    page = signed_in.get(f"/team/cases/{report.tracking_id}").get_data(as_text=True)
    answer = signed_in.post(
        f"/team/vulnerabilities/{report.tracking_id}/split",
        data={"split-titles": "ARM\nARC", "split-csrf_token": csrf_token(page)},
        follow_redirects=True,
    )
    assert answer.status_code == 200
    case_page = signed_in.get(f"/team/cases/{report.tracking_id}").get_data(as_text=True)
    assert "<td>ARM</td>" in case_page and "<td>ARC</td>" in case_page


def test_an_unknown_case_is_not_found_and_outsiders_are_sent_to_sign_in(client, db, report):
    assert client.get(f"/team/cases/{report.tracking_id}").status_code in (302, 401, 403)
    assert "Audit of the kernel" not in client.get(
        f"/team/cases/{report.tracking_id}", follow_redirects=True
    ).get_data(as_text=True)


def test_an_unknown_tracking_id_is_not_found(signed_in):
    assert signed_in.get("/team/cases/FW-1999-0001").status_code == 404
