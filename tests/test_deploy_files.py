"""deploy/: the systemd units parse, start the right `forewarn` command, are hardened, and the
example environment file sets only settings Forewarn knows."""

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
UNITS = {
    "forewarn-web.service": "web",
    "forewarn-intake.service": "intake",
    "forewarn-worker@.service": "worker",
    "forewarn-urgent-worker.service": "worker",
}
ENV_EXAMPLE = DEPLOY / "forewarn.env.example"
HARDENING = {
    "User": "forewarn",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
}


def unit(name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys; the last one wins, as here with strict=False.
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes="#;")
    parser.optionxform = str
    parser.read_string((DEPLOY / name).read_text())
    return parser


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=VALUE: {line!r}"
            values[name.strip()] = value.strip('"')
    return values


def known_settings() -> set[str]:
    """Every FOREWARN_* name the code reads (app/core/config.py and the few modules beside it)."""
    names = set()
    for folder in ("app", "mail", "keys"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"[\"'](FOREWARN_[A-Z0-9_]+)[\"']", path.read_text()))
    return names


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_its_forewarn_command_with_the_environment_file(name):
    service = unit(name)["Service"]
    argv = service["ExecStart"].split()
    assert Path(argv[0]).name == "forewarn"
    assert argv[1] == UNITS[name]
    assert service["EnvironmentFile"].lstrip("-") == "/etc/forewarn/forewarn.env"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_is_hardened_and_writes_only_the_instance(name):
    service = unit(name)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert service["ReadWritePaths"].split() == [env_example()["FOREWARN_INSTANCE"]]
    assert service["CapabilityBoundingSet"] == ""


def test_the_environment_example_sets_only_real_settings():
    values = env_example()
    unknown = sorted(set(values) - known_settings())
    assert unknown == []
    documented = set(re.findall(r"`(FOREWARN_[A-Z0-9_]+)`", (ROOT / "README.md").read_text()))
    assert sorted(set(values) - documented) == []


def test_the_environment_example_loads_as_settings():
    from app.core.config import load_settings

    settings = load_settings(env_example())
    assert settings.intake_protocol == "lmtp"
    assert settings.smtp_relay is not None
    assert settings.https and settings.require_2fa
    assert settings.vendor == "Example Project"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_units(tmp_path):
    """systemd-analyze verify, with ExecStart pointed at this venv's forewarn (it checks that
    the program exists). Unknown keys and bad values are only warnings to it: any output fails."""
    forewarn = Path(sys.executable).parent / "forewarn"
    assert forewarn.exists(), "the project is not installed in this venv"
    (tmp_path / "forewarn.env").write_text(ENV_EXAMPLE.read_text())
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        text = re.sub(r"^ExecStart=\S+", f"ExecStart={forewarn}", text, flags=re.M)
        text = re.sub(
            r"^EnvironmentFile=.*$", f"EnvironmentFile={tmp_path}/forewarn.env", text, flags=re.M
        )
        (tmp_path / name).write_text(text)
    (tmp_path / "forewarn-worker@1.service").symlink_to(tmp_path / "forewarn-worker@.service")
    checked = [str(tmp_path / n.replace("@.", "@1.")) for n in UNITS]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *checked],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "" and done.stdout.strip() == ""
