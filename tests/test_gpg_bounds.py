"""Every gpg run is bounded in time and in what it may write, and dies with the process that
started it (keys/gpgrun.py): a run past its bound is killed and reported as the module's error,
and a Python process killed in the middle of a gpg run (as gunicorn's timeout kills a web
worker) leaves no gpg running.

A gpg run that never ends is made without tricks: gpg told to read a named pipe that nobody
writes. Waiting for a process to appear or go is polling /proc against a deadline, not a sleep
that decides the outcome."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keys import gpgrun
from keys.errors import CertificateError
from keys.inspect import scratch_gpg
from keys.keyring import KeyringError
from tests import mailcorpus as mc
from tests.conftest import ROOT, wait_for


@pytest.fixture
def fifo(tmp_path) -> str:
    """A named pipe nobody writes: gpg reading it waits for ever."""
    path = tmp_path / "never-written"
    os.mkfifo(path)
    return str(path)


def processes_reading(path: str) -> list[int]:
    """The pids of live processes (not zombies) whose command line names path."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                if path.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    """Whether pid runs: exists and is neither a zombie nor dead (/proc/PID/stat's state)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def gpg_child(parent: int, path: str) -> int | None:
    for pid in processes_reading(path):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent and comm == "gpg":
            return pid
    return None


# -- time -------------------------------------------------------------------------------------


def test_a_gpg_run_past_its_time_bound_is_killed_and_reported(fifo):
    with scratch_gpg(timeout=0.5) as gpg, pytest.raises(CertificateError) as caught:
        gpg.import_keys(b"", extra_args=[fifo])

    assert str(caught.value) == "gpg was stopped: no answer within 0.5 s"
    assert processes_reading(fifo) == []


def test_a_service_keyring_run_past_its_time_bound_is_a_keyring_error(keyring, fifo):
    keyring.gpg.timeout = 0.5

    with pytest.raises(KeyringError, match=r"^gpg was stopped: no answer within 0\.5 s$"):
        keyring.gpg.decrypt(b"", extra_args=[fifo])

    assert processes_reading(fifo) == []


def test_a_direct_gpg_run_past_its_time_bound_is_killed_and_reported(tmp_path, fifo):
    argv = ["gpg", "--homedir", str(tmp_path), "--batch", "--import", fifo]

    with pytest.raises(KeyringError, match=r"^gpg was stopped: no answer within 0\.5 s$"):
        gpgrun.run(argv, error=KeyringError, timeout=0.5, max_output=1024)

    assert processes_reading(fifo) == []


# -- output -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def megabyte_message() -> bytes:
    """A stored (unencrypted) message of 1 MB of zeros, bzip2-compressed: a few hundred bytes."""
    return mc.stored_bzip2_bomb(1_000_000)


def test_a_gpg_run_that_writes_past_its_bound_is_killed_and_reported(megabyte_message):
    with scratch_gpg(max_output=4096) as gpg, pytest.raises(CertificateError) as caught:
        gpg.decrypt(megabyte_message)

    assert str(caught.value) == "gpg was stopped: it wrote more than 4096 bytes on stdout"


def test_a_direct_gpg_run_that_writes_past_its_bound_is_killed(tmp_path, megabyte_message):
    argv = ["gpg", "--homedir", str(tmp_path), "--batch", "--decrypt"]

    with pytest.raises(KeyringError, match="it wrote more than 4096 bytes on stdout"):
        gpgrun.run(argv, input=megabyte_message, error=KeyringError, timeout=30, max_output=4096)
    done = gpgrun.run(
        argv, input=megabyte_message, error=KeyringError, timeout=30, max_output=2**20
    )
    assert done.returncode == 0 and done.stdout == bytes(1_000_000)


# -- a Python process killed in the middle of a gpg run ---------------------------------------

SERVICE_KEYRING = """
import sys
from pathlib import Path
from keys.keyring import ServiceKeyring
if sys.argv[3] == "preexec":
    from keys import gpgrun
    gpgrun.USE_SETPRIV = False
ServiceKeyring(Path(sys.argv[1])).gpg.import_keys(b"", extra_args=[sys.argv[2]])
"""
SCRATCH_HOME = """
import sys
from keys.inspect import scratch_gpg
with scratch_gpg() as gpg:
    gpg.import_keys(b"", extra_args=[sys.argv[2]])
"""


@pytest.mark.parametrize(
    ("script", "how"),
    [(SERVICE_KEYRING, "setpriv"), (SERVICE_KEYRING, "preexec"), (SCRATCH_HOME, "setpriv")],
    ids=["service-keyring", "service-keyring-without-setpriv", "scratch-home"],
)
def test_no_gpg_outlives_a_python_process_killed_with_sigkill(tmp_path, fifo, script, how):
    python = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "gpg"), fifo, how],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
    )
    gpg, home = None, ""
    try:
        started = wait_for(
            lambda: gpg_child(python.pid, fifo) or python.poll() is not None,
            timeout=30,
            what="the gpg child to start",
        )
        assert started is not True and started, "the script ended without starting gpg"
        gpg = started
        argv = Path(f"/proc/{gpg}/cmdline").read_bytes().split(b"\0")
        home = argv[argv.index(b"--homedir") + 1].decode()

        python.send_signal(signal.SIGKILL)  # as gunicorn kills a worker past its timeout
        python.wait()

        wait_for(lambda: not alive(gpg), timeout=30, what=f"gpg {gpg} to die with its parent")
    finally:
        if python.poll() is None:
            python.kill()
            python.wait()
        if gpg is not None and alive(gpg):
            os.kill(gpg, signal.SIGKILL)  # the gpg this test started, by its pid
        if home.startswith("/tmp/fwx"):  # the killed process could not remove its scratch home
            mc.run("rm", "-rf", home)
