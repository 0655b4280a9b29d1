"""Patches on advisories: kept byte for byte, named plainly, listed with their sha256, carried
by the version they were attached for; uploaded and removed from the team's alert page."""

import hashlib
import io
import json

import pytest

from app.core.errors import Refused
from app.models import Advisory, AuditEvent, Delivery, Patch
from app.outbox import sending
from app.registry import alerts, vetting
from app.vulns import lifecycle, patches
from mail.transport import SmtpTransport
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, parse, parts_as_sent, run
from tests.smtpsink import SmtpSink

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")
PATCH = b"diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-len\n+min(len, 16)\n"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@patched.example", "Patched PSIRT")


@pytest.fixture
def v(db, clock, settings, maker):
    vetting.add_by_admin(
        maker.address, "Patched Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    v = lifecycle.create("Overflow in x.c", "Details.", CLI, clock.at, settings)
    return lifecycle.set_status(v, "accepted", CLI, clock.at)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/0001-fix.patch", "0001-fix.patch"),
        ("C:\\Users\\me\\fix.diff", "fix.diff"),
        ("fix\x00\x1b[31m.patch", "fix[31m.patch"),
        ("Korrektur für Länge.patch", "Korrektur für Länge.patch"),
    ],
)
def test_file_names_are_cleaned_to_a_plain_name(given, kept):
    assert patches.clean_filename(given) == kept


def test_a_very_long_name_keeps_its_suffix():
    name = patches.clean_filename("a" * 300 + ".patch")
    assert len(name) == 200 and name.endswith(".patch")


def test_empty_oversized_nameless_and_duplicate_patches_are_refused(v, clock):
    with pytest.raises(Refused, match="empty"):
        patches.attach(v, "fix.patch", b"", None, "t", clock.at)
    with pytest.raises(Refused, match="limited to 2 MiB"):
        patches.attach(v, "fix.patch", b"x" * (patches.MAX_BYTES + 1), None, "t", clock.at)
    with pytest.raises(Refused, match="needs a file name"):
        patches.attach(v, "../", PATCH, None, "t", clock.at)
    patches.attach(v, "fix.patch", PATCH, None, "t", clock.at)
    with pytest.raises(Refused, match="already has a patch named fix.patch"):
        patches.attach(v, "fix.patch", PATCH, None, "t", clock.at)


def test_the_draft_lists_each_patch_with_its_sha256_and_the_version_carries_it(v, clock, settings):
    patch = patches.attach(v, "0001-fix.patch", PATCH, None, "t", clock.at)
    assert patch.sha256 == hashlib.sha256(PATCH).hexdigest()
    assert patch.content_type == "text/x-diff"
    assert f"sha256 {patch.sha256}" in alerts.draft(v, settings, 1)
    first = alerts.send(v, None, "t", clock.at, settings)
    assert [p.filename for p in patches.of_advisory(first)] == ["0001-fix.patch"]
    patches.remove(patch, None, "t", clock.at)
    assert "0001-fix.patch" not in alerts.draft(v, settings, 2)
    second = alerts.send(v, None, "t", clock.at, settings)
    assert patches.of_advisory(second) == []
    # The first version still carries it, so a retried delivery sends the same bytes.
    assert [p.filename for p in patches.of_advisory(Advisory.get_by_id(first.id))] == [
        "0001-fix.patch"
    ]
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "patch.attach" in actions and "patch.remove" in actions


def test_the_alert_carries_the_patch_bytes_inside_the_signed_part(
    v, clock, settings, keyring, maker, tmp_path
):
    content = PATCH + bytes(range(256))  # not text: sent as it is
    name = "0001-Bluetooth-Mesh-Provisionierung-prüft-die-Länge-des-öffentlichen-Schlüssels.bin"
    patches.attach(v, name, content, None, "t", clock.at)
    advisory = alerts.send(v, None, "t", clock.at, settings)
    [delivery] = Delivery.select().where(Delivery.advisory == advisory)
    sink = SmtpSink()
    try:
        sending.send(
            delivery.id, keyring, settings, SmtpTransport("127.0.0.1", sink.port), clock.at
        )
        [received] = sink.received
    finally:
        sink.stop()
    secret = tmp_path / "maker.key"
    secret.write_bytes(maker.secret)
    entity = run("sqop", "decrypt", str(secret), input=encrypted_payload(received.data)).stdout
    signed_content = parts_as_sent(entity)[0]
    mixed = parse(signed_content)
    assert mixed.get_content_type() == "multipart/mixed"
    assert mixed.get_param("protected-headers") == "v1"
    assert "Overflow in x.c" in mixed["Subject"]
    text, attachment = mixed.iter_parts()
    assert attachment.get_filename() == name
    assert attachment.get_content_type() == "application/octet-stream"
    assert attachment.get_payload(decode=True) == content
    assert hashlib.sha256(content).hexdigest() in text.get_content()


def test_the_team_attaches_and_removes_patches_on_the_alert_page(
    v, client, auth, admin_user, clock
):
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}/alerts").get_data(as_text=True)
    assert "No patch is attached." in page
    response = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/patches",
        data={"patch-csrf_token": csrf_token(page), "patch-patch": (io.BytesIO(PATCH), "a.patch")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    digest = hashlib.sha256(PATCH).hexdigest()
    assert f"a.patch is attached (sha256 {digest})" in html
    assert f"sha256 {digest}" in html  # in the draft too
    patch = Patch.get()
    response = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/patches/{patch.id}/remove",
        data={"remove-csrf_token": csrf_token(html)},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "a.patch is removed: later versions will not carry it" in html
    assert "No patch is attached." in html
    assert Patch.get_by_id(patch.id).removed


def test_an_upload_without_a_file_says_so(v, client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}/alerts").get_data(as_text=True)
    response = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/patches",
        data={"patch-csrf_token": csrf_token(page)},
        follow_redirects=True,
    )
    assert "No patch was attached: choose a file first." in response.get_data(as_text=True)
    assert Patch.select().count() == 0


def test_advisory_attachments_are_recorded_by_id(v, clock, settings):
    one = patches.attach(v, "one.patch", PATCH, None, "t", clock.at)
    two = patches.attach(v, "two.patch", PATCH + b"+more\n", None, "t", clock.at)
    advisory = alerts.send(v, None, "t", clock.at, settings)
    assert json.loads(advisory.attachments) == [one.id, two.id]
