"""Text fields that reach mail headers and one-line outputs (subjects, `vulns list`, release
notes, the registry's pages): one line, without control characters.

A line break in a title once made every alert of its vulnerability fail to compose, retried
for days. People's input is refused with `checked`; a reporter's mail, which must never be
lost, is made one line with `flattened` instead.
"""

import re

from app.core.errors import Refused

# C0 and C1 controls (tab, CR, LF among them), DEL, and the Unicode line and paragraph
# separators, which str.splitlines() and mail clients also take for line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def checked(value: str, what: str) -> str:
    """The value without surrounding whitespace; Refused when it holds a control character."""
    value = value.strip()
    if _CONTROL.search(value):
        raise Refused(f"the {what} must be one line without control characters")
    return value


def flattened(value: str) -> str:
    """One line: each run of control characters and spaces becomes one space."""
    return " ".join(_CONTROL.sub(" ", value).split())
