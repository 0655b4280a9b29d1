"""Keys and data over time: `forewarn key renew`, `forewarn key announce-rotation`,
`forewarn key announce-compromise`, `forewarn purge-due`, `forewarn registrants erase ID`,
`forewarn reporters erase ADDRESS`."""

import click

import app.cli.context as context
from app.cli.context import cli, key
from app.cli.registrants import registrants
from app.core import clock, timefmt
from app.workers import runtime


def _label() -> str:
    return f"cli:{context.operator()}"


@key.command("renew", help="Extend the service key's expiry (primary key and subkeys).")
@click.option(
    "--years",
    type=click.IntRange(1, 50),
    default=2,
    show_default=True,
    help="the new expiry, in years from now",
)
def key_renew(years: int) -> None:
    from app.core import audit

    settings = context.settings()
    keyring = runtime.service_keyring(settings)
    try:
        fingerprint = keyring.fingerprint()
        if fingerprint is None:
            from app.core.errors import OperatorError

            raise OperatorError("there is no service key yet: run `forewarn init`")
        expires = keyring.renew(years)
        runtime.publish(keyring, settings)  # the certificate with its new expiry, for the web
    finally:
        keyring.stop_agent()
    shown = timefmt.minute(expires, "never")
    try:
        runtime.open_current_db(settings)
        audit.record(
            None,
            "service-key.renew",
            clock.now(),
            target=fingerprint,
            details={"expires": expires.isoformat() if expires else None, "years": years},
            actor_label=_label(),
        )
    except Exception:  # noqa: BLE001  (the key is renewed; the record is a courtesy)
        click.echo("forewarn: warning: the renewal was not recorded in the audit log", err=True)
    click.echo(f"service key {fingerprint} now expires {shown}")


@key.command(
    "announce-rotation",
    help="Tell every approved, subscribed registrant that the service key changed: one signed "
    "mail each, once per --old/--new pair (docs/keys.md, 2.8). Run it after the new key is "
    "imported.",
)
@click.option("--old", required=True, metavar="FPR", help="the fingerprint of the retired key")
@click.option("--new", required=True, metavar="FPR", help="the new service key's fingerprint")
@click.option("--dry-run", is_flag=True, help="only print how many registrants would be told")
def key_announce_rotation(old: str, new: str, dry_run: bool) -> None:
    from app.servicekey import rotation as key_rotation

    settings = context.settings()
    runtime.open_current_db(settings)
    keyring = runtime.service_keyring(settings)
    try:
        current = keyring.fingerprint()
        certified = current is not None and keyring.certified_by(old)
    finally:
        keyring.stop_agent()
    announcement = key_rotation.announce(
        old, new, current, certified, _label(), clock.now(), dry_run=dry_run
    )
    click.echo(announcement.line())


@key.command(
    "announce-compromise",
    help="After a compromise of the service key, tell every approved, subscribed registrant "
    "and each reporter of an open vulnerability: one signed mail each with the old key's "
    "revocation attached, once per --old/--new pair (docs/keys.md, 3.6). Run it after the new "
    "key is imported.",
)
@click.option("--old", required=True, metavar="FPR", help="the compromised key's fingerprint")
@click.option("--new", required=True, metavar="FPR", help="the new service key's fingerprint")
@click.option(
    "--revocation",
    required=True,
    type=click.File("rb"),
    metavar="FILE",
    help="the old public key carrying its revocation, ASCII-armored (docs/keys.md, 3.2)",
)
@click.option(
    "--since",
    metavar="DATE",
    help="from when mail signed by the old key must not be trusted (2026-11-20 or "
    "2026-11-20T14:00Z; UTC) [default: now]",
)
@click.option("--dry-run", is_flag=True, help="only print how many people would be told")
def key_announce_compromise(old: str, new: str, revocation, since: str | None, dry_run: bool):
    from datetime import time

    from app.servicekey import rotation as key_rotation
    from app.vulns import embargo

    settings = context.settings()
    runtime.open_current_db(settings)
    keyring = runtime.service_keyring(settings)
    try:
        current = keyring.fingerprint()
    finally:
        keyring.stop_agent()
    announcement = key_rotation.announce_compromise(
        old,
        new,
        current,
        revocation.read(),
        revocation.name,
        embargo.parse_instant(since, time(0, 0)) if since else None,
        _label(),
        clock.now(),
        dry_run=dry_run,
    )
    click.echo(announcement.line())


@cli.command("purge-due", help="Purge raw mail and correspondence past FOREWARN_RETENTION_DAYS.")
def purge_due() -> None:
    from app.privacy import retention

    settings = context.settings()
    runtime.open_current_db(settings)
    purged = retention.purge_due(clock.now(), settings.retention_days, actor_label=_label())
    click.echo(
        f"purged {purged.correspondence} correspondence and {purged.messages} raw messages of "
        f"{purged.vulnerabilities} vulnerabilities, and {purged.unlinked} unlinked messages "
        f"(retention {settings.retention_days} days)"
    )


@registrants.command("erase", help="Erase a registrant's personal data (on their request).")
@click.argument("registrant_id")
def registrants_erase(registrant_id: str) -> None:
    from app.privacy import erasure

    runtime.open_current_db(context.settings())
    click.echo(erasure.erase_registrant(registrant_id, _label(), clock.now()).line())


@cli.group(help="Reporters of vulnerabilities.")
def reporters() -> None:
    pass


@reporters.command("erase", help="Erase a reporter's personal data (on their request).")
@click.argument("address")
def reporters_erase(address: str) -> None:
    from app.privacy import erasure

    runtime.open_current_db(context.settings())
    click.echo(erasure.erase_reporter(address, _label(), clock.now()).line())
