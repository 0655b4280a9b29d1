"""`forewarn csaf publish`: build the CSAF provider directory now (app.disclosure.provider),
as the workers do by themselves after a lift, a revision or a key rotation."""

import click

import app.cli.context as context
from app.cli.context import cli
from app.core import clock
from app.workers import runtime


@cli.group(help="The CSAF 2.0 trusted provider (/.well-known/csaf/).")
def csaf() -> None:
    pass


@csaf.command(
    "publish",
    help="Build and sign the provider directory of every published advisory now, with the "
    "service key.",
)
def publish() -> None:
    from app.disclosure import provider, provider_metadata

    settings = context.settings()
    runtime.open_current_db(settings)
    keyring = runtime.service_keyring(settings)
    try:
        summary = provider.publish(keyring, settings, clock.now())
    finally:
        keyring.stop_agent()
    click.echo(
        f"published {summary.documents} CSAF document{'' if summary.documents == 1 else 's'} "
        f"({summary.signed} signed now) "
        f"in {summary.directory}; served at {provider_metadata.metadata_url(settings)}"
    )
    for tracking_id in summary.skipped:
        click.echo(f"left out {tracking_id}: not valid CSAF (see the log)", err=True)
