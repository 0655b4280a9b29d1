"""An advisory version is signed once: the signed entity every registrant's copy encrypts."""

from peewee import BlobField


def up(migrator, db):
    migrator.migrate(migrator.add_column("advisory", "signed_entity", BlobField(null=True)))
