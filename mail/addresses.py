"""The security address's plus-addresses, built and read here alone.

security+<tracking id>@domain names a case: the team's mail about a case gives it as Reply-To,
and a message to it is threaded to that case. security-bounces+<delivery id>-<token>@domain is
the envelope sender of mail to registrants (VERP), so that a bounce names its delivery.
security-answers+<advisory id>-<token>@domain is the Reply-To of an alert: a product maker's
answer to it (app/registry/mail_answers.py), never threaded to a case. The intake accepts the
security address, its plus-addresses, the bounce addresses and the answers addresses.
"""

import re


def case_address(security_address: str, tracking_id: str) -> str:
    """security+SEC-2026-0001@example.org"""
    local, _, domain = security_address.rpartition("@")
    return f"{local}+{tracking_id}@{domain}"


def bounce_address(security_address: str, detail: str) -> str:
    """security-bounces+<detail>@example.org"""
    local, _, domain = security_address.rpartition("@")
    return f"{local}-bounces+{detail}@{domain}"


def answers_address(security_address: str, detail: str) -> str:
    """security-answers+<detail>@example.org"""
    local, _, domain = security_address.rpartition("@")
    return f"{local}-answers+{detail}@{domain}"


def plus_detail(address: str) -> str | None:
    """What follows the first "+" of an address's local part; None when it has no "+"."""
    local = address.rpartition("@")[0]
    return local.split("+", 1)[1] if "+" in local else None


def bounce_detail(address: str, security_address: str) -> str | None:
    """What a bounce address of ours carries after its "+" ("" when nothing); None when
    `address` (bare or in angle brackets, in any case) is not one of our bounce addresses."""
    return _suffixed_detail(address, security_address, "bounces")


def answers_detail(address: str, security_address: str) -> str | None:
    """What an answers address of ours carries after its "+" ("" when nothing); None when
    `address` is not one of our answers addresses."""
    return _suffixed_detail(address, security_address, "answers")


def _suffixed_detail(address: str, security_address: str, suffix: str) -> str | None:
    local, _, domain = security_address.rpartition("@")
    pattern = re.compile(
        rf"^<?{re.escape(local)}-{suffix}(?:\+([^@]*))?@{re.escape(domain)}>?$", re.IGNORECASE
    )
    found = pattern.match(address.strip())
    return (found.group(1) or "") if found else None


def accepts(address: str, security_address: str) -> bool:
    """The security address itself, its plus-addresses (security+SEC-2026-0001@...), the
    bounce addresses of alerts (security-bounces+<delivery>@...) and their answers addresses
    (security-answers+<advisory>-<token>@...)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    our_local, _, our_domain = security_address.rpartition("@")
    if domain.lower() != our_domain.lower():
        return False
    base = local.split("+", 1)[0].lower()
    ours = our_local.lower()
    return base in (ours, f"{ours}-bounces", f"{ours}-answers")
