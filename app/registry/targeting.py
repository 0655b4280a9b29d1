"""Targeting by product (#17): registrants declare what they ship (free text and package URLs);
the team may narrow an alert to those whose products match the vulnerability's affected ones.

An alert goes to every approved registrant unless the team chooses otherwise, and narrowing is
never silent: the preview names everyone left out, the team may add any of them back, and the
choice is checked again when it is sent (a registrant approved in between shows the preview
again). A later version of a narrowed advisory goes to the registrants who matched, everyone an
earlier version of it reached (they are never dropped from an advisory they already hold) and
whoever the team adds.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime

from app.core import audit
from app.core.config import Settings
from app.core.db import write_transaction
from app.core.errors import Refused
from app.models import Advisory, Registrant, User, Vulnerability
from app.registry import alerts
from app.registry.purls import checked_package_urls, package_names
from app.vulns import affected


def affected_products(v: Vulnerability) -> list[str]:
    """The vulnerability's affected product names, lower-cased, each once; Refused (saying to
    set `affected` first) when it names none."""
    how = (
        f"set `affected` first (e.g. forewarn vulns set {v.tracking_id} affected "
        "'zephyr <4.2'), or send the alert to every approved registrant"
    )
    try:
        items = affected.parse(v.affected or "")
    except Refused:
        raise Refused(f"{v.tracking_id}'s affected products cannot be read: {how}") from None
    if not items:
        raise Refused(f"{v.tracking_id} names no affected products to match: {how}")
    return list(dict.fromkeys(item.product.lower() for item in items))


def matching(registrant: Registrant, products: list[str]) -> list[str]:
    """Which of `products` the registrant declares: the name part of one of their package URLs
    equals it (case-insensitive), or it appears as a whole word in their free text."""
    names = package_names(registrant)
    text = registrant.products or ""
    return [
        p
        for p in products
        if p in names
        or re.search(rf"(?<![A-Za-z0-9_]){re.escape(p)}(?![A-Za-z0-9_])", text, re.IGNORECASE)
    ]


@dataclass(frozen=True)
class Recipient:
    registrant: Registrant
    why: str  # "declares zephyr", "received an earlier version"


@dataclass(frozen=True)
class Preview:
    """Who a narrowed alert goes to and, separately, every registrant who gets alerts but not
    this one. `key` names both sets: the confirmation must carry the key it was shown."""

    products: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    left_out: tuple[Registrant, ...]

    @property
    def approved(self) -> int:
        return len(self.recipients) + len(self.left_out)

    @property
    def key(self) -> str:
        to = ",".join(str(r.registrant.id) for r in self.recipients)
        out = ",".join(str(r.id) for r in self.left_out)
        return f"to:{to};out:{out}"


class AudienceChanged(Refused):
    """The registrants who get alerts changed since the team saw the preview: nothing was sent;
    `preview` is the new one to show."""

    def __init__(self, preview: Preview):
        super().__init__(
            "the registrants who get alerts changed since the preview was shown: nothing was "
            "sent; check the new list and confirm again"
        )
        self.preview = preview


def preview(v: Vulnerability, at: datetime) -> Preview:
    """Who gets `v`'s next version when narrowed to matching products. Refused when `v` names
    no affected products, nobody would get it, or it cannot be alerted (yet)."""
    refused = alerts.refusal([v])
    if refused:
        raise Refused(refused)
    products = affected_products(v)
    earlier = {r.id for r in alerts.alerted(v)}
    recipients, left_out = [], []
    for registrant in alerts.recipients():
        found = matching(registrant, products)
        if found:
            recipients.append(Recipient(registrant, "declares " + ", ".join(found)))
        elif registrant.id in earlier:
            recipients.append(Recipient(registrant, "received an earlier version"))
        else:
            left_out.append(registrant)
    if not recipients:
        raise Refused(
            f"no approved registrant declares {', '.join(products)}: nothing to narrow to; "
            "send the alert to every approved registrant"
        )
    return Preview(tuple(products), tuple(recipients), tuple(left_out))


def label(registrant: Registrant) -> str:
    return f"{registrant.organisation} <{registrant.user.email}>"


def send_matching(
    v: Vulnerability,
    by: User | None,
    by_label: str,
    at: datetime,
    settings: Settings,
    shown: str,
    added: list[int] | tuple[int, ...] = (),
    text: str | None = None,
) -> Advisory:
    """v's next version to the preview's recipients plus the left-out registrants the team
    added back (ids), in one transaction. `shown` is the key of the preview the team confirmed:
    when the preview computed now differs, AudienceChanged carries the new one, nothing sent."""
    with write_transaction():
        now = preview(v, at)
        if now.key != shown:
            raise AudienceChanged(now)
        by_id = {r.id: r for r in now.left_out}
        unknown = [i for i in added if i not in by_id]
        if unknown:
            raise Refused("only a registrant left out of this alert can be added back to it")
        back = [by_id[i] for i in dict.fromkeys(added)]
        out = [r for r in now.left_out if r.id not in set(added)]
        to = frozenset([r.registrant.id for r in now.recipients] + [r.id for r in back])
        kept = {
            "products": list(now.products),
            "approved": now.approved,
            "to": len(to),
            "left_out": [r.id for r in out],
            "added": [r.id for r in back],
        }
        logged = {
            "products": list(now.products),
            "approved": now.approved,
            "left_out": [label(r) for r in out],
            "added": [label(r) for r in back],
        }
        return alerts.send(
            v, by, by_label, at, settings, text=text, only=alerts.Narrowing(to, kept, logged)
        )


def audience(advisory: Advisory) -> dict | None:
    """How a version was narrowed, or None (sent to everyone): products, approved (how many
    got alerts then), to (how many it went to), and left_out / added as the registrants'
    labels as they are now (an erased one reads as erased)."""
    if not advisory.audience:
        return None
    kept = json.loads(advisory.audience)
    ids = kept["left_out"] + kept["added"]
    found = {
        r.id: label(r)
        for r in Registrant.select(Registrant, User).join(User).where(Registrant.id.in_(ids))
    }
    return {
        **kept,
        "left_out": [found.get(i, f"registrant {i}") for i in kept["left_out"]],
        "added": [found.get(i, f"registrant {i}") for i in kept["added"]],
    }


def last_narrowed(v: Vulnerability) -> bool:
    """Whether v's latest version went out narrowed (the form then offers narrowing first)."""
    latest = v.advisories.order_by(Advisory.version.desc()).first()
    return latest is not None and latest.audience is not None


def declare(registrant: Registrant, products: str, package_urls: str, at: datetime) -> Registrant:
    """The registrant's own declaration of what they ship (their status page), audited."""
    products = products.strip()
    if len(products) > 5000:
        raise Refused("describe your products in at most 5000 characters")
    purls = checked_package_urls(package_urls)
    with write_transaction():
        Registrant.update(products=products, package_urls=purls, updated_at=at).where(
            Registrant.id == registrant.id
        ).execute()
        audit.record(
            registrant.user,
            "registry.products",
            at,
            target=registrant.user.email,
            details={
                "package_urls": purls.split(),
                "products_changed": products != registrant.products,
            },
        )
    return Registrant.get_by_id(registrant.id)
