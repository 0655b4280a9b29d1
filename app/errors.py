"""The small set of exceptions the domain raises; each adapter maps them to its own answer."""


class ForewarnError(Exception):
    """Base of every error Forewarn reports to a person instead of a traceback."""


class OperatorError(ForewarnError):
    """Something the operator must fix (a setting, a missing tool, a busy port).

    The message is one line that says what is wrong and how to fix it.
    """


class ConfigError(OperatorError):
    """A setting from the environment is unusable."""


class NotFound(ForewarnError):
    """The thing asked for does not exist."""


class Refused(ForewarnError):
    """The rules forbid the action; the message says why and what to do instead."""
