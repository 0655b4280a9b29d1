"""Is the service well, and how much work is waiting: the numbers behind /healthz and /metrics.

No Flask here: the web blueprint (app/web/health.py) passes the database, Redis, what is
published of the service key and the instant in, and turns the results into responses.

The web never holds the service's secret key. It judges the key from what the workers publish
(app/servicekey/public.py) and from what they report: every REPORT_EVERY_SECONDS a worker
checks the secret key itself (check_keyring) and leaves the result in Redis for
REPORT_TTL_SECONDS (report_service_key).
"""

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee
import redis

from app.core import timefmt
from app.disclosure import lift
from app.models import Delivery, InboundMessage, Publication, Vulnerability
from app.servicekey import public
from app.workers import queue
from keys.servicekey import expiry_of

log = logging.getLogger("forewarn.health")

# The reconciler passes every minute: work due longer than this is stuck, not just waiting.
MAX_QUEUE_LAG = timedelta(minutes=15)
KEY_EXPIRY_WARNING = timedelta(days=30)
# A worker's check of the secret key, left in Redis for the web (which cannot make it).
SERVICE_KEY_REPORT = "forewarn:health:service-key"
REPORT_EVERY_SECONDS = 900
REPORT_TTL_SECONDS = 3600
_last_report: dict[str, float] = {}
LIFT_LAG_SAMPLE = 50  # lift lag is measured over the last this many publications
LIFT_LAG_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 21600, 86400)
# Submissions of the report form that filled its hidden field (bots): counted, never stored.
REPORT_TRAPPED = "forewarn:counter:report-trapped"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


# -- /healthz ------------------------------------------------------------------------------------


def check_database(database: peewee.Database) -> Check:
    try:
        database.execute_sql("SELECT 1").fetchone()
    except peewee.PeeweeException as exc:
        return Check("database", False, f"query failed ({type(exc).__name__})")
    return Check("database", True, "ok")


def check_redis(connection: redis.Redis) -> Check:
    try:
        connection.ping()
    except (redis.RedisError, OSError) as exc:
        return Check("redis", False, f"no answer ({type(exc).__name__})")
    return Check("redis", True, "ok")


def check_keyring(keyring, at: datetime) -> Check:
    """A worker's check of the secret key (the web cannot make it): the service key is there,
    readable, and neither it nor a subkey has expired (judged here, not by gpg's clock): an
    expired key cannot sign, nor can anyone encrypt to it."""
    try:
        listing = keyring.describe()
    except Exception as exc:  # no key, an unreadable home, gpg missing: all mean "not usable"
        return Check("keyring", False, f"service key not readable ({type(exc).__name__})")
    return _expiry_check(listing.get("fingerprint", "?"), expiry_of(listing), at)


def _expiry_check(fingerprint: str, ends: datetime | None, at: datetime) -> Check:
    if ends is None:
        return Check("keyring", True, f"{fingerprint}, no expiry")
    if ends <= at:
        return Check(
            "keyring",
            False,
            f"{fingerprint} expired {timefmt.minute(ends)}: run `forewarn key renew`",
        )
    if ends - at < KEY_EXPIRY_WARNING:
        return Check("keyring", True, f"{fingerprint} expires soon: {timefmt.day(ends)}")
    return Check("keyring", True, f"{fingerprint} until {timefmt.day(ends)}")


def report_service_key(connection: redis.Redis, keyring, at: datetime) -> Check:
    """A worker's check of the secret key (check_keyring), left in Redis for the web."""
    check = check_keyring(keyring, at)
    try:
        fingerprint = keyring.fingerprint()
    except Exception:  # noqa: BLE001  (check_keyring has said what is wrong)
        fingerprint = None
    report = {"ok": check.ok, "detail": check.detail, "fingerprint": fingerprint}
    connection.set(
        SERVICE_KEY_REPORT, json.dumps({**report, "at": at.isoformat()}), ex=REPORT_TTL_SECONDS
    )
    return check


def report_tick(at: datetime, settings, connection: redis.Redis, open_keyring) -> bool:
    """The reconciler's call: report_service_key() every REPORT_EVERY_SECONDS in this process
    (per instance: the tests run several in one process)."""
    instance = str(settings.instance)
    last = _last_report.get(instance)
    if last is not None and time.monotonic() - last < REPORT_EVERY_SECONDS:
        return False
    _last_report[instance] = time.monotonic()
    report_service_key(connection, open_keyring(), at)
    return True


