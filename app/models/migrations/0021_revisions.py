"""Records kept current (#18): each change to a published vulnerability's public fields is a
revision, which the exports number and date."""

from peewee import DateTimeField, ForeignKeyField, Model, TextField


def up(migrator, db):
    class Vulnerability(Model):
        class Meta:
            database = db
            table_name = "vulnerability"

    class Revision(Model):
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        at = DateTimeField()
        summary = TextField()

        class Meta:
            database = db
            table_name = "revision"
            indexes = ((("vulnerability", "at"), False),)

    db.create_tables([Revision])
