"""Targeting by product (#17): the package URLs a registrant declares besides the free text,
and, on an advisory version, the audience the team narrowed it to (NULL: everyone)."""

from peewee import TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("registrant", "package_urls", TextField(default="")),
        migrator.add_column("advisory", "audience", TextField(null=True)),
    )