def reported_service_key(connection: redis.Redis) -> dict | None:
    """The last worker's report on the secret key, while it holds (None: none, or Redis is
    down, which check_redis reports)."""
    try:
        raw = connection.get(SERVICE_KEY_REPORT)
    except (redis.RedisError, OSError):
        return None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def check_service_key(
    published: public.Published | None, reported: dict | None, at: datetime
) -> Check:
    """The web's check of the service key, from what the workers published and reported: it
    is published, the workers hold the key published, they found it usable, neither the key
    nor the published security.txt has expired."""
    if published is None:
        return Check("keyring", False, "no service key published: run `forewarn init`")
    fingerprint = published.fingerprint
    if reported is not None and not reported.get("ok"):
        return Check("keyring", False, f"a worker says: {reported.get('detail', '?')}")
    if reported is not None and reported.get("fingerprint") not in (None, fingerprint):
        return Check(
            "keyring",
            False,
            f"the web publishes {fingerprint} but the workers hold {reported['fingerprint']}: "
            "run `forewarn init` where the key is (or copy its public/ folder here)",
        )
    check = _expiry_check(fingerprint, published.key_expires, at)
    if not check.ok:
        return check
    if published.security_txt_expires is None or published.security_txt_expires <= at:
        return Check(
            "keyring",
            False,
            f"{fingerprint}: security.txt is not signed (or has expired); the workers sign it "
            "every day: check that they run and that the key can sign",
        )
    return check


def oldest_due_delivery(at: datetime) -> timedelta | None:
    """How long the longest-waiting unsent delivery has been due (None: none is due)."""
    row = (
        Delivery.select(Delivery.created_at, Delivery.next_attempt_at)
        .where(
            (Delivery.state == "queued")
            & (Delivery.next_attempt_at.is_null() | (Delivery.next_attempt_at <= at))
        )
        .order_by(peewee.fn.COALESCE(Delivery.next_attempt_at, Delivery.created_at))
        .first()
    )
    if row is None:
        return None
    return at - (row.next_attempt_at or row.created_at)


def oldest_unprocessed_inbound(at: datetime) -> timedelta | None:
    row = (
        InboundMessage.select(InboundMessage.received_at)
        .where(InboundMessage.state == "received")
        .order_by(InboundMessage.received_at)
        .first()
    )
    return None if row is None else at - row.received_at


def check_queue_lag(at: datetime, limit: timedelta = MAX_QUEUE_LAG) -> Check:
    try:
        lags = {
            "delivery": oldest_due_delivery(at),
            "inbound message": oldest_unprocessed_inbound(at),
        }
    except peewee.PeeweeException as exc:
        return Check("queue", False, f"cannot read the queues ({type(exc).__name__})")
    late = [f"{what} waiting {_duration(lag)}" for what, lag in lags.items() if lag and lag > limit]
    if late:
        return Check("queue", False, "; ".join(late))
    return Check("queue", True, "ok")


def checks(
    database, connection: redis.Redis, published: public.Published | None, at: datetime
) -> list[Check]:
    """What /healthz checks; `published`: app.servicekey.public.read() (the web holds no
    keyring)."""
    service_key = check_service_key(published, reported_service_key(connection), at)
    found = [check_database(database), check_redis(connection), service_key]
    if found[0].ok:
        found.append(check_queue_lag(at))
    else:
        found.append(Check("queue", False, "unknown: no database"))
    return found


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


# -- /metrics ------------------------------------------------------------------------------------


class Exposition:
    """Prometheus text exposition format 0.0.4: HELP and TYPE once per family, then samples."""

    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for sample in samples:
            suffix, labels, value = sample if len(sample) == 3 else ("", *sample)
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    if isinstance(value, float) and value == float("inf"):
        return "+Inf"
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _counts(model, *fields) -> list[tuple[dict, int]]:
    rows = model.select(*fields, peewee.fn.COUNT(peewee.SQL("*")).alias("n")).group_by(*fields)
    return [({f.name: getattr(r, f.name) for f in fields}, r.n) for r in rows]


