"""Text that reaches a mail header: one line, without control characters."""

import re

# C0 and C1 controls (tab, CR, LF among them), DEL, and the Unicode line and paragraph
# separators, which str.splitlines() and mail clients also take for line breaks.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def flattened(value: str) -> str:
    """One line: each run of control characters and spaces becomes one space."""
    return " ".join(CONTROL.sub(" ", value).split())
