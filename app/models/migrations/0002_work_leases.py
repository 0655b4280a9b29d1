"""Leases on work rows: a worker claims a message or delivery until a time, so that the
reconciler re-queues only work that is due and not in flight (a killed worker's lease lapses)."""

from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("inbound_message", "claimed_until", DateTimeField(null=True)),
        migrator.add_column("delivery", "claimed_until", DateTimeField(null=True)),
    )
