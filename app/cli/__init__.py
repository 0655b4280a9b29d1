"""The `forewarn` command (also `python -m app`): thin adapters over the domain and processes.

The commands here and in this package's modules import the domain inside the command that
uses it: every call of `forewarn` imports every command module to build its help, and a
command should pay only for the parts of the desk it runs (the export validators alone take
about a second to import).
"""

import logging
import sys
from pathlib import Path

import click
import peewee

import app.cli.context as context
from app.accounts import team, totp
from app.cli.context import cli, key
from app.core import clock
from app.core.config import dkim_private_key
from app.core.errors import REPORTED, OperatorError
from app.workers import runtime

log = logging.getLogger("forewarn")


def _logging() -> None:
    from app.core import logs

    logs.configure()


@cli.command(help="Create or migrate the database, the GnuPG home and the service key.")
def init() -> None:
    settings = context.settings()
    try:
        result = runtime.initialise(settings)
    finally:
        runtime.service_keyring(settings).stop_agent()
    if result.applied_migrations:
        click.echo(f"database: applied {', '.join(result.applied_migrations)}")
    else:
        click.echo("database: schema up to date")
    made = " (generated)" if result.key_generated else ""
    click.echo(f"service key: {result.fingerprint}{made}")


@cli.command(help="Run web, intake, workers and scheduler (and a managed Redis) until stopped.")
def up() -> None:
    from app.workers import startup

    _logging()
    settings = context.settings()
    dkim_private_key(settings)  # a bad DKIM key stops us here, not at every delivery
    startup.up(settings)


@cli.command(help="Serve the web portal alone (gunicorn).")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def web(workers: int) -> None:
    from app.web.server import PortalServer
    from app.workers.listening import ensure_free

    settings = context.settings()
    runtime.open_current_db(settings)
    ensure_free(settings.web_listen, "FOREWARN_WEB_LISTEN")
    PortalServer(settings, workers=workers).run()


@cli.command(help="Run the SMTP intake alone.")
def intake() -> None:
    from app.workers import startup

    _logging()
    startup.intake(context.settings())


@cli.command(help="Run an RQ worker with the scheduler alone.")
@click.option(
    "--urgent-only",
    is_flag=True,
    help="serve only deliveries, lifts and publication (never inbound processing)",
)
def worker(urgent_only: bool) -> None:
    from app.workers import startup

    _logging()
    settings = context.settings()
    dkim_private_key(settings)  # a bad DKIM key stops us here, not at every delivery
    startup.worker(settings, urgent_only=urgent_only)


@key.command("export", help="Print the service's public key, ASCII-armored.")
def key_export() -> None:
    keyring = runtime.service_keyring(context.settings())
    try:
        click.echo(keyring.export_public(), nl=False)
    finally:
        keyring.stop_agent()


@key.command("import", help="Use an existing service key (a secret key file).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def key_import(file: Path) -> None:
    from app.core.instance import ensure_instance

    settings = context.settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {file}: {exc.strerror}") from None
    ensure_instance(settings)
    keyring = runtime.service_keyring(settings)
    try:
        fingerprint = keyring.import_secret(data)
        runtime.publish(keyring, settings)  # the web serves the new key from now on
    finally:
        keyring.stop_agent()
    click.echo(f"service key: {fingerprint}")


@cli.group(help="Security-team accounts.")
def admin() -> None:
    pass


def _read_password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise OperatorError(f"cannot read {password_file}: {exc.strerror}") from None
    if not sys.stdin.isatty():
        raise OperatorError("no terminal to ask for a password: give --password-file FILE")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@admin.command("create", help="Create a security-team account (role admin by default).")
@click.argument("email")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--role", type=click.Choice(team.TEAM_ROLES), default="admin", show_default=True)
@click.option("--totp/--no-totp", "with_totp", default=None, help="set up an authenticator app")
def admin_create(email: str, password_file: Path | None, role: str, with_totp: bool | None) -> None:
    settings = context.settings()
    runtime.open_current_db(settings)
    password = _read_password(password_file)
    enrol = settings.require_2fa if with_totp is None else with_totp
    created = team.create_team_account(
        email, password, role, clock.now(), by=f"cli:{context.operator()}", with_totp=enrol
    )
    click.echo(f"created {role} account {created.user.email}; sign in at {settings.base_url}/login")
    if created.totp_secret:
        _print_totp(created.user.email, created.totp_secret)


@admin.command("key", help="Set the OpenPGP key that mail to a team member is encrypted to.")
@click.argument("email")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def admin_key(email: str, file: Path) -> None:
    settings = context.settings()
    runtime.open_current_db(settings)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {file}: {exc.strerror}") from None
    key = team.set_openpgp_key(email, data, clock.now(), by=f"cli:{context.operator()}")
    click.echo(f"mail to {email} is now encrypted to {key.fingerprint}")


@admin.command("totp", help="Set up (or replace) an account's authenticator app.")
@click.argument("email")
def admin_totp(email: str) -> None:
    settings = context.settings()
    runtime.open_current_db(settings)
    secret = team.enrol_totp(email, clock.now(), by=f"cli:{context.operator()}")
    _print_totp(email, secret)


def _print_totp(email: str, secret: str) -> None:
    click.echo(f"authenticator secret: {secret}")
    click.echo(f"or add this URI to the app: {totp.provisioning_uri(secret, email)}")


@cli.command("test-report", help="Send a harmless test report to the intake over SMTP.")
@click.option("--sender", default="reporter@example.org", show_default=True)
def test_report(sender: str) -> None:
    import smtplib
    from email.message import EmailMessage

    settings = context.settings()
    message = EmailMessage()
    message["From"] = sender
    message["To"] = settings.security_address
    message["Subject"] = "Test report from forewarn test-report"
    message.set_content("This is a test report sent by `forewarn test-report`.\n")
    listen = settings.intake_listen
    try:
        with smtplib.SMTP(listen.host, listen.port, timeout=30) as smtp:
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode(errors="replace")
        raise OperatorError(f"the intake answered {exc.smtp_code} {detail}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, detail = next(iter(exc.recipients.values()))
        raise OperatorError(
            f"the intake answered {code} {detail.decode(errors='replace')}"
        ) from None
    except OSError as exc:
        raise OperatorError(
            f"cannot reach the intake at {listen} ({exc.strerror or exc}); "
            "is `forewarn up` running?"
        ) from None
    click.echo(f"sent a test report to {settings.security_address} via {listen}")


def main() -> None:
    try:
        cli(prog_name="forewarn")
    except REPORTED as exc:
        click.echo(f"forewarn: {exc}", err=True)
        sys.exit(1)
    except peewee.DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"forewarn: database error: {first}; check FOREWARN_DATABASE_URL", err=True)
        sys.exit(1)


# The command groups of the domain live beside this module; importing them registers them.
from app.cli import alerts as _alerts  # noqa: E402, F401
from app.cli import csaf as _csaf  # noqa: E402, F401
from app.cli import cves as _cves  # noqa: E402, F401
from app.cli import data as _data  # noqa: E402, F401
from app.cli import dkim as _dkim  # noqa: E402, F401
from app.cli import exports as _exports  # noqa: E402, F401
from app.cli import registrants as _registrants  # noqa: E402, F401
from app.cli import vulns as _vulns  # noqa: E402, F401
