"""The database: migrations from empty and from an older schema, SQLite settings, UTC times."""

from datetime import UTC, datetime, timedelta, timezone

import peewee
import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.errors import OperatorError
from app.models import ALL_MODELS, AuditEvent, Delivery, InboundMessage


def test_fresh_database_gets_every_migration_and_matches_the_models(db):
    assert app_db.pending_migrations(db) == []
    assert not diff_models(db, list(ALL_MODELS)), "a model change has no migration"


def test_migrating_again_applies_nothing(db):
    assert app_db.migrate(db) == []


@pytest.mark.db
def test_older_schema_migrates_and_keeps_its_rows(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    assert app_db.migrate(database, target="0001_initial") == ["0001_initial"]
    with database.connection_context():
        columns = {c.name for c in database.get_columns("inbound_message")}
        assert "claimed_until" not in columns
        database.execute_sql(
            "INSERT INTO inbound_message (raw, sha256, envelope_from, envelope_to, received_at,"
            " state, attempts, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)".replace(
                "%s", database.param
            ),
            (
                b"Subject: old\r\n\r\nkept",
                "abc",
                "r@example.org",
                "security@localhost",
                datetime(2026, 1, 2, 3, 4, 5),
                "received",
                0,
                "",
            ),
        )

    later = sorted(p.stem for p in app_db.MIGRATIONS.glob("[0-9]*.py"))[1:]
    assert "0002_work_leases" in later
    assert app_db.pending_migrations(database) == later
    assert app_db.migrate(database) == later

    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        kept = InboundMessage.get(InboundMessage.sha256 == "abc")
        assert bytes(kept.raw) == b"Subject: old\r\n\r\nkept"
        assert kept.received_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert kept.claimed_until is None
        assert Delivery.select().count() == 0


def test_sqlite_runs_with_wal_foreign_keys_and_a_busy_timeout(db):
    if not isinstance(db, peewee.SqliteDatabase):
        pytest.skip("SQLite only")
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_only_workers_commit_without_waiting_for_the_disk(settings, db):
    """The intake and the portal sync every commit (a 250, a person's action); a worker's
    writes are redone from the rows before them if a crash loses the last ones."""
    sqlite = isinstance(db, peewee.SqliteDatabase)
    show = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    expected = {False: 2, True: 1} if sqlite else {False: "on", True: "off"}  # 2 full, 1 normal
    for worker in (False, True):
        database = app_db.open_database(settings.database_url, worker=worker)
        with database.connection_context():
            assert database.execute_sql(show).fetchone()[0] == expected[worker], worker
            assert Delivery.select().count() == 0  # the models work through it
    app_db.open_database(settings.database_url)  # bound back as the other tests expect


def test_foreign_keys_are_enforced(db):
    with pytest.raises(peewee.IntegrityError), db.atomic():
        AuditEvent.create(actor=424242, actor_label="nobody", action="x", at=datetime.now(UTC))


def test_times_are_stored_as_utc_and_come_back_aware(db):
    local = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    event = AuditEvent.create(actor_label="t", action="t", at=local)
    again = AuditEvent.get_by_id(event.id)
    assert again.at == local
    assert again.at.tzinfo is not None and again.at.utcoffset() == timedelta(0)
    assert again.at.hour == 12


def test_naive_times_are_refused(db):
    with pytest.raises(ValueError, match="naive"):
        AuditEvent.create(actor_label="t", action="t", at=datetime(2026, 3, 1, 14, 0))


def test_unreachable_database_is_one_line_naming_the_variable():
    with pytest.raises(OperatorError) as excinfo:
        app_db.open_database("postgresql://postgres:hunter2@127.0.0.1:1/none")
    message = str(excinfo.value)
    assert "FOREWARN_DATABASE_URL" in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_sqlite_in_a_missing_folder_says_how_to_fix_it(tmp_path):
    with pytest.raises(OperatorError, match="FOREWARN_DATABASE_URL"):
        app_db.open_database(f"sqlite:///{tmp_path}/missing/forewarn.db")


def test_audit_events_cannot_be_changed_or_deleted_even_in_sql(db):
    event = AuditEvent.create(actor_label="t", action="cve.assign", at=datetime.now(UTC))
    with pytest.raises(peewee.DatabaseError, match="append-only"), db.atomic():
        AuditEvent.update(action="nothing").where(AuditEvent.id == event.id).execute()
    with pytest.raises(peewee.DatabaseError, match="append-only"), db.atomic():
        AuditEvent.delete().where(AuditEvent.id == event.id).execute()
    assert AuditEvent.get_by_id(event.id).action == "cve.assign"
