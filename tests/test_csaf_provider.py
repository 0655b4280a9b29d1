"""The CSAF 2.0 trusted provider (#18): provider-metadata.json valid against the provider schema
and naming the service key, the directory distribution checked file by file after real lifts
(year folders, index.txt, changes.csv newest first, hashes, signatures verified by Sequoia),
revisions and key rotations re-signed by the workers, and a web that serves it all read-only,
without the secret key, with nothing else reachable."""

import csv
import hashlib
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from app.disclosure import exports, lift, provider
from app.disclosure.exports import fields
from app.models import Vulnerability
from app.servicekey import public
from app.vulns import lifecycle
from app.workers import reconcile
from keys.keyring import ServiceKeyring
from tests.conftest import run_jobs, short_tempdir
from tests.openpgp import run

pytestmark = pytest.mark.db

BASE = "https://security.example.org"
ACTOR = lifecycle.Actor(None, "test")
METADATA = "/.well-known/csaf/provider-metadata.json"
WHITE = "/.well-known/csaf/white/"


@pytest.fixture
def env(env):
    return {**env, "FOREWARN_BASE_URL": BASE, "FOREWARN_CNA_SHORT_NAME": "zephyr"}


def make(settings, at, title: str, until: datetime) -> Vulnerability:
    """An accepted vulnerability under embargo until `until`, written as the team writes one."""
    v = lifecycle.create(title, f"{title}: a crafted frame overflows a buffer.", ACTOR, at,
                         settings, embargo_until=until)  # fmt: skip
    for name, value in (
        ("affected", "zephyr >=3.0 <4.2"),
        ("severity", "CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        ("cwe", "CWE-787"),
    ):
        v = lifecycle.set_field(v, name, value, ACTOR, at)
    return lifecycle.set_status(v, "accepted", ACTOR, at)


def lifted(v: Vulnerability, clock, settings) -> Vulnerability:
    clock.move(seconds=(v.embargo_until - clock.at).total_seconds())
    assert lift.lift(v.id, clock.at, settings) == "lifted"
    return Vulnerability.get_by_id(v.id)


@pytest.fixture
def desk(db, settings, clock, keyring):
    """One lifted in 2026, one in 2027, one still under embargo (until mid-2027)."""
    first = make(settings, clock.at, "Overflow in L2CAP", datetime(2026, 12, 20, 14, tzinfo=UTC))
    second = make(settings, clock.at, "Overflow in ISO-TP", datetime(2027, 1, 12, 14, tzinfo=UTC))
    hidden = make(settings, clock.at, "CANARY-hidden-1", datetime(2027, 6, 1, 14, tzinfo=UTC))
    first, second = lifted(first, clock, settings), lifted(second, clock, settings)
    return first, second, hidden


def get(client, path: str):
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response


def name_of(v: Vulnerability) -> str:
    return fields.csaf_filename(v.tracking_id)


def provider_validator() -> Draft202012Validator:
    folder = resources.files("app.disclosure.exports.schemas").joinpath("csaf-2.0")
    registry = Registry()
    for name in ("csaf_json_schema.json", "provider_json_schema.json"):
        resource = Resource.from_contents(json.loads(folder.joinpath(name).read_text("utf-8")))
        registry = registry.with_resource(resource.id(), resource)
    schema = json.loads(folder.joinpath("provider_json_schema.json").read_text("utf-8"))
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())


def sqop_verify(data: bytes, signature: bytes, certificate: bytes, folder: Path) -> bool:
    folder.mkdir(exist_ok=True)
    sig, cert = folder / "doc.asc", folder / "cert.asc"
    sig.write_bytes(signature)
    cert.write_bytes(certificate)
    return run("sqop", "verify", str(sig), str(cert), input=data, check=False).returncode == 0


def test_the_shipped_provider_schema_is_the_published_one():
    shipped = resources.files("app.disclosure.exports.schemas").joinpath("csaf-2.0")
    root = Path(__file__).resolve().parents[1]
    # ../shared beside the project's root (or beside the folder of its worktrees)
    shared = next(
        (f / "shared/schemas/csaf-2.0" for f in (root.parent, root.parent.parent)
         if (f / "shared/schemas/csaf-2.0").is_dir()),
        None,
    )  # fmt: skip
    if shared is None:
        pytest.skip("no ../shared beside this checkout")
    name = "provider_json_schema.json"
    assert shipped.joinpath(name).read_bytes() == (shared / name).read_bytes()


