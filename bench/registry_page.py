"""The admins' registry list benchmark: /admin/registrants/ with 1,000 registrants against the
same page with 10, in the same run. A script that prints numbers; it asserts nothing. See
bench/README.md.

Everything runs as real processes in a throwaway folder under /tmp: one redis-server on a unix
socket, and two instances side by side, each made by `python -m app init` with an admin made by
`python -m app admin create`, served by its own `python -m app web --workers 1` (gunicorn). The
registrants are inserted with peewee bulk inserts into the app's own models (a few shared key
rows, no GnuPG). A client in this process signs in to each as the admin would (the login form,
its CSRF token, the session cookie), then GETs the list from one and the other in turn.
All the processes, and the folder, are removed at the end, also on error or Ctrl-C.
"""

import argparse
import hashlib
import http.cookiejar
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

from common import ROOT, Bench, free_port, run_benchmark, wait_for

sys.path.insert(0, str(ROOT))

GOAL_RATIO = 1.3  # median time with 1,000 / with 10
GOAL_BYTES = 300 * 1024  # the list page with 1,000 registrants
LIST = "/admin/registrants/"
ADMIN, PASSWORD = "admin@bench.example", "a benchmark password"


# -- the data ------------------------------------------------------------------------------------


def insert_registrants(count: int, at: datetime) -> None:
    """count registrants through peewee bulk inserts: one in ten waiting for review, a few
    suspended, unverified or rejected, the rest approved; three shared key rows (usable, expiring
    in 10 days, unusable) and encryption expiries spread over the next two years."""
    from app.core.db import write_transaction
    from app.models import PublicKey, Registrant, User

    keys = [
        PublicKey.create(fingerprint="0" * 40, armored="-", created_at=at),
        PublicKey.create(
            fingerprint="1" * 40, armored="-", expires=at + timedelta(days=10), created_at=at
        ),
        PublicKey.create(fingerprint="2" * 40, armored="-", usable=False, created_at=at),
    ]
    users, registrants = [], []
    for n in range(1, count + 1):
        status = "pending_review" if n % 10 == 0 else "approved"
        status = {1: "unverified", 3: "suspended", 7: "rejected"}.get(n % 20, status)
        key = None if status == "unverified" else keys[0 if n % 7 else 1 + n % 2]
        users.append(
            {
                "email": f"psirt{n}@maker{n}.example",
                "password_hash": "!unset",
                "role": "registrant",
                "session_token": f"bench-{n}",
                "created_at": at,
            }
        )
        registrants.append(
            {
                "organisation": f"Maker {n:04d} Devices",
                "products": f"Gateway {n}",
                "justification": "We ship the project in our gateways.",
                "status": status,
                "key": key.id if key else None,
                "pinned_fingerprint": (
                    hashlib.sha256(f"{n}".encode()).hexdigest()[:40].upper() if key else None
                ),
                "encryption_expires": at + timedelta(days=n % 730) if key else None,
                "policy_version": "2026-11",
                "policy_agreed_at": at,
                "created_at": at - timedelta(minutes=n),
                "updated_at": at,
            }
        )
    with write_transaction():
        for first in range(0, count, 200):
            User.insert_many(users[first : first + 200]).execute()
        ids = dict(User.select(User.email, User.id).where(User.role == "registrant").tuples())
        for row, user in zip(registrants, users, strict=True):
            row["user"] = ids[user["email"]]
        for first in range(0, count, 200):
            Registrant.insert_many(registrants[first : first + 200]).execute()


# -- the HTTP client -----------------------------------------------------------------------------


