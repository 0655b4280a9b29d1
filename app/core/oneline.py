"""Text fields that reach mail headers and one-line outputs (subjects, `vulns list`, release
notes, the registry's pages): one line, without control characters.

A line break in a title once made every alert of its vulnerability fail to compose, retried
for days. People's input is refused with `checked`; a reporter's mail, which must never be
lost, is made one line with `flattened` instead.
"""

from app.core.errors import Refused
from mail.oneline import CONTROL, flattened

__all__ = ["checked", "flattened"]


def checked(value: str, what: str) -> str:
    """The value without surrounding whitespace; Refused when it holds a control character."""
    value = value.strip()
    if CONTROL.search(value):
        raise Refused(f"the {what} must be one line without control characters")
    return value
