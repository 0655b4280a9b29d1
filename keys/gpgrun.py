"""Every gpg process Forewarn starts: bounded in time and in what it may write, and killed with
the process that started it.

A gpg run that goes on past its time bound, or writes more than its bound, is killed and the
caller's error (KeyringError, CertificateError) raised. The kernel kills every gpg (and gpgconf)
child when the thread that started it dies (PR_SET_PDEATHSIG, see popen()): a web worker killed
by gunicorn's timeout, or a work horse killed by RQ's, leaves no gpg running on. python-gnupg
(0.5.x) starts its processes in GPG._open_subprocess and drains them in GPG._collect_output;
BoundedGPG overrides the two, so every call python-gnupg makes (import, list, export, sign,
decrypt, verify, gen_key, trust) is bounded the same way. gpg-agent is no child of ours: gpg
starts it as a daemon of its own (the service home's agent is stopped by stop_agent(); scratch
homes' by their cleanup; key inspection starts none).
"""

import ctypes
import functools
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time

import gnupg

# What gpg may write on stderr (status lines and messages) in one run; it writes a few KB.
MAX_STDERR_BYTES = 4 * 1024 * 1024
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


# True: start gpg through util-linux's setpriv when it is installed (it sets the signal, then
# execs gpg); a preexec_fn makes Python fork instead of vfork, which costs ~2.5 ms a run (half
# again an alert's encryption), setpriv ~0.8 ms. False: always the preexec_fn.
USE_SETPRIV = True


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


@functools.cache
def _prctl():
    """libc's prctl, looked up once in the parent (never in the child between fork and exec)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None


def _die_with_parent(prctl, parent: int) -> None:  # pragma: no cover (runs in the child)
    """In the child, before exec: SIGKILL when the thread that started it dies. If the parent
    died already (between fork and here), it would never come: exit now."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def popen(argv: list[str], **options) -> subprocess.Popen:
    """subprocess.Popen(argv) whose process the kernel kills (SIGKILL) when the thread that
    started it dies: through setpriv --pdeathsig, or else a preexec_fn calling prctl (which
    takes no lock, so it is safe with threads). Where neither exists (not Linux), plain."""
    if USE_SETPRIV and _setpriv():
        return subprocess.Popen([_setpriv(), "--pdeathsig", "KILL", "--", *argv], **options)
    prctl = _prctl()
    preexec = functools.partial(_die_with_parent, prctl, os.getpid()) if prctl else None
    return subprocess.Popen(argv, preexec_fn=preexec, **options)


class _Watch:
    """Kills one process when its time is up or when it wrote too much, and says which."""

    def __init__(self, process: subprocess.Popen, timeout: float):
        self.process, self.timeout = process, timeout
        self.why: str | None = None
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(timeout, self.stop, (f"no answer within {timeout:g} s",))
        self._timer.daemon = True
        self._timer.start()

    def stop(self, why: str) -> None:
        with self._lock:
            if self._done or self.why is not None:
                return
            self.why = why
        self.process.kill()

    def finish(self) -> str | None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        if self.process.poll() is None:  # python-gnupg returned early (an exception): no orphan
            self.process.kill()
            self.process.wait()
        return self.why


class _Capped:
    """One of gpg's output pipes, read as python-gnupg reads it, but no further than `cap`
    bytes: past that the process is killed and reading ends."""

    def __init__(self, stream, cap: int, watch: _Watch, name: str):
        self.stream, self.cap, self.watch, self.name = stream, cap, watch, name
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        if self.seen > self.cap:
            return b""
        data = self.stream.read(size if 0 < size <= 65536 else 65536)
        self.seen += len(data)
        if self.seen > self.cap:
            self.watch.stop(f"it wrote more than {self.cap} bytes on {self.name}")
            return b""
        return data

    def close(self) -> None:
        self.stream.close()

    def __getattr__(self, name):
        return getattr(self.stream, name)