class Admin:
    """A signed-in admin's browser, as far as the benchmark needs one: cookies and forms."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, bytes]:
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.status, response.read()

    def sign_in(self) -> None:
        _, page = self.get("/login")
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page)
        if token is None:
            token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        if token is None:
            raise RuntimeError("the login page has no CSRF token")
        form = {"csrf_token": token.group(1).decode(), "email": ADMIN, "password": PASSWORD}
        data = urllib.parse.urlencode({**form, "code": ""}).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=60) as response:
            response.read()
        status, _ = self.get(LIST)
        if status != 200:
            raise RuntimeError(f"signing in as {ADMIN} failed: {LIST} answered {status}")

    def timed(self, path: str) -> tuple[float, int]:
        began = time.perf_counter()
        status, body = self.get(path)
        elapsed = time.perf_counter() - began
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
        return elapsed, len(body)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http only)
            return response.status == 200
    except OSError:
        return False


# -- the benchmark -------------------------------------------------------------------------------


class RegistryBench(Bench):
    name = "registry page"
    title = "registry page benchmark"

    def __init__(self, args):
        super().__init__(args, prefix="fwr")
        self.sizes = (args.small, args.registrants)
        self.envs: dict[int, dict[str, str]] = {}
        for size in self.sizes:
            instance = self.folder / f"i{size}"
            port = free_port()
            self.envs[size] = {
                **self.env,
                "FOREWARN_INSTANCE": str(instance),
                "FOREWARN_DATABASE_URL": f"sqlite:///{instance / 'forewarn.db'}",
                "FOREWARN_WEB_LISTEN": f"127.0.0.1:{port}",
                "FOREWARN_BASE_URL": f"http://127.0.0.1:{port}",
            }
        self.inserted = 0.0

    def setup(self) -> None:
        from app.core import db as app_db
        from app.core.config import load_settings
        from app.models import database as database_proxy

        self.start_redis()
        password = self.folder / "password"
        password.write_text(PASSWORD + "\n")
        now = datetime.now(UTC)
        for size, env in self.envs.items():
            self.forewarn("init", **env)
            self.forewarn("admin", "create", ADMIN, "--password-file", str(password), **env)
            database = app_db.open_database(load_settings(env).database_url)
            started = time.perf_counter()
            with database.connection_context():
                insert_registrants(size, now)
            self.inserted += time.perf_counter() - started
            database.close()
            database_proxy.initialize(None)
        for size, env in self.envs.items():
            argv = [sys.executable, "-m", "app", "web", "--workers", "1"]
            self.procs.start(f"web{size}", argv, env)
            url = env["FOREWARN_BASE_URL"] + "/login"
            try:
                wait_for(lambda url=url: answers(url), 60, f"the web portal with {size}")
            except RuntimeError:
                tail = self.procs.tail(f"web{size}")
                raise RuntimeError(f"the web portal did not start:\n{tail}") from None

    def measure(self) -> None:
        a = self.args
        small, large = self.sizes
        admins = {size: Admin(env["FOREWARN_BASE_URL"]) for size, env in self.envs.items()}
        for admin in admins.values():
            admin.sign_in()
        for _ in range(a.warmup):
            for admin in admins.values():
                admin.timed(LIST)
        times: dict[int, list[float]] = {size: [] for size in self.sizes}
        sizes: dict[int, int] = {}
        # One request to each in turn, so that a noisy moment on a shared machine hits both.
        for _ in range(a.requests):
            for size, admin in admins.items():
                elapsed, sizes[size] = admin.timed(LIST)
                times[size].append(elapsed)
        median = {size: statistics.median(times[size]) for size in self.sizes}
        for size in self.sizes:
            spread = sorted(times[size])
            self.row(
                f"GET {LIST} with {size} registrants ({sizes[size] / 1024:.0f} KiB)",
                f"median {median[size] * 1000:6.1f} ms  min {spread[0] * 1000:6.1f} ms"
                f"  max {spread[-1] * 1000:6.1f} ms",
            )
        ratio = median[large] / median[small]
        verdict = "PASS" if ratio <= GOAL_RATIO else "MISS"
        self.row(
            f"ratio {large} / {small} registrants", f"{ratio:7.2f}", f"<= {GOAL_RATIO}", verdict
        )
        self.figure(
            f"GET {LIST}, {large} vs {small} registrants, median",
            median[large] * 1000,
            "ms",
            f"<= {GOAL_RATIO}",
            verdict,
            baseline=median[small] * 1000,
            ratio=ratio,
        )
        fits = sizes[large] < GOAL_BYTES
        self.row(
            f"page size with {large} registrants",
            f"{sizes[large] / 1024:7.1f} KiB",
            f"< {GOAL_BYTES // 1024} KiB",
            "PASS" if fits else "MISS",
        )
        self.figure(
            f"{LIST} size with {large} registrants",
            sizes[large] / 1024,
            "KiB",
            f"< {GOAL_BYTES // 1024} KiB",
            "PASS" if fits else "MISS",
        )
        for path in (f"{LIST}?q=maker+0420", f"{LIST}?page=10", f"{LIST}?health=expiring"):
            spent = [admins[large].timed(path)[0] for _ in range(a.warmup)]
            self.row(
                f"GET {path} with {large}", f"median {statistics.median(spent) * 1000:6.1f} ms"
            )
        self.notes.append(
            f"{small} and {large} registrants inserted in {self.inserted:.1f} s in two instances "
            f"(peewee bulk inserts; 1 in 10 waiting for review, some suspended, unverified or "
            f"rejected); each served by `python -m app web --workers 1` (gunicorn); one signed-in "
            f"admin client with urllib in this process; {a.warmup} warm-up requests each, then "
            f"{a.requests} requests to each, one to the one and one to the other in turn; "
            f"the median time to the whole page. The list shows {50} rows a page."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrants", type=int, default=1000, help="the large registry")
    parser.add_argument("--small", type=int, default=10, help="the small registry")
    parser.add_argument("--requests", type=int, default=300, help="requests to each, in turn")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per size")
    parser.add_argument("--keep", action="store_true", help="keep the folder (and its logs)")
    args = parser.parse_args()
    return run_benchmark(lambda: RegistryBench(args))


if __name__ == "__main__":
    sys.exit(main())
