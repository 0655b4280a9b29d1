"""/healthz and /metrics: what they check and count, and who may read them."""

import re
from datetime import timedelta

import pytest
import redis as redis_lib

from app.accounts import team
from app.core import passwords
from app.models import Delivery, InboundMessage, Publication, User, Vulnerability
from app.workers import health, runtime
from keys.keyring import ServiceKeyring
from tests import keyfactory
from tests.conftest import PASSWORD
from tests.mailcorpus import gpg_in

OUTSIDE = {"REMOTE_ADDR": "203.0.113.5"}
PATHS = ("/healthz", "/metrics")


@pytest.fixture
def outsider(client):
    client.environ_base.update(OUTSIDE)
    return client


def _vuln(tracking_id, at, **fields):
    return Vulnerability.create(
        tracking_id=tracking_id, reported_at=at, created_at=at, updated_at=at, **fields
    )


# -- who may read them ---------------------------------------------------------------------------


def test_localhost_reads_health_and_metrics_without_signing_in(client, keyring, clock):
    assert client.get("/healthz").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")


@pytest.mark.parametrize("path", PATHS)
def test_anonymous_visitors_from_elsewhere_are_refused(outsider, keyring, clock, path):
    assert outsider.get(path).status_code == 403


@pytest.mark.parametrize("path", PATHS)
def test_a_request_forwarded_by_a_local_proxy_is_not_local(client, keyring, clock, path):
    response = client.get(path, headers={"X-Forwarded-For": "203.0.113.5"})
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["registrant", "team"])
def test_signed_in_non_admins_from_elsewhere_are_refused(outsider, auth, keyring, clock, role):
    User.create(
        email="someone@example.com",
        password_hash=passwords.hash_password(PASSWORD),
        role=role,
        session_token=team.new_session_token(),
        created_at=clock.at,
    )
    auth.login("someone@example.com", PASSWORD)
    for path in PATHS:
        assert outsider.get(path).status_code == 403, path


def test_signed_in_admins_read_them_from_anywhere(outsider, auth, admin_user, keyring, clock):
    auth.login(admin_user.email, PASSWORD)
    for path in PATHS:
        assert outsider.get(path).status_code == 200, path


# -- /healthz ------------------------------------------------------------------------------------


def test_healthz_says_ok_when_everything_is(client, keyring, clock):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "redis", "keyring", "queue"}
    assert keyring.fingerprint() in body["checks"]["keyring"]


def test_healthz_names_a_missing_service_key(client, clock):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["keyring"]


