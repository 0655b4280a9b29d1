"""The small set of exceptions the domain raises; each adapter maps them to its own answer."""

from keys.errors import KeysError
from mail.errors import MailError


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


# What an adapter reports to a person in one line: Forewarn's own errors and those of the
# libraries beside app/ (keys/, mail/), which know nothing of the application. `except REPORTED`
# where `except ForewarnError` would miss a library's error.
REPORTED = (ForewarnError, KeysError, MailError)


class OutOfTime(BaseException):  # noqa: N818 (a limit reached, not an error of the caller)
    """A job ran past its time limit: the worker's alarm raises it in the job.

    A BaseException, so that no `except Exception` on the way (a parser's fallback, a retry
    loop) can take it for a bad input and carry on: the job ends, and the worker is free.
    """
