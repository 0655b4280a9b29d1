"""/healthz and /metrics for the operators: readable from this machine, or by signed-in admins.

A reverse proxy on the same machine connects from loopback too, so a request that carries a
forwarding header is not local, whatever its address (the proxy should also refuse these paths;
see docs/deploy.md).
"""

from functools import wraps

import peewee
import redis
from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask_login import current_user

from app.core import clock
from app.servicekey import public
from app.workers import health, runtime

bp = Blueprint("health", __name__)

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def is_local() -> bool:
    if request.remote_addr not in LOOPBACK:
        return False
    return not any(name in request.headers for name in FORWARDING_HEADERS)


def local_or_admin(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if is_local():
            return view(*args, **kwargs)
        if current_user.is_authenticated and current_user.role == "admin":
            return view(*args, **kwargs)
        abort(403)

    return wrapped


def _redis() -> redis.Redis:
    """A connection of our own with short timeouts: a hung Redis must not hang the check."""
    extensions = current_app.extensions
    if "forewarn.health.redis" not in extensions:
        url = runtime.redis_url(extensions["forewarn.settings"])
        extensions["forewarn.health.redis"] = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2
        )
    return extensions["forewarn.health.redis"]


@bp.errorhandler(peewee.OperationalError)
@bp.errorhandler(peewee.InterfaceError)
def _database_down(error):
    # Raised when the request connects, before the view: still a health answer, not a page.
    if not is_local():
        return Response("unavailable\n", status=503, content_type="text/plain")
    body = {"status": "failing", "failing": ["database"], "checks": {"database": "no connection"}}
    return jsonify(body), 503


@bp.get("/healthz")
@local_or_admin
def healthz():
    settings = current_app.extensions["forewarn.settings"]
    try:
        published = public.read(settings)
    except public.NotPublished:
        published = None
    # The web holds no keyring: the key is judged from what the workers published and report.
    found = health.checks(current_app.extensions["forewarn.db"], _redis(), published, clock.now())
    failing = [c.name for c in found if not c.ok]
    body = {
        "status": "failing" if failing else "ok",
        "failing": failing,
        "checks": {c.name: c.detail for c in found},
    }
    return jsonify(body), 503 if failing else 200


@bp.get("/metrics")
@local_or_admin
def metrics():
    return Response(health.metrics(_redis(), clock.now()), content_type=METRICS_TYPE)
