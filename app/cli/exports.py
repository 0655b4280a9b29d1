"""`forewarn export cve|osv|csaf VULN_ID [--embargoed]`: a record as JSON on stdout; and
`forewarn preflight [VULN_ID]`: what the lift would publish wrong, checked beforehand."""

import json

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock, timefmt
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


@cli.command(
    "preflight",
    help="Check, as the pre-flight before a lift does, every document the lift will publish: "
    "of VULN_ID, or of every accepted or fixed vulnerability still under embargo. Exit 1 if "
    "anything needs fixing.",
)
@click.argument("vuln_id", required=False)
def preflight_command(vuln_id: str | None) -> None:
    from app.core.errors import Refused
    from app.disclosure import preflight
    from app.vulns import lifecycle

    settings = context.settings()
    runtime.open_current_db(settings)
    at = clock.now()
    if vuln_id is not None:
        v = lifecycle.get(vuln_id)
        if v.status not in preflight.LIFTABLE or v.embargo_until is None:
            raise Refused(
                f"{v.tracking_id} is {v.status}{'' if v.embargo_until else ', with no embargo end'}"
                ": no lift to prepare (only accepted or fixed ones with an embargo end have one)"
            )
        rows = [v]
    else:
        rows = list(preflight.awaiting(at))
    wrong = 0
    for v in rows:
        findings = preflight.check(v, at, settings)
        lift_at = timefmt.minute(v.embargo_until)
        if not findings:
            click.echo(f"{v.tracking_id} (lift {lift_at}): all clear")
            continue
        wrong += 1
        click.echo(f"{v.tracking_id} (lift {lift_at}): {len(findings)} to fix")
        for finding in findings:
            click.echo(f"  {finding.line()}")
            if finding.detail:
                click.echo(f"    ({finding.detail})")
    if not rows:
        click.echo("no lift to prepare: no accepted or fixed vulnerability under embargo")
    if wrong:
        raise SystemExit(1)
