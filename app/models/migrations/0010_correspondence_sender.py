"""Who an inbound message says it is from (its From address), kept with each correspondence
entry, and the key a reply offered for the team to confirm as the reporter's."""

from peewee import CharField, ForeignKeyField, Model


def up(migrator, db):
    class PublicKey(Model):
        class Meta:
            database = db
            table_name = "public_key"

    migrator.migrate(
        migrator.add_column("correspondence", "sender", CharField(default="")),
        migrator.add_column(
            "correspondence",
            "offered_key_id",
            ForeignKeyField(PublicKey, field=PublicKey.id, null=True, on_delete="SET NULL"),
        ),
    )
