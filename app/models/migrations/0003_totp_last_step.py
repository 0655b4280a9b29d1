"""The last accepted authenticator time step per account, so a code cannot be used twice."""

from peewee import IntegerField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("user", "totp_last_step", IntegerField(null=True)),
    )
