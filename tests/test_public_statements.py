"""Product makers' statements on the public page (#17): after the lift, and with consent alone.

Before the lift the placeholder stays exactly as it was; after it, the current answer of each
registrant who agreed shows (status and justification in public words, the statement as
plain text); without consent, or once withdrawn by a later answer, or once the registrant is
suspended, nothing of it is public."""

from datetime import timedelta

import pytest

from app.disclosure import lift
from app.models import Registrant
from app.registry import alerts, answers, vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
SAID = "canary-consented-1: our routers never enable the parser."
WITHHELD = "canary-withheld-2: we are affected until 4.2."


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@p{n}.example", f"Maker {n}") for n in range(3)]


@pytest.fixture
def registrants(db, clock, makers):
    names = ("Open Routers Ltd", "canary-quietorg-3 GmbH", "Zeta Devices")
    return [
        vetting.add_by_admin(m.address, name, m.cert, None, "t", clock.at, approve=True)
        for m, name in zip(makers, names, strict=True)
    ]


@pytest.fixture
def v(db, clock, settings, registrants):
    v = lifecycle.create(
        "Overflow in the parser", "Details.", CLI, clock.at, settings, clock.at + timedelta(days=30)
    )
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    alerts.send(v, None, "t", clock.at, settings)
    return v


def answer(registrant, v, at, status, justification=None, statement="", consent=False):
    given = answers.check(status, justification, statement, consent)
    return answers.record(registrant, v, given, via="web", at=at)


def lifted(v, clock, settings):
    clock.move(seconds=(v.embargo_until - clock.at).total_seconds())
    assert lift.lift(v.id, clock.at, settings) == "lifted"
    return v.__class__.get_by_id(v.id)


def page(client, v) -> str:
    response = client.get(f"/vulnerabilities/{v.tracking_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_consented_statement_shows_after_the_lift_and_the_placeholder_never_changes(
    v, registrants, clock, settings, client
):
    placeholder = page(client, v)
    answer(registrants[0], v, clock.at, "not_affected", "component_not_present", SAID, True)
    answer(registrants[1], v, clock.at, "affected", None, WITHHELD, False)
    assert answers.public_statements(v, clock.at) == ()
    assert page(client, v) == placeholder  # exactly as it was: nothing of the answers

    v = lifted(v, clock, settings)
    shown = page(client, v)
    assert '<h2 id="statements-heading">Product makers\' statements</h2>' in shown
    assert "Open Routers Ltd" in shown and SAID in shown
    assert "<strong>Not affected</strong>: The component is not present" in shown
    assert clock.at.date().isoformat() in shown
    # Without consent: neither the organisation, nor its status, nor its statement.
    assert "canary-quietorg-3" not in shown and "canary-withheld-2" not in shown
    assert "<strong>Affected</strong>" not in shown
    # Who never answered is not listed either, and "no answer" is never a public status.
    assert "Zeta Devices" not in shown and "No answer" not in shown


def test_only_consented_current_answers_of_approved_registrants_are_public(
    v, registrants, clock, settings
):
    answer(registrants[0], v, clock.at, "under_investigation", None, "looking", True)
    answer(registrants[1], v, clock.at, "fixed", None, "deployed everywhere", True)
    answer(registrants[2], v, clock.at, "affected", None, WITHHELD, False)
    v = lifted(v, clock, settings)
    public = answers.public_statements(v, clock.at)
    assert [(s.organisation, s.status, s.justification, s.statement) for s in public] == [
        ("canary-quietorg-3 GmbH", "Fixed (deployed)", None, "deployed everywhere"),
        ("Open Routers Ltd", "Under investigation", None, "looking"),
    ]
    vetting.decide(registrants[1], "suspended", None, "t", clock.at)  # withdrawn with them
    assert [s.organisation for s in answers.public_statements(v, clock.at)] == ["Open Routers Ltd"]
    vetting.decide(Registrant.get_by_id(registrants[1].id), "approved", None, "t", clock.at)
    assert len(answers.public_statements(v, clock.at)) == 2


def test_a_later_answer_without_consent_withdraws_the_earlier_statement(
    v, registrants, clock, settings, client
):
    answer(registrants[0], v, clock.at, "not_affected", "component_not_present", SAID, True)
    v = lifted(v, clock, settings)
    assert SAID in page(client, v)
    later = clock.move(hours=1)
    answer(registrants[0], v, later, "affected", None, WITHHELD, False)
    shown = page(client, v)
    assert "canary-consented-1" not in shown and "canary-withheld-2" not in shown
    assert "Open Routers Ltd" not in shown and "Product makers" not in shown
    # And a later consented answer replaces the earlier one: only the current one shows.
    answer(registrants[0], v, clock.move(hours=1), "fixed", None, "Fixed in 4.2.", True)
    shown = page(client, v)
    assert "Fixed in 4.2." in shown and "canary-" not in shown


def test_statements_are_plain_text_escaped_never_markup(v, registrants, clock, settings, client):
    hostile = '<script>alert("x")</script> **bold** [link](https://evil.example)\nsecond line'
    answer(registrants[0], v, clock.at, "affected", None, hostile, True)
    v = lifted(v, clock, settings)
    shown = page(client, v)
    assert "<script>alert" not in shown
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; **bold** [link](https://evil.example)"
        in (shown)
    )
    assert 'href="https://evil.example"' not in shown and "<strong>bold</strong>" not in shown
    assert "**bold** [link](https://evil.example)\nsecond line</p>" in shown


def test_the_page_rendered_before_shows_a_statement_given_after(
    v, registrants, clock, settings, client
):
    """Anonymous pages are kept rendered while what they show is the same: a new statement
    is part of what they show."""
    v = lifted(v, clock, settings)
    before = page(client, v)
    assert "Product makers" not in before
    answer(registrants[0], v, clock.move(minutes=5), "fixed", None, "Fixed in 4.2.", True)
    assert "Fixed in 4.2." in page(client, v)
