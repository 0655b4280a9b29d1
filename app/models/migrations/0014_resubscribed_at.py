"""When a registrant last asked for alerts again: unsubscribe links of alerts queued before
then stop working, so a link someone else saw cannot stop their alerts a second time."""

from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("registrant", "resubscribed_at", DateTimeField(null=True)),
    )
