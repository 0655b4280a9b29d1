"""Reporters' attachments are kept with their correspondence entry (decrypted, as the reporter
meant them), and each inbound entry says which of its parts arrived without encryption."""
# ruff: noqa: F403, F405

from peewee import *


def up(migrator, db):
    class Correspondence(Model):
        class Meta:
            database = db
            table_name = "correspondence"

    class ReceivedFile(Model):
        correspondence = ForeignKeyField(Correspondence, on_delete="CASCADE")
        name = CharField(max_length=255)
        content_type = CharField(default="application/octet-stream")
        size = IntegerField()
        sha256 = CharField(index=True)
        content = BlobField(null=True)
        encrypted = BooleanField(default=False)
        dropped = TextField(default="")

        class Meta:
            database = db
            table_name = "received_file"

    migrator.migrate(
        migrator.add_column("correspondence", "unencrypted_parts", TextField(default="[]"))
    )
    db.create_tables([ReceivedFile])
