"""CWE names for the exports (CSAF `vulnerabilities[].cwe`, the CVE record's problem types),
from MITRE's CWE list as BSI's csaf-validator-lib ships it: `schemas/cwe_names.json` is built
from that package by tests/csaf/cwe_names.mjs (`make cwe-names`), never written by hand.

The table holds weaknesses only, the entries a vulnerability is mapped to; categories and views
(CWE-16 "Configuration") and ids it does not know have no name, and callers keep the bare id.
"""

import functools
import json
import re
from importlib import resources

_ID = re.compile(r"^CWE-([1-9][0-9]{0,5})$")


@functools.cache
def _table() -> dict:
    text = resources.files("app.disclosure.exports.schemas").joinpath("cwe_names.json")
    return json.loads(text.read_text(encoding="utf-8"))


def cwe_name(cwe_id: str) -> str | None:
    """The weakness's name ("Out-of-bounds Write" for CWE-787, any case, "787" too), or None
    for an id the table does not hold."""
    text = cwe_id.strip().upper()
    match = _ID.match(text if text.startswith("CWE-") else f"CWE-{text}")
    return _table()["names"].get(f"CWE-{match[1]}") if match else None


def cwe_version() -> str:
    """The version of MITRE's CWE list the names come from (e.g. "4.17")."""
    return _table()["cwe_version"]
