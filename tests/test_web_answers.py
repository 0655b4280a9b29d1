"""Answers on the web (#17): a registrant answers each vulnerability of an advisory on its page
(signed in, CSRF), a later answer replaces the earlier one with the history shown; the team reads
the matrix per vulnerability and per case, filters it, and downloads it as CSV (audited)."""

import csv
import io
import re

import pytest

from app.accounts import team
from app.core import passwords
from app.models import Answer, AuditEvent, Delivery, Registrant, User
from app.registry import alerts, answers, vetting
from app.vulns import lifecycle, split
from tests import mailcorpus as mc
from tests.conftest import PASSWORD as TEAM_PASSWORD
from tests.conftest import csrf_token

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
PASSWORD = "registrant password 1"
PRIVATE = "We patched the mesh stack in build 7.3.1 on 2026-11-20."


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@m{n}.example", f"Maker {n}") for n in range(3)]


@pytest.fixture
def world(db, clock, settings, makers):
    """Three approved registrants alerted about a case of two (one bundle), and a third
    vulnerability nobody was alerted about."""
    registrants = [
        vetting.add_by_admin(m.address, f"Maker {n} Ltd", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers)
    ]
    User.update(password_hash=passwords.hash_password(PASSWORD)).execute()
    root = lifecycle.create("Overflow in the mesh parser", "", CLI, clock.at, settings)
    [second] = split.split(root, ["Leak in the mesh beacon"], CLI, clock.at, settings)
    case = [lifecycle.set_status(v, "accepted", CLI, clock.at) for v in (root, second)]
    versions = alerts.send_many(case, None, "t", clock.at, settings)
    quiet = lifecycle.set_status(
        lifecycle.create("Never alerted", "", CLI, clock.at, settings), "accepted", CLI, clock.at
    )
    return {
        "registrants": [Registrant.get_by_id(r.id) for r in registrants],
        "case": case,
        "versions": versions,
        "quiet": quiet,
    }


@pytest.fixture
def member(db, clock):
    return team.create_team_account("bob@example.org", TEAM_PASSWORD, "team", clock.at, by="t")


def _page(client, advisory_id):
    return client.get(f"/registry/advisories/{advisory_id}").get_data(as_text=True)


def _answer(client, advisory_id, tracking_id, token=None, **fields):
    if token is None:
        token = csrf_token(_page(client, advisory_id))
    return client.post(
        f"/registry/advisories/{advisory_id}/answers/{tracking_id}",
        data={"csrf_token": token, **fields},
    )


def _flashes(html: str) -> list[str]:
    shown = (
        html.split('<div class="messages"', 1)[1].split("</div>", 1)[0]
        if "messages" in html
        else ""
    )
    return re.findall(r'<p class="message (?:success|error)">(.*?)</p>', shown, re.S)


def test_the_advisory_page_has_one_form_per_vulnerability_of_its_bundle(client, auth, world):
    maker = world["registrants"][0]
    auth.login(maker.user.email, PASSWORD)
    first, second = world["versions"]
    page = _page(client, second.id)
    for v in world["case"]:
        assert f'action="/registry/advisories/{second.id}/answers/{v.tracking_id}"' in page
    assert page.count('name="consent" value="yes"') == 2
    assert "checked" not in page.split('name="consent"')[1].split(">")[0]  # unticked at first
    assert world["quiet"].tracking_id not in page


