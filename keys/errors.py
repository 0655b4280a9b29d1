"""The errors of the keys library. Each message is one line for a person. keys/ knows nothing
of the application: app/ reports these as it reports its own (app.core.errors.REPORTED)."""


class KeysError(Exception):
    """Base of every error keys/ reports to a person instead of a traceback."""


class KeySetupError(KeysError):
    """Something the operator must fix: GnuPG missing, an unusable GnuPG home, no service key
    yet, a key file that cannot become the service key. The message says how to fix it."""


class KeyringError(KeysError):
    """GnuPG refused an operation; the message is one line saying what it reported."""


class CertificateError(KeysError):
    """The data is not one usable public certificate; the message says why, in one line."""
