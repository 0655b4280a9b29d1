"""Withdrawal (#18): a published vulnerability that proved not to be one keeps its documents,
marked withdrawn at an instant with the team's reason (NULL and "": not withdrawn)."""

from peewee import DateTimeField, TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("vulnerability", "withdrawn_at", DateTimeField(null=True)),
        migrator.add_column("vulnerability", "withdrawn_reason", TextField(default="")),
    )
