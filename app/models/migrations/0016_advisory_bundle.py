"""One advisory for several vulnerabilities (#15): the bundle a version went out in (NULL: sent
alone, as every existing version was), with the subject and text of the one mail."""

from peewee import CharField, DateTimeField, ForeignKeyField, Model, TextField


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class AdvisoryBundle(Model):
        subject = CharField()
        text = TextField()
        created_by = ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "advisory_bundle"

    db.create_tables([AdvisoryBundle])
    migrator.migrate(
        migrator.add_column(
            "advisory",
            "bundle_id",
            ForeignKeyField(
                AdvisoryBundle, field=AdvisoryBundle.id, null=True, on_delete="SET NULL"
            ),
        )
    )