def test_provider_metadata_is_valid_and_names_the_service_key(client, settings, keyring, desk):
    provider.publish(keyring, settings, datetime(2027, 1, 12, 15, tzinfo=UTC))
    response = get(client, METADATA)
    assert response.mimetype == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    meta = response.get_json()
    errors = sorted(provider_validator().iter_errors(meta), key=str)
    assert not errors, errors[0].message
    # The validator is strict enough to fail (the role is an enum).
    assert list(provider_validator().iter_errors({**meta, "role": "csaf_trusted"}))
    assert meta["role"] == "csaf_trusted_provider"
    assert meta["canonical_url"] == BASE + METADATA
    assert [d["directory_url"] for d in meta["distributions"]] == [BASE + WHITE]
    assert meta["metadata_version"] == "2.0"
    [key] = meta["public_openpgp_keys"]
    assert key["fingerprint"] == keyring.fingerprint()
    assert key["url"].startswith(BASE)
    served = get(client, key["url"].removeprefix(BASE))
    assert served.mimetype == "application/pgp-keys"
    assert served.get_data(as_text=True) == keyring.export_public()
    # The publisher is the documents' own.
    document = exports.document("csaf", desk[0], datetime(2027, 1, 12, 15, tzinfo=UTC), settings)
    assert meta["publisher"] == document["document"]["publisher"]


def test_the_directory_after_two_lifts_file_by_file(client, settings, keyring, desk, tmp_path):
    first, second, hidden = desk
    at = datetime(2027, 1, 12, 15, tzinfo=UTC)
    summary = provider.publish(keyring, settings, at)
    assert (summary.documents, summary.signed, summary.skipped) == (2, 2, ())
    expected = {first: f"2026/{name_of(first)}", second: f"2027/{name_of(second)}"}

    index = get(client, WHITE + "index.txt")
    assert index.mimetype == "text/plain"
    assert index.get_data(as_text=True) == f"{expected[first]}\n{expected[second]}\n"

    certificate = public.read(settings).certificate.encode("ascii")
    dates = {}
    for v, path in expected.items():
        assert name_of(v) == v.tracking_id.lower().replace(" ", "_") + ".json"
        assert path == fields.csaf_path(exports.redaction.public_view(v, at)).removeprefix("white/")
        response = get(client, WHITE + path)
        assert response.mimetype == "application/json"
        data = response.get_data()
        document = json.loads(data)
        assert document == exports.document("csaf", v, at, settings)
        tracking = document["document"]["tracking"]
        assert tracking["id"] == v.tracking_id
        assert path.startswith(tracking["initial_release_date"][:4] + "/")
        dates[path] = tracking["current_release_date"]
        for algorithm in ("sha256", "sha512"):
            hashed = get(client, f"{WHITE}{path}.{algorithm}")
            assert hashed.mimetype == "text/plain"
            digest = hashlib.new(algorithm, data).hexdigest()
            assert hashed.get_data(as_text=True) == f"{digest}  {name_of(v)}\n"
        signature = get(client, f"{WHITE}{path}.asc")
        assert signature.mimetype == "application/pgp-signature"
        folder = tmp_path / v.tracking_id
        assert sqop_verify(data, signature.get_data(), certificate, folder)
        assert not sqop_verify(data + b" ", signature.get_data(), certificate, folder)

    changes = get(client, WHITE + "changes.csv")
    assert changes.mimetype == "text/csv"
    text = changes.get_data(as_text=True)
    assert text.startswith('"2027/')  # no heading, quoted, the latest first
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        [expected[second], dates[expected[second]]],
        [expected[first], dates[expected[first]]],
    ]
    assert dates[expected[second]] == "2027-01-12T14:00:00Z"

    # The ROLIE feed of the same documents (CSAF 2.0, 7.1.15), named in the metadata.
    [distribution] = get(client, METADATA).get_json()["distributions"]
    [listed] = distribution["rolie"]["feeds"]
    assert listed["tlp_label"] == "WHITE"
    feed = get(client, listed["url"].removeprefix(BASE))
    assert feed.mimetype == "application/json"
    feed = feed.get_json()["feed"]
    assert feed["link"] == [{"rel": "self", "href": listed["url"]}]
    assert feed["updated"] == dates[expected[second]]
    assert [e["id"] for e in feed["entry"]] == [second.tracking_id, first.tracking_id]
    for entry, v in zip(feed["entry"], (second, first), strict=True):
        url = BASE + WHITE + expected[v]
        assert entry["content"] == {"type": "application/json", "src": url}
        assert entry["updated"] == dates[expected[v]]
        links = {(link["rel"], link["href"]) for link in entry["link"]}
        assert links == {
            ("self", url),
            ("hash", url + ".sha256"),
            ("hash", url + ".sha512"),
            ("signature", url + ".asc"),
        }
        assert entry["format"]["version"] == "2.0"

    # Folder listings, without a redirect for the missing slash (7.1.6, 7.1.14).
    for folder, shown in (
        ("/.well-known/csaf/", ["provider-metadata.json", "white/", "openpgp/"]),
        ("/.well-known/csaf/white", ["index.txt", "changes.csv", "2026/", "2027/"]),
        ("/.well-known/csaf/white/2026/", [name_of(first), name_of(first) + ".asc"]),
    ):
        page = get(client, folder)
        assert page.mimetype == "text/html"
        for entry in shown:
            assert f">{entry}</a>" in page.get_data(as_text=True), (folder, entry)
    # Nothing of the one still under embargo, anywhere in the tree.
    for path in provider.current(settings).rglob("*"):
        if path.is_file():
            content = path.read_text("utf-8")
            assert "CANARY-hidden" not in content and hidden.tracking_id not in content, path


