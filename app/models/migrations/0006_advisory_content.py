"""What an advisory carries beyond its text: the patches attached to it (kept as uploaded, with
their sha256), a vulnerability's mitigation, and whether registrants may deploy before the lift."""
# ruff: noqa: F403, F405

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("vulnerability", "mitigation", TextField(default="")),
        migrator.add_column("vulnerability", "deploy_before_lift", BooleanField(default=True)),
        migrator.add_column("advisory", "attachments", TextField(default="[]")),
    )

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class Vulnerability(Model):
        class Meta:
            database = db
            table_name = "vulnerability"

    class Patch(Model):
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        filename = CharField()
        content_type = CharField(default="text/x-diff")
        content = BlobField()
        sha256 = CharField()
        size = IntegerField()
        removed = BooleanField(default=False)
        uploaded_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        uploaded_at = DateTimeField()

        class Meta:
            database = db
            table_name = "patch"

    db.create_tables([Patch])
