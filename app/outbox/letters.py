"""What each kind of delivery says, and the one key it is encrypted to (None: signed only).

One composer per kind of delivery (DELIVERY_KINDS), written by the feature the mail belongs to
in its own letters module; this table puts their dicts together. Each composer has the same
signature and returns a Text (app/outbox/text.py). Nothing imports this module but the
sending: the features' letters import only app/outbox/text.py and app/outbox/mailtext.py.

Never plaintext for anything embargoed: whoever has no usable key gets a notice with a link.
"""

import json

from app.accounts import letters as accounts
from app.core.config import Settings
from app.disclosure import letters as disclosure
from app.models import Delivery
from app.outbox import text
from app.outbox.text import Composer, Text
from app.registry import letters as registry
from app.reports import letters as reports
from app.servicekey import letters as servicekey
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
    return compose(delivery, payload, common, settings, at)
