"""`forewarn registrants ...`: the vulnerability registry as an admin runs it."""

import csv
import io
import json
from pathlib import Path

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock, timefmt
from app.core.errors import REPORTED, OperatorError
from app.workers import runtime


@cli.group(help="Product makers in the vulnerability registry.")
def registrants() -> None:
    pass


def _label() -> str:
    return f"cli:{context.operator()}"


def _read_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read the key file {path}: {exc.strerror}") from None


@registrants.command("add", help="Add a registrant as an admin would (key pinned, no proof mail).")
@click.option("--email", required=True)
@click.option("--org", required=True)
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--product", default="", help="the products they build on the project")
@click.option(
    "--purl",
    "purls",
    multiple=True,
    help="a package URL of what they ship, e.g. pkg:github/zephyrproject-rtos/zephyr (repeatable)",
)
@click.option("--approve", is_flag=True, help="approve at once")
def registrants_add(
    email: str, org: str, key_file: Path, product: str, purls: tuple[str, ...], approve: bool
) -> None:
    from app.registry import vetting as registry

    runtime.open_current_db(context.settings())
    added = registry.add_by_admin(
        email,
        org,
        _read_key(key_file),
        None,
        _label(),
        clock.now(),
        approve=approve,
        products=product,
        package_urls=" ".join(purls),
    )
    click.echo(f"{added.id} {added.user.email} {added.status} {added.pinned_fingerprint}")


@registrants.command(
    "import",
    help="Add registrants from a CSV (email, org, product, purl (space-separated package "
    "URLs), key_file or key).",
)
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--approve", is_flag=True, help="approve each one at once")
def registrants_import(csv_file: Path, approve: bool) -> None:
    from app.registry import vetting as registry

    runtime.open_current_db(context.settings())
    try:
        text = csv_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(f"cannot read {csv_file}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows, last_line = [], 1  # (the file line a row starts on, the row): keys span lines
    for row in reader:
        rows.append((last_line + 1, row))
        last_line = reader.line_num
    if not rows or {"email", "org"} - set(reader.fieldnames or ()):
        raise OperatorError(
            f"{csv_file} needs a header row with email, org, product, purl and key_file or key"
        )
    added, bad = 0, []
    with click.progressbar(rows, label="Importing", file=click.get_text_stream("stderr")) as bar:
        for line, row in bar:
            try:
                key = (row.get("key") or "").encode()
                if not key.strip():
                    key = _read_key(csv_file.parent / (row.get("key_file") or "").strip())
                registry.add_by_admin(
                    row["email"],
                    row["org"],
                    key,
                    None,
                    _label(),
                    clock.now(),
                    approve=approve,
                    products=row.get("product") or "",
                    package_urls=row.get("purl") or "",
                )
                added += 1
            except REPORTED as exc:  # a bad row is skipped whole, never half-imported
                bad.append(f"line {line}: {row.get('email') or '(no email)'}: {exc}")
    for problem in bad:
        click.echo(f"forewarn: skipped {problem}", err=True)
    click.echo(f"imported {added} of {len(rows)} registrants")
    if bad:
        raise SystemExit(1)


@registrants.command("list", help="Every registrant and their key.")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def registrants_list(as_json: bool) -> None:
    from app.models import Registrant, User
    from app.registry import vetting as registry

    runtime.open_current_db(context.settings())
    rows = [
        registry.summary(r)
        for r in Registrant.select(Registrant, User).join(User).order_by(Registrant.id)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['id']:>4} {row['status']:<15} {row['email']:<32} {row['org']:<24} "
            f"{row['fingerprint'] or '-'}"
        )


def _decide(registrant_id: str, status: str) -> None:
    from app.registry import vetting as registry

    runtime.open_current_db(context.settings())
    decided = registry.decide(registry.get(registrant_id), status, None, _label(), clock.now())
    click.echo(f"{decided.user.email} is {decided.status}")


@registrants.command("approve", help="Approve (or reinstate) a registrant.")
@click.argument("registrant_id")
def registrants_approve(registrant_id: str) -> None:
    _decide(registrant_id, "approved")


@registrants.command("suspend", help="Suspend an approved registrant: no alerts until reinstated.")
@click.argument("registrant_id")
def registrants_suspend(registrant_id: str) -> None:
    _decide(registrant_id, "suspended")


@registrants.command(
    "answers",
    help="What each approved registrant answered about a vulnerability (its alert): status, "
    "justification, statement, when and how; no_answer for those who stayed silent.",
)
@click.argument("vuln_id")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.option(
    "--status",
    default=None,
    help="only those at this status: affected, not_affected, fixed, under_investigation "
    "or no_answer",
)
def registrants_answers(vuln_id: str, as_json: bool, status: str | None) -> None:
    from app.registry import answers
    from app.vulns import lifecycle

    runtime.open_current_db(context.settings())
    v = lifecycle.get(vuln_id)
    rows = answers.matrix([v], status=status.strip().lower() if status else None)
    if as_json:
        click.echo(json.dumps(answers.as_json(rows), indent=2))
        return
    for row in rows:
        said = row.status + (f" ({row.justification})" if row.justification else "")
        when = f"{row.via} {timefmt.zulu(row.at)}" if row.at else "-"
        click.echo(f"{row.registrant.organisation:<24} {row.email:<32} {said:<40} {when}")
    counted = answers.counts(rows)
    click.echo(
        f"{v.tracking_id}: "
        + ", ".join(f"{n} {s}" for s, n in counted.items() if n or s == answers.NO_ANSWER)
    )
