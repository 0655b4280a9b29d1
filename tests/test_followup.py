"""Follow-up links (#16): tokens of 256 bits, only their hash stored, one live link per case,
reissue revokes, and a web report's tracking id is never given twice."""

from datetime import datetime

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.models import ALL_MODELS, FollowUpLink, InboundMessage
from app.reports import followup
from app.vulns import lifecycle

pytestmark = pytest.mark.db

SECRET = "s" * 48
CLI = lifecycle.Actor(None, "cli:test")


def test_a_link_opens_its_case_and_nothing_stored_makes_a_working_link(db, clock):
    link, token = followup.issue("SEC-2026-0001", SECRET, clock.at)
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert followup.find(token).id == link.id
    stored = FollowUpLink.get_by_id(link.id)
    assert token not in (stored.nonce, stored.token_hash)
    assert followup.token_of(stored, SECRET) == token  # recomputed to mail it
    assert followup.token_of(stored, "another secret") != token
    assert (
        followup.url_of(token, "https://desk.example/") == f"https://desk.example/follow-up/{token}"
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-1],
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "",
        lambda t: "x" * 500,
    ],
)
def test_altered_or_unknown_tokens_find_nothing(db, clock, change):
    _, token = followup.issue("SEC-2026-0001", SECRET, clock.at)
    assert followup.find(change(token)) is None


def test_reissuing_revokes_the_old_link(db, clock):
    old_link, old = followup.issue("SEC-2026-0001", SECRET, clock.at)
    new_link, new = followup.issue("SEC-2026-0001", SECRET, clock.move(days=1))
    assert followup.find(old) is None and followup.find(new).id == new_link.id
    assert followup.live("SEC-2026-0001").id == new_link.id
    assert followup.revoke("SEC-2026-0001", clock.at) == 1
    assert followup.find(new) is None and followup.live("SEC-2026-0001") is None
    assert FollowUpLink.get_by_id(old_link.id).revoked_at is not None


def test_a_web_reports_reserved_tracking_id_is_not_given_again(db, clock, settings):
    InboundMessage.create(
        raw=b"-",
        sha256="0",
        received_at=clock.at,
        channel="web-report",
        tracking_id=f"{settings.tracking_prefix}-2026-0005",
    )
    v = lifecycle.create("By mail", "", CLI, clock.at, settings)
    assert v.tracking_id == f"{settings.tracking_prefix}-2026-0006"


def test_the_schema_with_todays_rows_migrates_to_follow_up_links(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0016_advisory_bundle")
    at = datetime(2026, 5, 1, 9, 0)
    with database.connection_context():
        database.execute_sql(
            "INSERT INTO inbound_message (raw, sha256, envelope_from, envelope_to, received_at,"
            " state, attempts, error) VALUES (%s)".replace("%s", ", ".join([database.param] * 8)),
            (b"raw", "abc", "r@example.org", "security@localhost", at, "processed", 1, ""),
        )
    assert "0017_follow_up" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        row = InboundMessage.get()
        assert (row.channel, row.tracking_id, bytes(row.raw)) == ("mail", None, b"raw")
        assert FollowUpLink.select().count() == 0
