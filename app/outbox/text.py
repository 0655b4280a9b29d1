"""What a letter is, and what every feature's letters share.

A composer turns one Delivery into a Text: `compose(delivery, payload, common, settings, at)`,
where `payload` is the delivery's JSON payload read back and `common` the values every mail
template may use (the service key's fingerprint, where to fetch it, who signs). Each feature
keeps its composers in its own `letters` module, as a dict {kind: composer} named LETTERS;
app/outbox/letters.py puts those dicts together.

Never plaintext for anything embargoed: whoever has no usable key gets a notice with a link.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.core.config import Settings
from app.models import Delivery, PublicKey, Registrant, User
from mail.compose import Attachment


@dataclass(frozen=True)
class Text:
    subject: str  # the real subject (shown only inside encryption)
    outer_subject: str  # what anyone on the way may see
    body: str
    certificate: PublicKey | None  # encrypt to this one, or sign only
    attachments: tuple[Attachment, ...] = ()
    # Sent as plain text, neither signed nor encrypted: only the warning that the service key
    # has expired (it cannot sign), whose body says so.
    unsigned: bool = False


# compose(delivery, payload, common, settings, at) -> Text
Composer = Callable[[Delivery, dict, dict, Settings, datetime], Text]


def common(fingerprint: str | None, settings: Settings) -> dict:
    """What every mail template may name: the service key's fingerprint, where to fetch the
    key, and who signs."""
    return {
        "fingerprint": fingerprint,
        "key_url": f"{settings.base_url}/key.asc",
        "sender": f"The security team <{settings.security_address}>",
    }


def usable_key(key: PublicKey | None) -> PublicKey | None:
    return key if key is not None and key.usable else None


def member_key(user) -> PublicKey | None:
    """A team member's current key (the newest usable one)."""
    return (
        PublicKey.select()
        .where(PublicKey.owner == user, PublicKey.usable == True)  # noqa: E712
        .order_by(PublicKey.created_at.desc())
        .first()
    )


def account_key(user: User) -> PublicKey | None:
    """The key mail about an account is encrypted to: a registrant's pinned key (if usable),
    otherwise the account's newest usable key."""
    registrant = Registrant.get_or_none(Registrant.user == user)
    return usable_key(registrant.key) if registrant is not None else member_key(user)
