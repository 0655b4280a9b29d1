"""`forewarn export cve|osv|csaf VULN_ID [--embargoed]`: a record as JSON on stdout."""

import json

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock
from app.workers import runtime


@cli.command(
    "export",
    help="Print the CVE JSON 5.1 record, OSV record or CSAF 2.0 advisory of a published "
    "vulnerability (validated against its schema).",
)
@click.argument("kind", type=click.Choice(["cve", "osv", "csaf"]))
@click.argument("vuln_id")
@click.option(
    "--embargoed",
    is_flag=True,
    help="export it even while under embargo, from its private fields (audited)",
)
def export(kind: str, vuln_id: str, embargoed: bool) -> None:
    from app.core import audit
    from app.core.db import write_transaction
    from app.core.errors import Refused
    from app.disclosure import exports, redaction
    from app.vulns import lifecycle

    settings = context.settings()
    runtime.open_current_db(settings)
    v = lifecycle.get(vuln_id)
    at = clock.now()
    view = redaction.public_view(v, at)
    private = embargoed and not isinstance(view, redaction.Published)
    if private:
        document = exports.document_under_embargo(kind, v, at, settings)
    else:
        try:
            document = exports.document(kind, v, at, settings)
        except Refused as exc:
            if isinstance(view, redaction.Placeholder):
                raise Refused(f"{exc} (--embargoed exports it anyway, audited)") from None
            raise
    exports.validate(kind, document, settings)
    if private:
        with write_transaction():
            audit.record(
                None,
                "export.embargoed",
                at,
                target=v.tracking_id,
                details={"kind": kind, "status": v.status},
                actor_label=f"cli:{context.operator()}",
            )
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))
