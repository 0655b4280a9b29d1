"""The team writes and sends an alert from a vulnerability and follows its deliveries."""

import re

import pytest

from app.models import Advisory, Delivery
from app.registry import vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token

CLI = lifecycle.Actor(None, "test")


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter("psirt@alerted.example", "Alerted PSIRT")


@pytest.fixture
def ready(db, clock, settings, maker, client, auth, admin_user):
    vetting.add_by_admin(
        maker.address, "Alerted Ltd", maker.cert, None, "t", clock.at, approve=True
    )
    v = lifecycle.create("Overflow", "Details here.", CLI, clock.at, settings)
    auth.login(admin_user.email, PASSWORD)
    return v


def test_the_form_is_prefilled_and_sending_shows_the_progress(client, ready):
    v = lifecycle.set_status(ready, "accepted", CLI, ready.reported_at)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}/alerts")
    html = page.get_data(as_text=True)
    assert "Embargo: until" in html and "Details here." in html  # the draft
    response = client.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts",
        data={"csrf_token": csrf_token(html), "text": "The advisory text."},
        follow_redirects=True,
    )
    body = response.get_data(as_text=True)
    assert f"{v.tracking_id} v1 is queued to 1 registrant;" in body
    assert re.search(r"<dt>Queued</dt><dd>1</dd>", body)
    assert '<meta http-equiv="refresh" content="5">' in body  # until every delivery ended
    assert Advisory.get().text == "The advisory text."
    Delivery.update(state="sent").execute()
    done = client.get(f"/team/vulnerabilities/{v.tracking_id}/alerts/v1").get_data(as_text=True)
    assert "http-equiv" not in done and "Every delivery has ended." in done


def test_a_new_vulnerability_cannot_be_alerted(client, ready):
    page = client.get(f"/team/vulnerabilities/{ready.tracking_id}/alerts").get_data(as_text=True)
    response = client.post(
        f"/team/vulnerabilities/{ready.tracking_id}/alerts",
        data={"csrf_token": csrf_token(page), "text": "x"},
    )
    assert "No alert was sent" in response.get_data(as_text=True)
    assert Advisory.select().count() == 0
