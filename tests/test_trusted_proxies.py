"""FOREWARN_TRUSTED_PROXIES: behind nginx the portal sees the visitor's address, never a forged one.

Rate limits key on request.remote_addr. With no trusted proxy, X-Forwarded-For is ignored; with
N, the address is the Nth entry from the right (the one the nearest trusted proxy appended), so
whatever a client writes in front of it changes nothing.
"""

import pytest

from app.core.config import load_settings
from app.core.errors import ConfigError
from app.web import create_app, ratelimit
from tests.conftest import PASSWORD
from tests.test_web_auth import sign_in

pytestmark = pytest.mark.db

NGINX = {"REMOTE_ADDR": "127.0.0.1"}


def portal(env, proxies: str | None):
    values = dict(env)
    if proxies is not None:
        values["FOREWARN_TRUSTED_PROXIES"] = proxies
    return create_app(load_settings(values), test_config={"TESTING": True})


def attempt(app, forwarded_for: str, number: int) -> int:
    """One failed sign-in (a different unknown account each time, so only the address's
    budget counts) through the proxy; the status code."""
    response = sign_in(
        app.test_client(),
        f"nobody{number}@example.org",
        "wrong " + PASSWORD,
        environ_base=NGINX,
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def exhaust(app, forwarded_for: str) -> None:
    for number in range(ratelimit.LOGIN.attempts):
        assert attempt(app, forwarded_for, number) == 401


def test_the_default_trusts_no_forwarded_for_header(env, db, redis_conn):
    app = portal(env, None)
    assert app.extensions["forewarn.settings"].trusted_proxies == 0
    exhaust(app, "203.0.113.5")

    # Another "visitor" is the same connection from nginx: the header is not believed.
    assert attempt(app, "198.51.100.23", 99) == 429


def test_one_trusted_proxy_gives_each_visitor_their_own_budget(env, db, redis_conn):
    app = portal(env, "1")
    exhaust(app, "203.0.113.5")

    assert attempt(app, "203.0.113.5", 99) == 429
    assert attempt(app, "198.51.100.23", 99) == 401  # someone else is not blocked
    keys = {key.decode() for key in redis_conn.scan_iter("forewarn:ratelimit:*ip:*")}
    assert any("203.0.113.5" in key for key in keys), keys
    assert not any("127.0.0.1" in key for key in keys), "the proxy's address was counted"


def test_a_client_cannot_forge_its_address_in_front_of_the_proxy(env, db, redis_conn):
    app = portal(env, "1")
    # The client wrote a new first entry each time; nginx appended the real address.
    for number in range(ratelimit.LOGIN.attempts):
        assert attempt(app, f"10.0.0.{number}, 203.0.113.5", number) == 401

    assert attempt(app, "10.9.9.9, 203.0.113.5", 99) == 429


def test_health_endpoints_stay_closed_to_forwarded_requests(env, db, redis_conn):
    app = portal(env, "1")
    client = app.test_client()

    # From nginx on loopback, forwarded for a visitor claiming to be local: not local.
    for claimed in ("127.0.0.1", "203.0.113.5"):
        response = client.get("/metrics", environ_base=NGINX, headers={"X-Forwarded-For": claimed})
        assert response.status_code == 403, claimed
    # Straight from this machine, with no proxy in between: local.
    assert client.get("/metrics", environ_base=NGINX).status_code == 200


@pytest.mark.parametrize("value", ["-1", "6", "one", "1.5"])
def test_a_bad_value_is_one_line_that_says_what_to_set(env, value):
    with pytest.raises(ConfigError) as excinfo:
        load_settings({**env, "FOREWARN_TRUSTED_PROXIES": value})

    message = str(excinfo.value)
    assert "\n" not in message
    assert f"FOREWARN_TRUSTED_PROXIES={value!r}" in message
    assert "0 to 5" in message
