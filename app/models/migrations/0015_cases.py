"""Cases (#15): the vulnerability a vulnerability was split from (NULL: a case of its own, as
every existing row is), the one it duplicates (NULL: none), and the reporter's finding labels,
many-to-many with vulnerabilities."""

from peewee import CharField, ForeignKeyField, Model


def up(migrator, db):
    class Vulnerability(Model):
        class Meta:
            database = db
            table_name = "vulnerability"

    class Finding(Model):
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        label = CharField(max_length=100, index=True)

        class Meta:
            database = db
            table_name = "finding"
            indexes = ((("vulnerability", "label"), True),)

    migrator.migrate(
        migrator.add_column(
            "vulnerability",
            "case_root_id",
            ForeignKeyField(Vulnerability, field=Vulnerability.id, null=True, on_delete="SET NULL"),
        ),
        migrator.add_column(
            "vulnerability",
            "duplicate_of_id",
            ForeignKeyField(Vulnerability, field=Vulnerability.id, null=True, on_delete="SET NULL"),
        ),
    )
    db.create_tables([Finding])
