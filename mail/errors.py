"""The errors of the mail library. mail/ knows nothing of the application: app/ reports these
as it reports its own (app.core.errors.REPORTED)."""


class MailError(Exception):
    """Base of every error mail/ reports to a person instead of a traceback."""
