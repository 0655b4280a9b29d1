"""The `forewarn` command (also `python -m app`): thin adapters over the domain and processes."""

import logging
import os
import sys
from pathlib import Path

import click
import peewee

from app import accounts, clock, runtime, totp
from app.config import load_settings
from app.errors import ForewarnError, OperatorError

log = logging.getLogger("forewarn")


def _settings():
    return load_settings()


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


@click.group(help="Forewarn: a coordinated vulnerability disclosure desk.")
@click.version_option(package_name="forewarn", prog_name="forewarn")
def cli() -> None:
    pass


@cli.command(help="Create or migrate the database, the GnuPG home and the service key.")
def init() -> None:
    settings = _settings()
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


@cli.command(help="Run web, intake, worker and scheduler (and a managed Redis) until stopped.")
def up() -> None:
    from app import startup

    _logging()
    startup.up(_settings())


@cli.command(help="Serve the web portal alone (gunicorn).")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def web(workers: int) -> None:
    from app.listening import ensure_free
    from app.web.server import PortalServer

    settings = _settings()
    runtime.open_current_db(settings)
    ensure_free(settings.web_listen, "FOREWARN_WEB_LISTEN")
    PortalServer(settings, workers=workers).run()


@cli.command(help="Run the SMTP intake alone.")
def intake() -> None:
    from app import startup

    _logging()
    startup.intake(_settings())


@cli.command(help="Run an RQ worker with the scheduler alone.")
def worker() -> None:
    from app import startup

    _logging()
    startup.worker(_settings())


@cli.group(help="The service's OpenPGP key.")
def key() -> None:
    pass


@key.command("export", help="Print the service's public key, ASCII-armored.")
def key_export() -> None:
    keyring = runtime.service_keyring(_settings())
    try:
        click.echo(keyring.export_public(), nl=False)
    finally:
        keyring.stop_agent()


@key.command("import", help="Use an existing service key (a secret key file).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def key_import(file: Path) -> None:
    from app.instance import ensure_instance

    settings = _settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {file}: {exc.strerror}") from None
    ensure_instance(settings)
    keyring = runtime.service_keyring(settings)
    try:
        fingerprint = keyring.import_secret(data)
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
@click.option("--role", type=click.Choice(accounts.TEAM_ROLES), default="admin", show_default=True)
@click.option("--totp/--no-totp", "with_totp", default=None, help="set up an authenticator app")
def admin_create(email: str, password_file: Path | None, role: str, with_totp: bool | None) -> None:
    settings = _settings()
    runtime.open_current_db(settings)
    password = _read_password(password_file)
    enrol = settings.require_2fa if with_totp is None else with_totp
    created = accounts.create_team_account(
        email, password, role, clock.now(), by=f"cli:{_operator()}", with_totp=enrol
    )
    click.echo(f"created {role} account {created.user.email}; sign in at {settings.base_url}/login")
    if created.totp_secret:
        _print_totp(created.user.email, created.totp_secret)


@admin.command("key", help="Set the OpenPGP key that mail to a team member is encrypted to.")
@click.argument("email")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def admin_key(email: str, file: Path) -> None:
    settings = _settings()
    runtime.open_current_db(settings)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {file}: {exc.strerror}") from None
    key = accounts.set_openpgp_key(email, data, clock.now(), by=f"cli:{_operator()}")
    click.echo(f"mail to {email} is now encrypted to {key.fingerprint}")


@admin.command("totp", help="Set up (or replace) an account's authenticator app.")
@click.argument("email")
def admin_totp(email: str) -> None:
    settings = _settings()
    runtime.open_current_db(settings)
    secret = accounts.enrol_totp(email, clock.now(), by=f"cli:{_operator()}")
    _print_totp(email, secret)


def _print_totp(email: str, secret: str) -> None:
    click.echo(f"authenticator secret: {secret}")
    click.echo(f"or add this URI to the app: {totp.provisioning_uri(secret, email)}")


@cli.command("test-report", help="Send a harmless test report to the intake over SMTP.")
@click.option("--sender", default="reporter@example.org", show_default=True)
def test_report(sender: str) -> None:
    import smtplib
    from email.message import EmailMessage

    settings = _settings()
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


@cli.group(help="Vulnerabilities: list, show, create, change.")
def vulns() -> None:
    pass


def _cli_actor():
    from app.vulns import Actor

    return Actor(None, f"cli:{_operator()}")


@vulns.command("list", help="Every vulnerability, newest first.")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def vulns_list(as_json: bool) -> None:
    import json

    from app import vulns as domain
    from app.models import Vulnerability

    runtime.open_current_db(_settings())
    rows = [domain.summary(v) for v in Vulnerability.select().order_by(Vulnerability.id.desc())]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['id']:<16} {row['status']:<9} {row['cve'] or '-':<15} "
            f"{(row['embargo_until'] or '-')[:16]:<16} {row['title']}"
        )