def test_healthz_names_redis_when_it_does_not_answer(app, client, keyring, clock):
    app.extensions["forewarn.health.redis"] = redis_lib.Redis(
        unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=1
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["redis"]


def test_healthz_names_the_queue_when_work_waits_too_long(client, keyring, clock):
    InboundMessage.create(raw=b"x", sha256="0" * 64, received_at=clock.at - timedelta(minutes=20))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["queue"]
    assert "inbound message waiting 20m" in body["checks"]["queue"]


def test_a_message_just_received_is_not_lag(client, keyring, clock):
    InboundMessage.create(raw=b"x", sha256="0" * 64, received_at=clock.at - timedelta(minutes=2))
    assert client.get("/healthz").status_code == 200


def test_a_delivery_waiting_for_its_retry_is_not_lag_until_it_is_due(db, clock):
    Delivery.create(
        kind="ack",
        recipient="r@example.com",
        created_at=clock.at - timedelta(hours=3),
        next_attempt_at=clock.at + timedelta(minutes=30),
    )
    assert health.check_queue_lag(clock.at).ok
    late = clock.at + timedelta(minutes=50)
    check = health.check_queue_lag(late)
    assert not check.ok and "delivery waiting 20m" in check.detail


def test_an_expired_service_key_fails_the_check(keyring, clock):
    assert health.check_keyring(keyring, clock.at).ok
    check = health.check_keyring(keyring, clock.at + timedelta(days=3 * 365))
    assert not check.ok
    assert "expired" in check.detail


def _install(settings, secret: bytes) -> ServiceKeyring:
    ring = ServiceKeyring(settings.gnupg_home)
    ring.ensure_home()
    gpg_in(ring.home, "--import", input=secret)
    return ring


def test_healthz_fails_on_an_expired_service_key_and_says_what_to_run(client, settings, clock):
    ring = _install(settings, keyfactory.expired(settings.security_address).secret)
    try:
        runtime.publish(ring, settings)  # as `forewarn init` does: an expired key cannot sign
        response = client.get("/healthz")
    finally:
        ring.stop_agent()
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["keyring"]
    assert "expired 2020-12-31" in body["checks"]["keyring"]
    assert "forewarn key renew" in body["checks"]["keyring"]


def test_an_expired_encryption_subkey_fails_the_check_though_the_primary_lives(settings, clock):
    key = keyfactory.expired_encryption_subkey(settings.security_address)
    ring = _install(settings, key.secret)
    try:
        check = health.check_keyring(ring, clock.at)
    finally:
        ring.stop_agent()
    assert not check.ok
    assert check.detail.startswith(f"{key.fingerprint} expired 2020-12-31")


# -- /metrics ------------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_metrics_count_the_work_and_the_lifts(client, keyring, clock, redis_conn):
    at = clock.at
    InboundMessage.create(raw=b"a", sha256="a" * 64, received_at=at, state="processed")
    InboundMessage.create(raw=b"b", sha256="b" * 64, received_at=at - timedelta(seconds=90))
    for state in ("queued", "sent", "sent"):
        Delivery.create(kind="alert", recipient="r@example.com", state=state, created_at=at)
    published = _vuln(
        "SEC-2026-0001",
        at,
        status="published",
        embargo_until=at - timedelta(hours=1),
        published_at=at - timedelta(hours=1) + timedelta(seconds=30),
    )
    Publication.create(vulnerability=published, lifted_at=at)
    _vuln("SEC-2026-0002", at, status="accepted", embargo_until=at - timedelta(minutes=5))
    _vuln("SEC-2026-0003", at, status="triage", embargo_until=at - timedelta(minutes=5))
    _vuln("SEC-2026-0004", at, status="accepted", embargo_until=at + timedelta(days=5))
    from app.workers import queue

    queue.enqueue(redis_conn, queue.PROCESS_INBOUND, 2, job_id="inbound-2")

    text = client.get("/metrics").get_data(as_text=True)
    samples = _samples(text)
    assert samples['forewarn_rq_queue_length{queue="forewarn-inbound"}'] == 1
    assert samples['forewarn_rq_queue_length{queue="forewarn"}'] == 0
    assert samples['forewarn_rq_scheduled_jobs{queue="forewarn"}'] == 0
    assert samples['forewarn_deliveries{state="sent",kind="alert"}'] == 2
    assert samples['forewarn_deliveries{state="queued",kind="alert"}'] == 1
    assert samples['forewarn_inbound_messages{state="received"}'] == 1
    assert samples['forewarn_inbound_messages{state="processed"}'] == 1
    assert samples["forewarn_intake_messages_received_total"] == 2
    assert samples['forewarn_queue_lag_seconds{work="inbound"}'] == 90
    assert samples["forewarn_publications_pending"] == 1
    assert samples['forewarn_lift_lag_seconds_bucket{le="15"}'] == 0
    assert samples['forewarn_lift_lag_seconds_bucket{le="60"}'] == 1
    assert samples['forewarn_lift_lag_seconds_bucket{le="+Inf"}'] == 1
    assert samples["forewarn_lift_lag_seconds_sum"] == 30
    assert samples["forewarn_lift_lag_seconds_count"] == 1
    assert samples['forewarn_lifts_overdue{status="validated"}'] == 1
    assert samples['forewarn_lifts_overdue{status="unvalidated"}'] == 1


def test_every_metric_family_has_help_and_type(client, keyring, clock):
    text = client.get("/metrics").get_data(as_text=True)
    helped = set(re.findall(r"^# HELP (\w+) ", text, re.M))
    typed = dict(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))
    assert helped == set(typed)
    assert typed["forewarn_intake_messages_received_total"] == "counter"
    assert typed["forewarn_lift_lag_seconds"] == "histogram"
    for name in _samples(text):
        family = re.sub(r"(_bucket|_sum|_count)$", "", name.partition("{")[0])
        assert family in typed, name


def test_metrics_still_answer_without_redis(app, client, keyring, clock):
    app.extensions["forewarn.health.redis"] = redis_lib.Redis(
        unix_socket_path="/nonexistent/redis.sock", socket_connect_timeout=1
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = _samples(response.get_data(as_text=True))
    assert samples["forewarn_redis_up"] == 0
    assert not [name for name in samples if name.startswith("forewarn_rq_")]
    assert samples["forewarn_publications_pending"] == 0
