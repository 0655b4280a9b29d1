"""OSV source (#18): the commit that introduced a vulnerability, when the team knows it (its
OSV record's GIT range starts there; empty: at the start of history, "0")."""

from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("vulnerability", "introduced_commit", CharField(default="")),
    )
