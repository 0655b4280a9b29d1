"""The team workspace: who is away from triage duty and when each member was last given a
report (round-robin), reminders already sent per vulnerability, where a CVE id came from, and
the audit log made append-only in the database itself."""

from peewee import BooleanField, CharField, DateTimeField, TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("user", "away", BooleanField(default=False)),
        migrator.add_column("user", "last_assigned_at", DateTimeField(null=True)),
        migrator.add_column("vulnerability", "reminders_sent", TextField(default="{}")),
        migrator.add_column("cve_id", "source", CharField(default="block")),
    )
    if db.__class__.__name__.startswith("Sqlite"):
        for event in ("UPDATE", "DELETE"):
            db.execute_sql(
                f"CREATE TRIGGER audit_event_no_{event.lower()} BEFORE {event} ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END"
            )
    else:
        db.execute_sql(
            "CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit events are append-only'; END $$ LANGUAGE plpgsql"
        )
        db.execute_sql(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
