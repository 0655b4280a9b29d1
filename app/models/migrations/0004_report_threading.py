"""What processing derives from a stored message, for recognising a retried delivery (same
Message-ID, same body), and whether a piece of correspondence arrived encrypted."""

from peewee import BooleanField, CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("inbound_message", "message_id_header", CharField(null=True)),
        migrator.add_column("inbound_message", "body_sha256", CharField(null=True)),
        migrator.add_index("inbound_message", ("message_id_header",), False),
        migrator.add_column("correspondence", "encrypted", BooleanField(default=False)),
    )