class BoundedGPG(gnupg.GPG):
    """python-gnupg's GPG whose every run is bounded: `timeout` seconds, `max_output` bytes on
    stdout (MAX_STDERR_BYTES on stderr). Past either, gpg is killed and `error` raised with a
    one-line message; gpg also dies with the thread that started it."""

    def __init__(self, *, error: type[Exception], timeout: float, max_output: int, **options):
        self.error, self.timeout, self.max_output = error, timeout, max_output
        super().__init__(**options)

    def _open_subprocess(self, args, passphrase=False):
        process = popen(
            self.make_args(args, passphrase),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        watch = _Watch(process, self.timeout)
        process.forewarn_watch = watch
        process.stdout = _Capped(process.stdout, self.max_output, watch, "stdout")
        process.stderr = _Capped(process.stderr, MAX_STDERR_BYTES, watch, "stderr")
        return process

    def _collect_output(self, process, result, writer=None, stdin=None):
        watch = getattr(process, "forewarn_watch", None)
        try:
            returned = super()._collect_output(process, result, writer, stdin)
        finally:
            why = watch.finish() if watch else None
        if why is not None:
            raise self.error(f"gpg was stopped: {why}")
        return returned


def run(
    argv: list[str],
    *,
    error: type[Exception],
    timeout: float,
    max_output: int,
    input: bytes = b"",
) -> subprocess.CompletedProcess:
    """subprocess.run for gpg and gpgconf: `input` on stdin, stdout and stderr read no further
    than max_output and MAX_STDERR_BYTES, all within `timeout` seconds; past either bound the
    process is killed and `error` raised. The child dies with the thread that started it."""
    deadline = time.monotonic() + timeout
    process = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = _exchange(process, input, deadline, max_output, timeout, error)
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            raise error(f"gpg was stopped: no answer within {timeout:g} s") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _exchange(process, data: bytes, deadline: float, max_output: int, timeout: float, error):
    """Write data to the process and read its stdout and stderr, as communicate() does, with
    the bounds of run()."""
    caps = {process.stdout: max_output, process.stderr: MAX_STDERR_BYTES}
    read = {process.stdout: bytearray(), process.stderr: bytearray()}
    view, offset = memoryview(data), 0
    with selectors.DefaultSelector() as selector:
        if data:
            selector.register(process.stdin, selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        for stream in read:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise error(f"gpg was stopped: no answer within {timeout:g} s")
            for key, _ in selector.select(left):
                stream = key.fileobj
                if stream is process.stdin:
                    try:
                        offset += os.write(stream.fileno(), view[offset : offset + 4096])
                    except BrokenPipeError:
                        offset = len(data)  # gpg stopped reading: what it said tells why
                    if offset >= len(data):
                        selector.unregister(stream)
                        stream.close()
                    continue
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    selector.unregister(stream)
                    continue
                read[stream] += chunk
                if len(read[stream]) > caps[stream]:
                    name = "stdout" if stream is process.stdout else "stderr"
                    raise error(
                        f"gpg was stopped: it wrote more than {caps[stream]} bytes on {name}"
                    )
    return bytes(read[process.stdout]), bytes(read[process.stderr])


# -- what gpg reported ---------------------------------------------------------------------------


def said(text: str) -> str:
    """The last line gpg wrote, for a one-line error (its stderr runs to many lines)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    words = [line for line in lines if not line.startswith("[GNUPG:]")]  # not status lines
    return (words or lines)[-1][:200] if lines else "no details"


def status_lines(stderr: str | None) -> dict[str, list[list[str]]]:
    """gpg's status lines (--status-fd, as python-gnupg asks for them): keyword -> arguments."""
    status: dict[str, list[list[str]]] = {}
    for line in (stderr or "").splitlines():
        if line.startswith("[GNUPG:] ") and len(line) > 9:
            keyword, *args = line[9:].split()
            status.setdefault(keyword, []).append(args)
    return status


def without_status(stderr: str) -> str:
    """gpg's messages, without its status lines."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("[GNUPG:]"))
