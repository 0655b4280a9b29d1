"""Product makers answer alerts (#17): one row per answer given, the newest of a registrant and
a vulnerability being the current one."""

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField


def up(migrator, db):
    class Registrant(Model):
        class Meta:
            database = db
            table_name = "registrant"

    class Vulnerability(Model):
        class Meta:
            database = db
            table_name = "vulnerability"

    class Advisory(Model):
        class Meta:
            database = db
            table_name = "advisory"

    class Answer(Model):
        registrant = ForeignKeyField(Registrant, on_delete="CASCADE")
        vulnerability = ForeignKeyField(Vulnerability, on_delete="CASCADE")
        advisory = ForeignKeyField(Advisory, null=True, on_delete="SET NULL")
        status = CharField()
        justification = CharField(null=True)
        statement = TextField(default="")
        public_consent = BooleanField(default=False)
        via = CharField()
        at = DateTimeField()

        class Meta:
            database = db
            table_name = "answer"
            indexes = ((("vulnerability", "registrant"), False),)

    db.create_tables([Answer])
