"""Product makers' answers (#17): the statuses, who may answer, replacement and history, the
matrix with its counts, filter, CSV and JSON, and the migration that made the table."""

import csv
import io
from datetime import datetime, timedelta

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.errors import Refused
from app.models import ALL_MODELS, Answer, AuditEvent, Registrant
from app.registry import alerts, answers, vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc

CLI = lifecycle.Actor(None, "test")

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@a{n}.example", f"Maker {n}") for n in range(3)]


@pytest.fixture
def registrants(db, clock, makers):
    return [
        vetting.add_by_admin(m.address, f"Maker {n}", m.cert, None, "t", clock.at, approve=True)
        for n, m in enumerate(makers)
    ]


@pytest.fixture
def alerted(db, clock, settings, registrants):
    v = lifecycle.create("Overflow in the parser", "Details.", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    alerts.send(v, None, "t", clock.at, settings)
    return v


def given(status, justification=None, statement="", consent=False):
    return answers.check(status, justification, statement, consent)


def test_statuses_and_justifications_follow_vex_and_refusals_say_how_to_fix():
    assert given("Not_Affected ", "vulnerable_code_not_present").status == "not_affected"
    assert given("fixed").justification is None
    with pytest.raises(Refused, match="needs a justification: one of component_not_present"):
        given("not_affected")
    with pytest.raises(Refused, match="with 'not_affected' only"):
        given("affected", "component_not_present")
    with pytest.raises(Refused, match="Unknown status 'maybe': write one of affected"):
        given("maybe")
    with pytest.raises(Refused, match="Unknown status 'no_answer'"):
        given("no_answer")  # nobody answers "no answer"
    with pytest.raises(Refused, match="Unknown justification 'because'"):
        given("not_affected", "because")
    with pytest.raises(Refused, match="keep it under"):
        given("affected", None, "x" * (answers.MAX_STATEMENT + 1))


def test_silence_is_no_answer_never_not_affected(alerted, registrants):
    rows = answers.matrix([alerted])
    assert [r.status for r in rows] == ["no_answer"] * 3
    assert answers.counts(rows)["not_affected"] == 0
    assert answers.counts(rows)["no_answer"] == 3


def test_a_later_answer_replaces_the_earlier_and_the_history_and_audit_keep_both(
    alerted, registrants, clock
):
    maker = registrants[0]
    answers.record(maker, alerted, given("under_investigation"), via="mail", at=clock.at)
    later = clock.at + timedelta(days=2)
    answers.record(
        maker,
        alerted,
        given("not_affected", "component_not_present", "We ship no Bluetooth."),
        via="web",
        at=later,
        actor=maker.user,
    )
    current = answers.current(alerted)[maker.id]
    assert (current.status, current.justification, current.via) == (
        "not_affected",
        "component_not_present",
        "web",
    )
    assert [a.status for a in answers.history(maker, alerted)] == [
        "under_investigation",
        "not_affected",
    ]
    events = list(
        AuditEvent.select().where(AuditEvent.action == "answer.recorded").order_by(AuditEvent.id)
    )
    assert [e.target for e in events] == [alerted.tracking_id] * 2
    assert '"replaces": "under_investigation"' in events[1].details
    assert events[1].actor_label == maker.user.email
    row = next(r for r in answers.matrix([alerted]) if r.registrant.id == maker.id)
    assert (row.status, row.answers, row.at) == ("not_affected", 2, later)


def test_only_approved_alerted_registrants_may_answer(alerted, registrants, clock, settings, db):
    other = lifecycle.create("Never alerted", "", CLI, clock.at, settings)
    with pytest.raises(Refused, match="not open to answers"):
        answers.record(registrants[0], other, given("affected"), via="web", at=clock.at)
    vetting.decide(registrants[1], "suspended", None, "t", clock.at)
    suspended = Registrant.get_by_id(registrants[1].id)
    with pytest.raises(Refused, match="not open to answers"):
        answers.record(suspended, alerted, given("affected"), via="web", at=clock.at)
    assert Answer.select().count() == 0


def test_the_matrix_filters_counts_and_exports_csv_and_json(alerted, registrants, clock):
    answers.record(
        registrants[0], alerted, given("affected", None, "=cmd|x"), via="web", at=clock.at
    )
    answers.record(registrants[2], alerted, given("fixed"), via="mail", at=clock.at)
    rows = answers.matrix([alerted])
    assert answers.counts(rows) == {
        "affected": 1,
        "not_affected": 0,
        "fixed": 1,
        "under_investigation": 0,
        "no_answer": 1,
    }
    silent = answers.matrix([alerted], status="no_answer")
    assert [r.registrant.id for r in silent] == [registrants[1].id]
    with pytest.raises(Refused, match="Unknown status"):
        answers.matrix([alerted], status="nope")
    table = list(csv.DictReader(io.StringIO(answers.as_csv(rows))))
    assert [t["email"] for t in table] == [
        "psirt@a0.example",
        "psirt@a1.example",
        "psirt@a2.example",
    ]
    assert table[0]["statement"] == "'=cmd|x"  # never a formula in a spreadsheet
    assert table[0]["status"] == "affected" and table[0]["via"] == "web"
    assert table[1]["status"] == "no_answer" and table[1]["at"] == ""
    assert table[2]["at"] == clock.at.strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = answers.as_json(rows)
    assert set(entries[0]) == {"email", "org", "status", "justification", "statement", "at", "via"}
    assert entries[1]["status"] == "no_answer" and entries[1]["via"] is None


def test_the_schema_before_answers_migrates(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0017_follow_up")
    assert "0018_answers" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        assert Answer.select().count() == 0


def test_an_answer_keeps_its_time(alerted, registrants):
    at = datetime(2026, 7, 1, 12, 0, tzinfo=alerted.reported_at.tzinfo)
    answers.record(registrants[0], alerted, given("fixed"), via="web", at=at)
    assert answers.current_of(registrants[0], alerted).at == at
