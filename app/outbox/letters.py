"""What each kind of delivery says, and the one key it is encrypted to (None: signed only).

One composer per kind of delivery (DELIVERY_KINDS), written by the feature the mail belongs to
in its own letters module; this table puts their dicts together. Each composer has the same
signature and returns a Text (app/outbox/text.py). Nothing imports this module but the
sending: the features' letters import only app/outbox/text.py and app/outbox/mailtext.py.

Never plaintext for anything embargoed: whoever has no usable key gets a notice with a link.
"""

import dataclasses
import json

from app.accounts import letters as accounts
from app.core.config import Settings
from app.disclosure import letters as disclosure
from app.models import Delivery
from app.outbox import text
from app.outbox.text import Composer, Text
from app.registry import letters as registry
from app.reports import followup
from app.reports import letters as reports
from app.servicekey import letters as servicekey
from app.vulns import cases
from app.vulns import letters as vulns
from keys.keyring import ServiceKeyring

# Each feature's own table, in the order of DELIVERY_KINDS.
PARTS: tuple[dict[str, Composer], ...] = (
    reports.LETTERS,
    vulns.LETTERS,
    registry.LETTERS,
    disclosure.LETTERS,
    servicekey.LETTERS,
    accounts.LETTERS,
)
TABLE: dict[str, Composer] = {kind: compose for part in PARTS for kind, compose in part.items()}

__all__ = ["PARTS", "TABLE", "Text", "text_for"]


def text_for(delivery: Delivery, keyring: ServiceKeyring, settings: Settings, at) -> Text:
    payload = json.loads(delivery.payload or "{}")
    common = text.common(keyring.fingerprint(), settings)
    compose = TABLE.get(delivery.kind)
    if compose is None:
        raise ValueError(f"no text for delivery kind {delivery.kind!r}")
    return _with_follow_up(delivery, compose(delivery, payload, common, settings, at), settings)


# Mail to a case's reporter about it that ends with their follow-up link, when the case has a
# live one (the ack and the reissue say it in their text). The link travels as the rest of the
# mail does: encrypted to the reporter's key, or in the signed notice, which is how a reporter
# without OpenPGP gets back in.
TO_REPORTER_WITH_LINK = ("reply-ack", "reply", "rejected", "case-map", "duplicate")
TO_REPORTER_WITH_LINK += ("embargo-changed", "publication", "key-compromise-reporter")


def _with_follow_up(delivery: Delivery, composed: Text, settings: Settings) -> Text:
    v = delivery.vulnerability
    if delivery.kind not in TO_REPORTER_WITH_LINK or v is None or delivery.user_id is not None:
        return composed
    reporter = (v.reporter_email or "").strip().lower()
    if not reporter or delivery.recipient.strip().lower() != reporter:
        return composed
    url = followup.current_url(cases.case_id(v), settings)
    if url is None:
        return composed
    footer = f"\nYour report's private follow-up page (keep it to yourself):\n  {url}\n"
    body = composed.body if composed.body.endswith("\n") else composed.body + "\n"
    return dataclasses.replace(composed, body=body + footer)