def test_a_revision_moves_changes_csv_and_the_document_and_only_that_is_signed_again(
    client, settings, keyring, desk, clock, tmp_path
):
    first, second, _ = desk
    provider.publish(keyring, settings, clock.at)
    assert not provider.tick(clock.at, settings, lambda: keyring)  # nothing changed
    kept = get(client, f"{WHITE}2027/{name_of(second)}.asc").get_data()

    edit = clock.move(days=3)
    lifecycle.set_field(first, "title", "Overflow in L2CAP reassembly", ACTOR, edit,
                        reason="a more precise title")  # fmt: skip
    assert provider.tick(edit, settings, lambda: keyring)
    assert not provider.tick(edit + timedelta(minutes=1), settings, lambda: keyring)

    path = f"2026/{name_of(first)}"
    rows = list(csv.reader(io.StringIO(get(client, WHITE + "changes.csv").get_data(as_text=True))))
    assert rows[0] == [path, edit.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert [row[0] for row in rows] == [path, f"2027/{name_of(second)}"]
    data = get(client, WHITE + path).get_data()
    tracking = json.loads(data)["document"]["tracking"]
    assert tracking["version"] == "2"
    assert json.loads(data)["document"]["title"] == "Overflow in L2CAP reassembly"
    assert (
        get(client, f"{WHITE}{path}.sha512")
        .get_data(as_text=True)
        .startswith(hashlib.sha512(data).hexdigest())
    )
    certificate = public.read(settings).certificate.encode("ascii")
    signature = get(client, f"{WHITE}{path}.asc").get_data()
    assert sqop_verify(data, signature, certificate, tmp_path / "revised")
    # The unchanged document kept its signature.
    assert get(client, f"{WHITE}2027/{name_of(second)}.asc").get_data() == kept


def test_a_rotated_key_signs_everything_again(client, settings, keyring, desk, clock, tmp_path):
    provider.publish(keyring, settings, clock.at)
    keyring.stop_agent()
    away = short_tempdir("fwr")
    try:
        rotated = ServiceKeyring(away / "gpg")
        rotated.generate(settings.security_address)
        assert public.tick(clock.at, settings, lambda: rotated)  # the reconciler's order
        assert provider.tick(clock.at, settings, lambda: rotated)
        meta = get(client, METADATA).get_json()
        assert [k["fingerprint"] for k in meta["public_openpgp_keys"]] == [rotated.fingerprint()]
        certificate = rotated.export_public().encode("ascii")
        for line in get(client, WHITE + "index.txt").get_data(as_text=True).split():
            data = get(client, WHITE + line).get_data()
            signature = get(client, f"{WHITE}{line}.asc").get_data()
            assert sqop_verify(data, signature, certificate, tmp_path / line.replace("/", "-"))
        rotated.stop_agent()
    finally:
        subprocess.run(["gpgconf", "--homedir", str(away / "gpg"), "--kill", "all"], check=False)
        shutil.rmtree(away, ignore_errors=True)


def test_the_lift_job_builds_the_directory_and_the_reconciler_keeps_it(
    db, settings, keyring, clock, redis_conn, env, monkeypatch
):
    from app.workers import jobs

    for name, value in env.items():  # the jobs read the worker's environment
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    v = make(settings, clock.at, "Overflow in the shell", clock.at + timedelta(days=1))
    assert provider.current(settings) is None
    clock.move(days=1, seconds=30)
    assert reconcile.run(redis_conn, clock.at) >= 1  # the lift is due: its job is queued
    run_jobs(redis_conn)
    jobs._settings.cache_clear()
    assert Vulnerability.get_by_id(v.id).status == "published"
    index = (provider.current(settings) / "white" / "index.txt").read_text()
    assert index == f"2026/{name_of(v)}\n"
    # A change the web made (no key there) reaches the directory at the reconciler's pass.
    edit = clock.move(hours=2)
    v = Vulnerability.get_by_id(v.id)
    lifecycle.set_field(v, "mitigation", "Disable the shell.", ACTOR, edit)
    reconcile._keys_and_data(edit, settings, redis_conn)
    built = provider.state(settings)
    assert built["documents"][f"2026/{name_of(v)}"]["current_release_date"] == (
        edit.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def test_the_web_serves_the_directory_without_the_secret_key_and_nothing_else(
    client, settings, keyring, desk, clock
):
    assert client.get(METADATA).status_code == 404  # before the first build
    provider.publish(keyring, settings, clock.at)
    keyring.stop_agent()
    hidden = settings.instance.parent / "gpg-away"
    settings.gnupg_home.rename(hidden)  # the web cannot sign, nor needs to
    try:
        assert get(client, METADATA).get_json()["role"] == "csaf_trusted_provider"
        assert get(client, WHITE + "index.txt").get_data(as_text=True).count("\n") == 2
        for path in (
            "/.well-known/csaf/../public/service-key.json",
            "/.well-known/csaf/%2e%2e/service-key.json",
            "/.well-known/csaf/white/..%2f..%2fservice-key.json",
            "/.well-known/csaf/.forewarn-state.json",
            "/.well-known/csaf/white/2026/nothing.json",
            "/.well-known/csaf/white/index.txt~",
            "/.well-known/csaf//etc/passwd",
        ):
            assert client.get(path).status_code == 404, path
        # A link out of the tree, however it got there, is not followed.
        tree = provider.current(settings)
        (tree / "white" / "out.json").symlink_to(settings.public_dir / "service-key.json")
        assert client.get(WHITE + "out.json").status_code == 404
        # Conditional requests.
        first = get(client, WHITE + "changes.csv")
        again = client.get(WHITE + "changes.csv", headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304
    finally:
        hidden.rename(settings.gnupg_home)


def test_security_txt_names_the_provider_metadata(client, settings, keyring):
    text = get(client, "/.well-known/security.txt").get_data(as_text=True)
    assert f"\nCSAF: {BASE}{METADATA}\n" in text


def test_forewarn_csaf_publish_builds_it_on_demand(forewarn, db, settings, keyring, clock):
    # Lifted before the command's (real) clock, which the frozen one does not reach.
    v = lifted(
        make(settings, clock.at, "Overflow", clock.at + timedelta(minutes=1)), clock, settings
    )
    keyring.stop_agent()
    done = forewarn("csaf", "publish")
    assert done.returncode == 0, done.stderr
    assert "published 1 CSAF document (1 signed now)" in done.stdout
    assert f"{BASE}{METADATA}" in done.stdout
    tree = provider.current(settings)
    assert (tree / "white" / "index.txt").read_text() == f"2026/{name_of(v)}\n"
    assert json.loads((tree / "provider-metadata.json").read_text())["role"] == (
        "csaf_trusted_provider"
    )


def test_forewarn_csaf_publish_without_a_key_says_what_to_do(forewarn, db):
    done = forewarn("csaf", "publish")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "forewarn: there is no service key yet: run `forewarn init`"
    ]
