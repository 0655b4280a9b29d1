"""`forewarn up` supervises the real processes, restarts a dead one and stops without leftovers."""

import os
import signal
import smtplib
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.db, pytest.mark.slow]


def processes_of(instance: Path) -> dict[int, str]:
    """Every live process whose command line or environment names this instance."""
    marker = str(instance).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if marker in cmdline or marker in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return response.status
    except OSError:
        return None


def smtp_greets(host: str, port: int) -> bool:
    try:
        with smtplib.SMTP(host, port, timeout=2) as smtp:
            return smtp.ehlo()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


@pytest.fixture
def service(env, instance_dir, tmp_path):
    """`forewarn up` with a managed redis-server (no FOREWARN_REDIS_URL)."""
    child_env = {k: v for k, v in {**os.environ, **env}.items() if k != "FOREWARN_REDIS_URL"}
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "up"],
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    web_host, web_port = env["FOREWARN_WEB_LISTEN"].split(":")
    intake_host, intake_port = env["FOREWARN_INTAKE_LISTEN"].split(":")
    urls = {
        "login": f"http://{web_host}:{web_port}/login",
        "intake": (intake_host, int(intake_port)),
        "log": log_path,
    }
    try:
        wait_for(lambda: http_status(urls["login"]) == 200, timeout=60, what="the portal")
        wait_for(lambda: smtp_greets(*urls["intake"]), timeout=30, what="the intake")
        yield process, urls
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in processes_of(instance_dir):
            os.kill(pid, signal.SIGKILL)


def test_up_serves_the_portal_and_the_intake_and_prints_how_to_start(service, instance_dir):
    process, urls = service
    host, port = urls["intake"]
    with smtplib.SMTP(host, port, timeout=5) as smtp:
        assert smtp.ehlo()[0] == 250
        smtp.sendmail(
            "reporter@example.org",
            ["security@localhost"],
            b"From: Ada <reporter@example.org>\r\nSubject: Crash in parser\r\n"
            b"Message-ID: <e2e@example.org>\r\n\r\nThe parser crashes.\r\n",
        )
    # The worker processes it and the acknowledgement lands in the dev Maildir.
    maildir = instance_dir / "mail-out" / "new"
    ack = wait_for(
        lambda: maildir.is_dir() and list(maildir.iterdir()), timeout=30, what="the acknowledgement"
    )
    assert b"Subject: Security report SEC-" in ack[0].read_bytes()
    # The portal serves the key and security.txt that `forewarn up` published before it started.
    base = urls["login"].removesuffix("/login")
    assert http_status(f"{base}/key.asc") == 200
    assert http_status(f"{base}/.well-known/security.txt") == 200
    assert (instance_dir / "public" / "security.txt").exists()
    managed = redis.Redis(unix_socket_path=str(instance_dir / "redis.sock"))
    assert managed.ping()
    banner = wait_for(
        lambda: "forewarn test-report" in urls["log"].read_text() and urls["log"].read_text(),
        what="the banner",
    )
    assert "admin create" in banner
    assert urls["login"].removesuffix("/login") in banner or "127.0.0.1" in banner


def test_sigterm_stops_everything_within_ten_seconds(service, instance_dir):
    process, urls = service
    running = processes_of(instance_dir)
    names = " ".join(running.values())
    for component in ("app up", "app web", "app intake", "app worker", "redis-server"):
        assert component in names, f"{component} is not running: {names}"

    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    wait_for(lambda: not processes_of(instance_dir), timeout=3, what="every process to end")
    assert not (instance_dir / "redis.sock").exists()
    assert "forewarn stopped" in urls["log"].read_text()


def test_a_child_that_dies_is_restarted_with_a_log_line(service, instance_dir):
    process, urls = service
    intake = [pid for pid, cmd in processes_of(instance_dir).items() if "app intake" in cmd]
    assert len(intake) == 1
    os.kill(intake[0], signal.SIGKILL)
    wait_for(
        lambda: "intake exited with status -9; restarting" in urls["log"].read_text(),
        what="the restart log line",
    )
    wait_for(
        lambda: any(
            "app intake" in cmd and pid != intake[0]
            for pid, cmd in processes_of(instance_dir).items()
        ),
        what="a new intake process",
    )
    wait_for(lambda: smtp_greets(*urls["intake"]), timeout=30, what="the restarted intake")
    assert process.poll() is None


def run_up(env: dict, extra: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in {**os.environ, **env, **extra}.items()}
    return subprocess.run(
        [sys.executable, "-m", "app", "up"],
        cwd=ROOT,
        env={k: v for k, v in child_env.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_up_without_redis_server_says_how_to_get_it(env, tmp_path, instance_dir):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gpg", "gpgconf", "gpg-agent"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    result = run_up(env, {"PATH": str(bin_dir), "FOREWARN_REDIS_URL": None})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("forewarn: redis-server not found")
    assert "apt-get install redis-server" in lines[-1]
    assert "Traceback" not in result.stderr
    assert not processes_of(instance_dir)


def test_up_with_its_intake_port_taken_names_the_variable(env, instance_dir):
    import socket

    host, port = env["FOREWARN_INTAKE_LISTEN"].split(":")
    with socket.socket() as squatter:
        squatter.bind((host, int(port)))
        squatter.listen()
        result = run_up(env, {})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"forewarn: {host}:{port} is already in use: "
        "stop the program using it or set FOREWARN_INTAKE_LISTEN"
    )
    assert not processes_of(instance_dir)
