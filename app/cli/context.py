"""What every command needs: the `forewarn` group it hangs on, the settings of its
environment and the operator it runs for."""

import os

import click

from app.core.config import Settings, load_settings


@click.group(help="Forewarn: a coordinated vulnerability disclosure desk.")
@click.version_option(package_name="forewarn", prog_name="forewarn")
def cli() -> None:
    pass


@cli.group(help="The service's OpenPGP key.")
def key() -> None:
    pass


def settings() -> Settings:
    """The settings from the environment the command runs in."""
    return load_settings()


def operator() -> str:
    """The operator's login name (their uid when there is none), for the audit log."""
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid())
