"""`forewarn dkim init`: a DKIM key in the instance, and the DNS record and settings it needs."""

import os
import subprocess

import click

import app.cli.context as context
from app.cli.context import cli
from app.core.config import DNS_NAME
from app.core.errors import OperatorError
from app.core.instance import ensure_instance

TXT_STRING_MAX = 255  # one character-string in a TXT record; longer values are split


@cli.group(help="DKIM signatures on outgoing mail.")
def dkim() -> None:
    pass


@dkim.command("init", help="Make a 2048-bit RSA DKIM key in the instance; print its DNS record.")
@click.option("--selector", help="the DNS selector  [default: FOREWARN_DKIM_SELECTOR or forewarn]")
def dkim_init(selector: str | None) -> None:
    from dkim import dknewkey

    from mail import domainkeys

    settings = context.settings()
    selector = selector or settings.dkim_selector or "forewarn"
    if not DNS_NAME.fullmatch(selector):
        raise OperatorError(
            f"--selector {selector!r} must be letters, digits and '-' (like mail2026)"
        )
    ensure_instance(settings)
    path = settings.instance / f"dkim-{selector}.key"
    if path.exists():
        raise OperatorError(
            f"{path} exists already; keep it, or give another --selector for a new key"
        )
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    umask = os.umask(0o077)
    try:
        dknewkey.GenRSAKeys(str(partial), verbose=False)
        partial.chmod(0o600)
        os.link(partial, path)  # never over a file, even one made meanwhile
    except FileExistsError:
        raise OperatorError(f"{path} exists already; keep it, or give another --selector") from None
    except (OSError, subprocess.CalledProcessError) as exc:
        raise OperatorError(
            f"openssl could not make a key ({exc}); is openssl installed?"
        ) from None
    finally:
        os.umask(umask)
        partial.unlink(missing_ok=True)
    record = domainkeys.dns_record(path.read_bytes())
    chunks = [record[i : i + TXT_STRING_MAX] for i in range(0, len(record), TXT_STRING_MAX)]
    domain = settings.dkim_domain
    click.echo(f"wrote {path} (2048-bit RSA, mode 0600)")
    click.echo("publish in DNS:")
    click.echo(f"{selector}._domainkey.{domain}. IN TXT " + " ".join(f'"{c}"' for c in chunks))
    click.echo("then set:")
    click.echo(f"FOREWARN_DKIM_KEY_FILE={path}")
    click.echo(f"FOREWARN_DKIM_SELECTOR={selector}")
    if "." not in domain:
        click.echo(
            f"note: {domain} is not a public domain; set FOREWARN_FROM_ADDRESS or "
            "FOREWARN_DKIM_DOMAIN to yours and publish the record under it"
        )
