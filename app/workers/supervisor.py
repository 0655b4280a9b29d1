"""`forewarn up`: web, intake and workers as child processes (and a managed redis-server).

Each child runs in its own process group; one that dies is restarted with a log line; SIGTERM
or Ctrl-C stops every group within 10 seconds, then the managed redis and the gpg-agent.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("forewarn.up")

STOP_GRACE_SECONDS = 8.0
MAX_RESTART_DELAY = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None
    extra: dict = field(default_factory=dict)


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str]):
        self.children = children
        self.env = env
        self.stopping = False

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            child.argv, env=self.env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def _check(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                log.warning("forewarn up: restarting %s", child.name)
                self._start(child)
            return
        status = child.process.poll() if child.process else None
        if status is None:
            return
        _signal_group(child.process, signal.SIGKILL)  # leftovers of the dead child's group
        # Quick deaths back off (1 s, 2 s, 4 s ... 30 s); a child that ran a minute starts over.
        if now - child.started_at > 60:
            child.restarts = 0
        delay = min(2.0**child.restarts, MAX_RESTART_DELAY)
        child.restarts += 1
        log.warning(
            "forewarn up: %s exited with status %s; restarting in %.0fs", child.name, status, delay
        )
        child.restart_at = now + delay

    def run(self, ready: Callable[[], None] | None = None, poll: float = 0.2) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start_all()
        if ready is not None:
            ready()
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)
            time.sleep(poll)
        self.stop_all()

    def stop_all(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("forewarn up: %s did not stop in time; killing it", child.name)
        # Whatever is left in any child's group (gunicorn workers, a work-horse) goes now.
        for child in self.children:
            if child.process is not None:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def component_argv(name: str) -> list[str]:
    return [sys.executable, "-m", "app", name]