def lift_lags(limit: int = LIFT_LAG_SAMPLE) -> list[float]:
    """Seconds between the embargo's end and the publication, for the last `limit` published
    vulnerabilities (an early lift counts as 0)."""
    rows = (
        Vulnerability.select(Vulnerability.published_at, Vulnerability.embargo_until)
        .where(
            Vulnerability.status == "published",
            Vulnerability.published_at.is_null(False),
            Vulnerability.embargo_until.is_null(False),
        )
        .order_by(Vulnerability.published_at.desc())
        .limit(limit)
    )
    return [max(0.0, (r.published_at - r.embargo_until).total_seconds()) for r in rows]


def _histogram(values: list[float], buckets=LIFT_LAG_BUCKETS) -> list[tuple]:
    samples = [("_bucket", {"le": str(b)}, sum(1 for v in values if v <= b)) for b in buckets]
    samples.append(("_bucket", {"le": "+Inf"}, len(values)))
    samples.append(("_sum", {}, float(sum(values))))
    samples.append(("_count", {}, len(values)))
    return samples


def metrics(connection: redis.Redis, at: datetime) -> str:
    """The metrics page. The database must be connected; Redis may be down (then its families
    are left out and forewarn_redis_up is 0)."""
    out = Exposition()
    try:
        counts = [
            (
                {"queue": work.name},
                work.count,
                work.scheduled_job_registry.count,
                work.failed_job_registry.count,
            )
            for work in queue.worker_queues(connection)
        ]
        trapped = int(connection.get(REPORT_TRAPPED) or 0)
        redis_up = 1
    except (redis.RedisError, OSError) as exc:
        log.warning("metrics: Redis unavailable (%s)", type(exc).__name__)
        redis_up = 0
    out.family("forewarn_redis_up", "gauge", "Whether Redis answered.", [({}, redis_up)])
    if redis_up:
        out.family(
            "forewarn_rq_queue_length",
            "gauge",
            "Jobs waiting in the RQ queue.",
            [(q, depth) for q, depth, _, _ in counts],
        )
        out.family(
            "forewarn_rq_scheduled_jobs",
            "gauge",
            "Jobs scheduled for later.",
            [(q, scheduled) for q, _, scheduled, _ in counts],
        )
        out.family(
            "forewarn_rq_failed_jobs",
            "gauge",
            "Jobs in RQ's failed registry.",
            [(q, failed) for q, _, _, failed in counts],
        )
        out.family(
            "forewarn_report_form_trapped_total",
            "counter",
            "Report form submissions that filled the hidden field (bots); nothing was stored.",
            [({}, trapped)],
        )

    deliveries = _counts(Delivery, Delivery.state, Delivery.kind)
    out.family("forewarn_deliveries", "gauge", "Outgoing deliveries by state and kind.", deliveries)
    inbound = _counts(InboundMessage, InboundMessage.state)
    out.family("forewarn_inbound_messages", "gauge", "Inbound messages by state.", inbound)
    out.family(
        "forewarn_intake_messages_received_total",
        "counter",
        "Messages the intake has stored, in total.",
        [({}, sum(n for _, n in inbound))],
    )
    lag_delivery = oldest_due_delivery(at)
    lag_inbound = oldest_unprocessed_inbound(at)
    out.family(
        "forewarn_queue_lag_seconds",
        "gauge",
        "Age of the oldest due unsent delivery and of the oldest unprocessed inbound message.",
        [
            ({"work": "delivery"}, (lag_delivery or timedelta()).total_seconds()),
            ({"work": "inbound"}, (lag_inbound or timedelta()).total_seconds()),
        ],
    )
    pending = Publication.select().where(Publication.state == "pending").count()
    out.family(
        "forewarn_publications_pending",
        "gauge",
        "Lifted vulnerabilities with a publication step still to do.",
        [({}, pending)],
    )
    out.family(
        "forewarn_lift_lag_seconds",
        "histogram",
        f"Publication time minus embargo end, last {LIFT_LAG_SAMPLE} published vulnerabilities.",
        _histogram(lift_lags()),
    )
    overdue = lift.due(at)
    out.family(
        "forewarn_lifts_overdue",
        "gauge",
        "Vulnerabilities whose embargo has ended but which are not published "
        "(unvalidated ones are held for the team).",
        [
            (
                {"status": "validated"},
                overdue.where(Vulnerability.status.in_(lift.LIFTABLE)).count(),
            ),
            (
                {"status": "unvalidated"},
                overdue.where(Vulnerability.status.in_(lift.UNVALIDATED)).count(),
            ),
        ],
    )
    return out.text()
