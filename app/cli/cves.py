"""`forewarn cve ...`: the CNA's blocks, or CVE Services."""

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock
from app.workers import runtime


@cli.group(help="CVE ids: the CNA's blocks, or CVE Services when FOREWARN_CVE_SERVICES_URL is set.")
def cve() -> None:
    pass


@cve.command("import-block", help="Add a block of ids assigned to the CNA (A..B, one year).")
@click.argument("id_range", metavar="CVE-YYYY-FIRST..CVE-YYYY-LAST")
def cve_import_block(id_range: str) -> None:
    from app.vulns import cves

    runtime.open_current_db(context.settings())
    done = cves.import_block(id_range, None, f"cli:{context.operator()}", clock.now())
    click.echo(f"added {done.added} ids ({done.known} already known)")


@cve.command(
    "assign",
    help="Give a vulnerability the next free id; prints the id alone. With --case: every "
    "accepted or fixed vulnerability of its case lacking one, all or none; prints "
    "TRACKING<TAB>CVE-ID per id given.",
)
@click.argument("vuln_id")
@click.option(
    "--case",
    "whole_case",
    is_flag=True,
    help="ids for every accepted or fixed vulnerability of VULN_ID's case lacking one",
)
def cve_assign(vuln_id: str, whole_case: bool) -> None:
    from app.vulns import cve_services, cves, lifecycle

    settings = context.settings()
    services = cve_services.ServicesConfig.from_environ()
    runtime.open_current_db(settings)
    vuln = lifecycle.get(vuln_id)
    by_label = f"cli:{context.operator()}"
    if whole_case:
        done = cves.allocate_case(vuln, None, by_label, clock.now(), services)
        for member, given in done.allocations:
            click.echo(f"{member.tracking_id}\t{given.cve_id}")
        for skipped in done.skipped:
            click.echo(
                f"forewarn: {skipped.vulnerability.tracking_id} skipped: {skipped.reason}", err=True
            )
    else:
        done = cves.allocate(vuln, None, by_label, clock.now(), services)
        click.echo(done.cve.cve_id)
    if done.low:
        click.echo(f"forewarn: warning: {done.warning}", err=True)


@cve.command("retire", help="Reject an unused or unpublished id (at CVE Services too).")
@click.argument("cve_id")
@click.option("--reason", required=True, help="why it is retired (kept with the id)")
def cve_retire(cve_id: str, reason: str) -> None:
    from app.vulns import cve_records, cve_services

    settings = context.settings()
    services = cve_services.ServicesConfig.from_environ()
    runtime.open_current_db(settings)
    row = cve_records.retire(
        cve_id, reason, None, f"cli:{context.operator()}", clock.now(), services
    )
    click.echo(f"{row.cve_id} rejected: {row.reason}")


@cve.command("list", help="Every id held, with its state and vulnerability.")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def cve_list(as_json: bool) -> None:
    import json

    from app.vulns import cve_records

    runtime.open_current_db(context.settings())
    rows = cve_records.inventory()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        reason = f"  ({row['reason']})" if row["reason"] else ""
        click.echo(f"{row['cve_id']:<16} {row['state']:<9} {row['vulnerability'] or '-'}{reason}")


@cve.command("quota", help="Ids left: in the blocks, or in the CVE Services quota.")
def cve_quota() -> None:
    from app.vulns import cve_services, cves

    settings = context.settings()
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
