"""Reporters without OpenPGP and a way back in (#16): how an inbound message came (by mail, as
every existing one did, or through the portal) with the tracking id a web report was given or
a web reply names, and the reporters' follow-up links."""

from peewee import CharField, DateTimeField, Model


def up(migrator, db):
    class FollowUpLink(Model):
        tracking_id = CharField(index=True)
        nonce = CharField()
        token_hash = CharField(unique=True)
        created_at = DateTimeField()
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "follow_up_link"

    db.create_tables([FollowUpLink])
    migrator.migrate(
        migrator.add_column("inbound_message", "channel", CharField(default="mail")),
        migrator.add_column("inbound_message", "tracking_id", CharField(null=True)),
        migrator.add_index("inbound_message", ("tracking_id",), False),
    )
