"""What every command needs: the settings of its environment and the operator it runs for."""

import os

from app.core.config import Settings, load_settings


def settings() -> Settings:
    """The settings from the environment the command runs in."""
    return load_settings()


def operator() -> str:
    """The operator's login name (their uid when there is none), for the audit log."""
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid())
