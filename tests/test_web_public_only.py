"""The web process never holds the service's secret key: it serves what the workers published
(app.servicekey.public), and keeps working with no GnuPG home in reach at all."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from app.disclosure import wellknown
from app.servicekey import public
from app.workers import health, reconcile
from keys.errors import KeysError
from keys.keyring import ServiceKeyring
from tests.conftest import ROOT, short_tempdir, wait_for
from tests.openpgp import decrypted, run


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def verifies(signed: bytes, certificate: bytes, folder: Path) -> bool:
    cert = folder / f"cert-{len(list(folder.iterdir()))}.asc"
    cert.write_bytes(certificate)
    return run("sqop", "inline-verify", str(cert), input=signed, check=False).returncode == 0


@pytest.fixture
def away():
    """A folder outside the instance, where the test keeps the secret key the web must not
    have (short: gpg-agent's sockets)."""
    folder = short_tempdir("fwa")
    yield folder
    for home in folder.iterdir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def web_alone(env, settings, forewarn, away, tmp_path):
    """`forewarn init` (the key generated and published), then the GnuPG home moved out of the
    instance, then `forewarn web` started: no secret key is anywhere it could look."""
    done = forewarn("init")
    assert done.returncode == 0, done.stderr
    done = forewarn("csaf", "publish")  # the CSAF provider's files, signed where the key is
    assert done.returncode == 0, done.stderr
    moved = away / "gpg"
    settings.gnupg_home.rename(moved)
    assert not settings.gnupg_home.exists()
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "web", "--workers", "1"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://{env['FOREWARN_WEB_LISTEN']}"
    try:
        wait_for(lambda: get(base + "/")[0] == 200, timeout=60, what="the portal")
        yield base, ServiceKeyring(moved), log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.db
@pytest.mark.slow
def test_the_web_process_serves_everything_without_the_secret_key(
    web_alone, settings, tmp_path, clock
):
    base, secret_ring, log_path = web_alone

    assert get(base + "/")[0] == 200
    assert get(base + "/vulnerabilities")[0] == 200
    status, health_body = get(base + "/healthz")
    assert status == 200, health_body
    assert secret_ring.fingerprint().encode() in health_body

    status, certificate = get(base + "/key.asc")
    assert status == 200 and b"BEGIN PGP PUBLIC KEY BLOCK" in certificate
    assert b"PRIVATE KEY" not in certificate
    cert = tmp_path / "key.asc"
    cert.write_bytes(certificate)
    message = run("sqop", "encrypt", str(cert), input=b"a report").stdout
    assert decrypted(secret_ring, message) == b"a report"  # only the key kept away opens it

    status, signed = get(base + "/.well-known/security.txt")
    assert status == 200
    assert b"Contact: mailto:security@localhost" in signed
    folder = tmp_path / "certs"
    folder.mkdir()
    assert verifies(signed, certificate, folder)

    # The CSAF provider's files, signed by the workers (here `forewarn csaf publish`).
    status, metadata = get(base + "/.well-known/csaf/provider-metadata.json")
    assert status == 200, metadata
    [key] = json.loads(metadata)["public_openpgp_keys"]
    assert key["fingerprint"] == secret_ring.fingerprint()
    assert get(base + "/.well-known/csaf/white/index.txt") == (200, b"")
    assert get(base + "/.well-known/csaf/openpgp/" + key["fingerprint"] + ".asc")[1] == certificate

    name = wellknown.wkd_names(settings)[0]  # as gpg-wks-client computes it (test_web_disclosure)
    status, binary = get(f"{base}/.well-known/openpgpkey/hu/{name}")
    assert status == 200
    assert binary == run("sqop", "dearmor", input=certificate).stdout

    # The web never made (or looked into) a GnuPG home of its own: there is none in the
    # instance, and no gpg-agent was started for one.
    assert not settings.gnupg_home.exists()
    assert "Traceback" not in log_path.read_text()


@pytest.mark.db
@pytest.mark.slow
def test_after_a_rotation_the_running_web_serves_the_new_key_and_its_signature(
    web_alone, settings, away, tmp_path, clock
):
    base, old_ring, _ = web_alone
    _, old_certificate = get(base + "/key.asc")

    # The key owner (a worker, or `forewarn key import` where the key lives) publishes the new
    # key; the web is not restarted and never sees either secret key.
    new_ring = ServiceKeyring(away / "gpg2")
    new_ring.generate(settings.security_address)
    public.publish(new_ring, settings, clock.at)

    status, certificate = get(base + "/key.asc")
    assert status == 200 and certificate != old_certificate
    cert = tmp_path / "new.asc"
    cert.write_bytes(certificate)
    message = run("sqop", "encrypt", str(cert), input=b"after the rotation").stdout
    assert decrypted(new_ring, message) == b"after the rotation"

    _, signed = get(base + "/.well-known/security.txt")
    folder = tmp_path / "certs"
    folder.mkdir()
    assert verifies(signed, certificate, folder)
    assert not verifies(signed, old_certificate, folder)
    status, health_body = get(base + "/healthz")
    assert status == 200 and new_ring.fingerprint().encode() in health_body
    assert not settings.gnupg_home.exists()


def test_no_module_of_the_web_reaches_for_the_service_keyring():
    """What the web may know of the service key comes from app.servicekey.public alone."""
    for path in sorted((ROOT / "app" / "web").rglob("*.py")):
        source = path.read_text()
        for word in ("service_keyring", "keys.keyring", "ServiceKeyring", "clearsign"):
            assert word not in source, f"{path.relative_to(ROOT)} uses {word}"


# -- publishing: who writes what the web reads -------------------------------------------------


def test_nothing_published_gives_503_not_a_key_from_elsewhere(client, settings, clock):
    assert public.read(settings) is None
    assert client.get("/key.asc").status_code == 503
    assert client.get("/.well-known/security.txt").status_code == 503
    body = client.get("/healthz").get_json()
    assert body["failing"] == ["keyring"]
    assert "run `forewarn init`" in body["checks"]["keyring"]


def test_init_publishes_the_certificate_and_a_signed_security_txt(forewarn, settings, tmp_path):
    done = forewarn("init")
    assert done.returncode == 0, done.stderr
    published = public.read(settings)
    assert published.fingerprint in done.stdout
    assert public.certificate(settings) == published.certificate
    assert "PRIVATE" not in published.certificate
    folder = tmp_path / "certs"
    folder.mkdir()
    assert verifies(published.security_txt.encode(), published.certificate.encode(), folder)
    names = sorted(p.name for p in settings.public_dir.iterdir())
    assert names == ["security.txt", "service-key.asc", "service-key.json"]
    ServiceKeyring(settings.gnupg_home).stop_agent()


def test_the_reconciler_signs_security_txt_again_each_day_and_only_then(
    settings, keyring, redis_conn, db, clock
):
    public.publish(keyring, settings, clock.at)
    first = public.read(settings)
    assert not public.tick(clock.at + timedelta(hours=1), settings, lambda: keyring)
    assert public.read(settings).signed_at == first.signed_at

    later = clock.move(days=1)
    reconcile._keys_and_data(later, settings, redis_conn)
    renewed = public.read(settings)
    assert renewed.signed_at == later
    assert renewed.security_txt_expires == first.security_txt_expires + timedelta(days=1)
    # ... and the worker left its own check of the secret key for the web.
    report = health.reported_service_key(redis_conn)
    assert report["ok"] and report["fingerprint"] == keyring.fingerprint()


def test_a_new_service_key_is_published_at_the_next_pass(settings, keyring, clock, away):
    public.publish(keyring, settings, clock.at)
    keyring.stop_agent()
    rotated = ServiceKeyring(away / "gpg")
    rotated.generate(settings.security_address)
    assert public.tick(clock.at, settings, lambda: rotated)
    published = public.read(settings)
    assert published.fingerprint == rotated.fingerprint() != keyring.fingerprint()
    assert published.certificate == rotated.export_public()


def test_key_renew_publishes_the_new_expiry_at_once(forewarn, settings):
    assert forewarn("init").returncode == 0
    before = public.read(settings).key_expires
    done = forewarn("key", "renew", "--years", "5")
    assert done.returncode == 0, done.stderr
    after = public.read(settings)
    assert after.key_expires > before + timedelta(days=365)
    assert after.certificate == ServiceKeyring(settings.gnupg_home).export_public()
    ServiceKeyring(settings.gnupg_home).stop_agent()


# -- /healthz from a web without the secret key ------------------------------------------------


def test_healthz_says_what_a_worker_found_wrong_with_the_secret_key(
    client, settings, keyring, redis_conn, clock, away
):
    assert client.get("/healthz").status_code == 200
    # A worker whose GnuPG home holds no key (moved away, unreadable) reports it.
    health.report_service_key(redis_conn, ServiceKeyring(away / "empty"), clock.at)
    response = client.get("/healthz")
    assert response.status_code == 503
    detail = response.get_json()["checks"]["keyring"]
    assert detail.startswith("a worker says: service key not readable")


def test_healthz_fails_when_the_workers_hold_another_key_than_the_one_published(
    client, settings, keyring, redis_conn, clock, away
):
    other = ServiceKeyring(away / "other")
    other.generate(settings.security_address)
    health.report_service_key(redis_conn, other, clock.at)
    response = client.get("/healthz")
    assert response.status_code == 503
    detail = response.get_json()["checks"]["keyring"]
    assert f"publishes {keyring.fingerprint()}" in detail
    assert f"workers hold {other.fingerprint()}" in detail


def test_healthz_fails_once_the_published_security_txt_has_expired(
    client, settings, keyring, clock
):
    public.publish(keyring, settings, clock.at)
    assert client.get("/healthz").status_code == 200
    clock.move(days=200)  # no worker signed it again in all that time
    body = client.get("/healthz").get_json()
    assert body["failing"] == ["keyring"]
    assert "security.txt" in body["checks"]["keyring"]


def test_a_key_that_cannot_sign_is_still_published_but_never_an_unsigned_security_txt(
    client, settings, clock
):
    from tests import keyfactory
    from tests.mailcorpus import gpg_in

    ring = ServiceKeyring(settings.gnupg_home)
    ring.ensure_home()
    gpg_in(ring.home, "--import", input=keyfactory.expired(settings.security_address).secret)
    try:
        with pytest.raises(KeysError):
            public.publish(ring, settings, clock.at)  # gpg refuses to sign with an expired key
    finally:
        ring.stop_agent()
    assert client.get("/key.asc").status_code == 200
    assert client.get("/.well-known/security.txt").status_code == 503
    assert "expired" in client.get("/healthz").get_json()["checks"]["keyring"]


def test_key_import_publishes_the_imported_key(forewarn, settings, away, tmp_path):
    """docs/keys.md, a rotation's step 5: the imported key is what the web serves next."""
    made = ServiceKeyring(away / "made")
    fingerprint = made.generate(settings.security_address)
    secret = tmp_path / "secret.asc"
    exported = subprocess.run(
        ["gpg", "--homedir", str(made.home), "--batch", "--export-secret-keys", "--armor"],
        capture_output=True,
        check=True,
    )
    secret.write_bytes(exported.stdout)
    done = forewarn("key", "import", str(secret))
    assert done.returncode == 0, done.stderr
    published = public.read(settings)
    assert published.fingerprint == fingerprint
    assert published.security_txt.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    ServiceKeyring(settings.gnupg_home).stop_agent()