def test_a_registrant_answers_and_a_later_answer_replaces_it_with_the_history_kept(
    client, auth, world, clock
):
    maker = world["registrants"][0]
    root = world["case"][0]
    first = world["versions"][0]
    auth.login(maker.user.email, PASSWORD)
    response = _answer(
        client,
        first.id,
        root.tracking_id,
        status="not_affected",
        justification="component_not_present",
        statement="We ship no mesh.",
        consent="yes",
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"#answer-{root.tracking_id}")
    [flash] = _flashes(client.get(response.headers["Location"]).get_data(as_text=True))
    assert flash.startswith(f"Recorded: {root.tracking_id}")
    assert "Not affected (the component is not present)" in flash
    assert "The security team sees it now" in flash
    assert "public page" in flash and "once the embargo lifts" in flash

    clock.move(days=1)
    response = _answer(client, first.id, root.tracking_id, status="fixed", statement=PRIVATE)
    [flash] = _flashes(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Fixed (deployed)" in flash and "nothing of it is published" in flash

    current = answers.current_of(maker, root)
    assert (current.status, current.via, current.public_consent) == ("fixed", "web", False)
    assert current.advisory_id == first.id
    assert [a.status for a in answers.history(maker, root)] == ["not_affected", "fixed"]
    page = _page(client, first.id)
    history = page.split("Your answers about " + root.tracking_id)[1].split("</table>")[0]
    assert history.index("Not affected") < history.index("Fixed (deployed)")
    assert "We ship no mesh." in history and PRIVATE in history
    assert "Your current answer: <strong>Fixed (deployed)</strong>" in page
    listing = client.get("/registry/advisories/").get_data(as_text=True)
    assert "Fixed (deployed) (<time" in listing
    assert listing.count("No answer: answer on the advisory") == 1  # the other of the bundle
    events = AuditEvent.select().where(AuditEvent.action == "answer.recorded")
    assert [e.actor_id for e in events] == [maker.user_id] * 2


def test_not_affected_without_a_justification_comes_back_with_one_line_and_nothing_is_kept(
    client, auth, world
):
    maker = world["registrants"][0]
    root = world["case"][0]
    auth.login(maker.user.email, PASSWORD)
    response = _answer(
        client, world["versions"][0].id, root.tracking_id, status="not_affected", statement="Kept"
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "&#39;not_affected&#39; needs a justification: one of component_not_present" in page
    assert ">Kept</textarea>" in page  # what they wrote is still there
    assert 'value="not_affected" id="answer-' + root.tracking_id + '-not_affected" checked' in page
    assert _answer(client, world["versions"][0].id, root.tracking_id).status_code == 400
    assert Answer.select().count() == 0


def test_a_justification_left_behind_another_status_is_dropped_not_refused(client, auth, world):
    maker = world["registrants"][0]
    root = world["case"][0]
    auth.login(maker.user.email, PASSWORD)
    response = _answer(
        client,
        world["versions"][0].id,
        root.tracking_id,
        status="affected",
        justification="component_not_present",
    )
    assert response.status_code == 302
    assert answers.current_of(maker, root).justification is None


def test_answering_needs_the_csrf_token(client, auth, world):
    maker = world["registrants"][0]
    auth.login(maker.user.email, PASSWORD)
    response = _answer(
        client, world["versions"][0].id, world["case"][0].tracking_id, token="", status="affected"
    )
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert Answer.select().count() == 0


def test_suspended_and_no_longer_alerted_registrants_are_refused_and_nothing_is_recorded(
    client, auth, world
):
    maker = world["registrants"][0]
    root = world["case"][0]
    first = world["versions"][0]
    auth.login(maker.user.email, PASSWORD)
    token = csrf_token(_page(client, first.id))
    Registrant.update(unsubscribed=True).where(Registrant.id == maker.id).execute()
    assert "You cannot answer about " + root.tracking_id in _page(client, first.id)
    response = _answer(client, first.id, root.tracking_id, token=token, status="affected")
    [flash] = _flashes(client.get(response.headers["Location"]).get_data(as_text=True))
    assert flash.startswith("Nothing was recorded:") and "not open to answers" in flash

    Registrant.update(unsubscribed=False, status="suspended").where(
        Registrant.id == maker.id
    ).execute()
    response = _answer(client, first.id, root.tracking_id, token=token, status="affected")
    assert response.headers["Location"].endswith("/registry/advisories/")
    [flash] = _flashes(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Nothing was recorded: your registration is suspended" in flash
    assert Answer.select().count() == 0


def test_a_registrant_never_sees_another_registrants_answers(client, auth, world, clock):
    one, other = world["registrants"][:2]
    root = world["case"][0]
    first = world["versions"][0]
    answers.record(
        other,
        root,
        answers.check("affected", None, PRIVATE, True),
        via="web",
        at=clock.at,
        actor=other.user,
    )
    auth.login(one.user.email, PASSWORD)
    pages = [_page(client, first.id), _page(client, world["versions"][1].id)]
    pages.append(client.get("/registry/advisories/").get_data(as_text=True))
    for page in pages:
        assert PRIVATE not in page and other.organisation not in page
        assert "Affected</strong>" not in page
    # Nor can they answer what they were never alerted about, or through another's advisory.
    quiet = world["quiet"]
    assert _answer(client, first.id, quiet.tracking_id, status="affected").status_code == 404
    assert client.get("/team/vulnerabilities/" + root.tracking_id + "/answers").status_code == 403
    assert client.get(f"/team/cases/{root.tracking_id}/answers.csv").status_code == 403


def _given(world, clock):
    """Maker 0 not affected (with consent), maker 1 affected with a statement, maker 2 silent
    (and reminded) about the case's root; maker 1 fixed about the second."""
    r0, r1, _ = world["registrants"]
    root, second = world["case"]
    answers.record(
        r0,
        root,
        answers.check("not_affected", "vulnerable_code_not_present", "", True),
        via="web",
        at=clock.at,
    )
    answers.record(r1, root, answers.check("under_investigation", None), via="mail", at=clock.at)
    answers.record(r1, root, answers.check("affected", None, PRIVATE), via="web", at=clock.at)
    answers.record(r1, second, answers.check("fixed", None), via="web", at=clock.at)
    Delivery.create(
        kind=answers.NUDGE_KIND,
        vulnerability=root,
        user=world["registrants"][2].user,
        recipient=world["registrants"][2].user.email,
        created_at=clock.move(days=3),
    )


def test_the_team_matrix_counts_filters_and_shows_the_statements(
    client, auth, world, clock, member
):
    _given(world, clock)
    root = world["case"][0]
    auth.login("bob@example.org", TEAM_PASSWORD)
    page = client.get(f"/team/vulnerabilities/{root.tracking_id}/answers").get_data(as_text=True)
    assert "Affected (1)" in page and "Not affected (1)" in page and "No answer (1)" in page
    assert "Fixed (deployed) (0)" in page
    matrix = page.split('class="answer-matrix"')[1]
    assert matrix.count("<tr class=") == 3
    assert PRIVATE in matrix and "The vulnerable code is not present" in matrix
    row = matrix.split("Maker 1 Ltd")[1].split("</tr>")[0]
    assert "<td>web</td>" in row and "<td>2</td>" in row  # two answers, the current by web

    silent = client.get(f"/team/vulnerabilities/{root.tracking_id}/answers?status=no_answer")
    matrix = silent.get_data(as_text=True).split('class="answer-matrix"')[1]
    assert "Who stayed silent" in matrix
    assert "Maker 2 Ltd" in matrix and "Maker 0 Ltd" not in matrix and "Maker 1 Ltd" not in matrix
    assert '<time datetime="2026-11-28T12:00:00Z">' in matrix  # when they were reminded

    bad = client.get(f"/team/vulnerabilities/{root.tracking_id}/answers?status=maybe")
    assert bad.status_code == 400
    assert "Unknown status &#39;maybe&#39;: filter by one of affected" in bad.get_data(as_text=True)

    vulnerability_page = client.get(f"/team/vulnerabilities/{root.tracking_id}").get_data(
        as_text=True
    )
    assert "Answers: 1 affected, 1 not affected, 1 no answer" in vulnerability_page
    assert f'href="/team/vulnerabilities/{root.tracking_id}/answers"' in vulnerability_page


def test_the_case_matrix_covers_every_vulnerability_of_the_case(client, auth, world, clock, member):
    _given(world, clock)
    root, second = world["case"]
    auth.login("bob@example.org", TEAM_PASSWORD)
    page = client.get(f"/team/cases/{second.tracking_id}/answers").get_data(as_text=True)
    matrix = page.split('class="answer-matrix"')[1]
    assert matrix.count("<tr class=") == 6  # 3 registrants × 2 vulnerabilities
    assert matrix.count(f"<td>{root.tracking_id}</td>") == 3
    assert matrix.count(f"<td>{second.tracking_id}</td>") == 3
    assert world["quiet"].tracking_id not in page
    assert "No answer (3)" in page  # 1 about the root, 2 about the second
    case_page = client.get(f"/team/cases/{root.tracking_id}").get_data(as_text=True)
    assert "Answers: 1 affected, 1 not affected, 1 fixed (deployed), 3 no answer" in case_page
    assert f'href="/team/cases/{root.tracking_id}/answers"' in case_page


def test_the_csv_has_the_rows_as_an_attachment_and_the_download_is_audited(
    client, auth, world, clock, member
):
    _given(world, clock)
    root, second = world["case"]
    auth.login("bob@example.org", TEAM_PASSWORD)
    response = client.get(f"/team/cases/{root.tracking_id}/answers.csv?status=no_answer")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith(f'attachment; filename="forewarn-answers-{root.tracking_id}-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["vulnerability"], r["organisation"]) for r in rows] == [
        (root.tracking_id, "Maker 2 Ltd"),
        (second.tracking_id, "Maker 0 Ltd"),
        (second.tracking_id, "Maker 2 Ltd"),
    ]
    assert {r["status"] for r in rows} == {"no_answer"}
    full = client.get(f"/team/vulnerabilities/{root.tracking_id}/answers.csv")
    rows = {r["organisation"]: r for r in csv.DictReader(io.StringIO(full.get_data(as_text=True)))}
    assert rows["Maker 1 Ltd"]["statement"] == PRIVATE
    assert (rows["Maker 0 Ltd"]["justification"], rows["Maker 0 Ltd"]["public_consent"]) == (
        "vulnerable_code_not_present",
        "yes",
    )
    events = list(AuditEvent.select().where(AuditEvent.action == "answers.export"))
    assert [(e.target, e.actor_id) for e in events] == [(root.tracking_id, member.user.id)] * 2
    assert '"rows": 3' in events[0].details and '"status": "no_answer"' in events[0].details
    assert client.get(f"/team/cases/{root.tracking_id}/answers.csv?status=x").status_code == 400


def test_the_matrix_is_for_the_team_alone(client, auth, world):
    root = world["case"][0]
    for url in (
        f"/team/vulnerabilities/{root.tracking_id}/answers",
        f"/team/cases/{root.tracking_id}/answers.csv",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    auth.login(world["registrants"][0].user.email, PASSWORD)
    for url in (
        f"/team/vulnerabilities/{root.tracking_id}/answers",
        f"/team/vulnerabilities/{root.tracking_id}/answers.csv",
        f"/team/cases/{root.tracking_id}/answers",
    ):
        assert client.get(url).status_code == 403
    assert not AuditEvent.select().where(AuditEvent.action == "answers.export").exists()