@vulns.command("show", help="Everything about one vulnerability, correspondence included.")
@click.argument("vuln_id")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def vulns_show(vuln_id: str, as_json: bool) -> None:
    import json

    from app import vulns as domain

    runtime.open_current_db(_settings())
    shown = domain.details(domain.get(vuln_id))
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key in (
        "id",
        "title",
        "status",
        "cve",
        "assignee",
        "reported_at",
        "fix_due",
        "embargo_until",
        "severity",
        "cvss_score",
        "cwe",
        "affected",
        "credits",
    ):
        click.echo(f"{key + ':':<15} {shown[key] if shown[key] not in (None, '') else '-'}")
    click.echo(f"\n{shown['description'] or '(no description)'}")
    for entry in shown["correspondence"]:
        arrow = "from reporter" if entry["direction"] == "in" else "to reporter"
        click.echo(f"\n--- {entry['at']} {arrow}, {entry['signature_status']} ---")
        click.echo(entry["text"])


@vulns.command("create", help="Open a vulnerability; prints its tracking id.")
@click.option("--title", required=True)
@click.option("--description-file", type=click.File("r"), required=True)
@click.option("--embargo-until", default=None, help="ISO 8601, UTC (default: the policy's)")
def vulns_create(title: str, description_file, embargo_until: str | None) -> None:
    from datetime import time

    from app import embargo
    from app import vulns as domain

    settings = _settings()
    runtime.open_current_db(settings)
    until = None
    if embargo_until:
        until = embargo.parse_instant(embargo_until, time(settings.publication_hour))
    v = domain.create(title, description_file.read(), _cli_actor(), clock.now(), settings, until)
    click.echo(v.tracking_id)


@vulns.command("set", help="Change one field with the web form's rules and audit.")
@click.argument("vuln_id")
@click.argument("field")
@click.argument("value")
@click.option("--reason", default=None, help="why (where the rules ask for one)")
def vulns_set(vuln_id: str, field: str, value: str, reason: str | None) -> None:
    from app import vulns as domain

    runtime.open_current_db(_settings())
    v = domain.get(vuln_id)
    changed = domain.set_field(
        v, field, value, _cli_actor(), clock.now(), reason or domain.OPERATOR_REASON
    )
    click.echo(f"{changed.tracking_id}: {field} set")


@cli.command("release-notes", help="Release-note lines: embargoed CVEs by id and date alone.")
@click.option("--since", default=None, metavar="YYYY-MM-DD", help="published or ending since")
def release_notes(since: str | None) -> None:
    from app import exports

    settings = _settings()
    try:
        day = exports.parse_date(since) if since is not None else None
    except ValueError as exc:
        raise OperatorError(f"--since: {exc}") from None
    runtime.open_current_db(settings)
    for line in exports.release_notes(clock.now(), day, base_url=settings.base_url):
        click.echo(line)


@cli.group(help="CVE ids: the CNA's blocks, or CVE Services when FOREWARN_CVE_SERVICES_URL is set.")
def cve() -> None:
    pass


@cve.command("import-block", help="Add a block of ids assigned to the CNA (A..B, one year).")
@click.argument("id_range", metavar="CVE-YYYY-FIRST..CVE-YYYY-LAST")
def cve_import_block(id_range: str) -> None:
    from app import cves

    runtime.open_current_db(_settings())
    done = cves.import_block(id_range, None, f"cli:{_operator()}", clock.now())
    click.echo(f"added {done.added} ids ({done.known} already known)")


@cve.command("assign", help="Give a vulnerability the next free id; prints the id alone.")
@click.argument("vuln_id")
def cve_assign(vuln_id: str) -> None:
    from app import cve_services, cves

    settings = _settings()
    services = cve_services.ServicesConfig.from_environ()
    runtime.open_current_db(settings)
    vuln = cves.find_vulnerability(vuln_id)
    given = cves.allocate(vuln, None, f"cli:{_operator()}", clock.now(), services)
    click.echo(given.cve.cve_id)
    if given.low:
        click.echo(f"forewarn: warning: {given.warning}", err=True)


@cve.command("retire", help="Reject an unused or unpublished id (at CVE Services too).")
@click.argument("cve_id")
@click.option("--reason", required=True, help="why it is retired (kept with the id)")
def cve_retire(cve_id: str, reason: str) -> None:
    from app import cve_services, cves

    settings = _settings()
    services = cve_services.ServicesConfig.from_environ()
    runtime.open_current_db(settings)
    row = cves.retire(cve_id, reason, None, f"cli:{_operator()}", clock.now(), services)
    click.echo(f"{row.cve_id} rejected: {row.reason}")


@cve.command("list", help="Every id held, with its state and vulnerability.")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def cve_list(as_json: bool) -> None:
    import json

    from app import cves

    runtime.open_current_db(_settings())
    rows = cves.inventory()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        reason = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(f"{row['cve_id']:<16} {row['state']:<9} {row['vulnerability'] or '-'}{reason}")


@cve.command("quota", help="Ids left: in the blocks, or in the CVE Services quota.")
def cve_quota() -> None:
    from app import cve_services, cves

    settings = _settings()
    services = cve_services.ServicesConfig.from_environ()
    if services is not None:
        left = cve_services.quota(services)
        click.echo(
            f"CVE Services ({services.org}): limit {left['id_quota']}, "
            f"reserved {left['total_reserved']}, available {left['available']}"
        )
        return
    runtime.open_current_db(settings)
    click.echo(f"blocks: {cves.remaining()} ids available")


def _operator() -> str:
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid())


def main() -> None:
    try:
        cli(prog_name="forewarn")
    except ForewarnError as exc:
        click.echo(f"forewarn: {exc}", err=True)
        sys.exit(1)
    except peewee.DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"forewarn: database error: {first}; check FOREWARN_DATABASE_URL", err=True)
        sys.exit(1)
