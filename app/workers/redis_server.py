"""A redis-server that Forewarn starts and stops itself when FOREWARN_REDIS_URL is unset.

It listens on a unix socket in the instance only (no TCP port) and keeps an append-only file,
though nothing in it must survive: the database is the source of truth.
"""

import shutil
import subprocess
import time
from pathlib import Path

from app.core.errors import OperatorError


class ManagedRedis:
    def __init__(self, instance: Path):
        self.socket = instance / "redis.sock"
        self.data_dir = instance / "redis"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise OperatorError(
                "redis-server not found: install it (apt-get install redis-server), run "
                "`make run`, or set FOREWARN_REDIS_URL to an existing Redis"
            )
        if len(str(self.socket)) > 100:
            raise OperatorError(
                f"the socket path {self.socket} is too long for a unix socket; "
                "use a shorter FOREWARN_INSTANCE"
            )
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None:
                raise OperatorError(
                    f"redis-server exited at start (see {self.data_dir / 'redis.log'}); "
                    "or set FOREWARN_REDIS_URL to an existing Redis"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise OperatorError(f"redis-server did not open {self.socket} within {timeout}s")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.socket.unlink(missing_ok=True)
