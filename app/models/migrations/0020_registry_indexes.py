"""The registry at the size of a real one (#17): the admins' list filters and counts registrants
by status, and a registrant's page reads the audit log about them by target (their address)."""


def up(migrator, db):
    migrator.migrate(
        migrator.add_index("registrant", ("status",), False),
        migrator.add_index("audit_event", ("target",), False),
    )
