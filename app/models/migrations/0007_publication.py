"""The lift's follow-up: one row per published vulnerability, until its exports, page and CVE
record are confirmed."""
# ruff: noqa: F403, F405

from peewee import *


def up(migrator, db):
    class Vulnerability(Model):
        class Meta:
            database = db
            table_name = "vulnerability"

    class Publication(Model):
        vulnerability = ForeignKeyField(Vulnerability, unique=True, on_delete="CASCADE")
        lifted_at = DateTimeField()
        state = CharField(default="pending")
        steps = TextField(default="{}")
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField(null=True, index=True)
        completed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "publication"

    db.create_tables([Publication])
