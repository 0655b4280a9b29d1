"""Registrants see the advisories they received; only approved ones read embargoed text."""

import pytest

from app.models import AuditEvent, Registrant
from app.registry import alerts, vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc

CLI = lifecycle.Actor(None, "test")
SECRET = "use-after-free in the Bluetooth mesh"
PASSWORD = "registrant password 1"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@reader.example", "Reader PSIRT")


@pytest.fixture
def alerted(db, clock, settings, maker):
    registrant = vetting.add_by_admin(
        maker.address, "Reader Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    from app.core import passwords
    from app.models import User

    User.update(password_hash=passwords.hash_password(PASSWORD)).execute()
    v = lifecycle.set_status(
        lifecycle.create(SECRET, "", CLI, clock.at, settings), "accepted", CLI, clock.at
    )
    advisory = alerts.send(v, None, "t", clock.at, settings)
    return Registrant.get_by_id(registrant.id), advisory


def test_an_approved_registrant_reads_the_advisory_and_the_view_is_audited(client, auth, alerted):
    registrant, advisory = alerted
    auth.login(registrant.user.email, PASSWORD)
    listing = client.get("/registry/advisories/").get_data(as_text=True)
    assert f"/registry/advisories/{advisory.id}" in listing
    page = client.get(f"/registry/advisories/{advisory.id}")
    assert page.status_code == 200 and SECRET in page.get_data(as_text=True)
    assert AuditEvent.get(AuditEvent.action == "advisory.view").actor_id == registrant.user_id


@pytest.mark.parametrize("status", ["pending_review", "rejected", "suspended"])
def test_registrants_not_approved_never_reach_embargoed_text(client, auth, alerted, status):
    registrant, advisory = alerted
    auth.login(registrant.user.email, PASSWORD)
    Registrant.update(status=status).execute()
    listing = client.get("/registry/advisories/").get_data(as_text=True)
    assert SECRET not in listing
    assert f'href="/registry/advisories/{advisory.id}"' not in listing
    page = client.get(f"/registry/advisories/{advisory.id}")
    assert page.status_code == 403 and SECRET not in page.get_data(as_text=True)


def test_team_members_and_anonymous_visitors_get_no_registrant_view(
    client, auth, alerted, admin_user
):
    _, advisory = alerted
    assert client.get(f"/registry/advisories/{advisory.id}").status_code == 302  # to sign in
    auth.login(admin_user.email, "correct horse battery staple")
    assert client.get(f"/registry/advisories/{advisory.id}").status_code == 403


def test_admins_see_approved_registrants_whose_key_cannot_be_used(
    client, auth, alerted, admin_user
):
    from app.models import PublicKey

    registrant, _ = alerted
    auth.login(admin_user.email, "correct horse battery staple")
    assert "no usable key" not in client.get("/admin/registrants/").get_data(as_text=True)
    PublicKey.update(usable=False).where(PublicKey.id == registrant.key_id).execute()
    page = client.get("/admin/registrants/").get_data(as_text=True)
    assert "no usable key" in page
    assert "Reader Ltd</a> (psirt@reader.example)" in page


def test_only_an_approved_registrant_sent_the_alert_may_read_it(alerted, clock):
    registrant, advisory = alerted
    assert alerts.may_read(registrant, advisory.id) == advisory
    assert alerts.may_read(registrant, advisory.id + 1) is None  # never sent to them
    Registrant.update(status="suspended").where(Registrant.id == registrant.id).execute()
    assert alerts.may_read(Registrant.get_by_id(registrant.id), advisory.id) is None
