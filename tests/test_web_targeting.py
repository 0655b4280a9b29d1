"""Targeting by product in the portal (#17): the team's preview before a narrowed alert, and the
registrant's own products on their status page."""

import html as entities
import json
import re

import pytest

from app.core import passwords
from app.models import Advisory, AuditEvent, Delivery, Registrant, User
from app.registry import vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token

CLI = lifecycle.Actor(None, "test")


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@w{n}.example", f"Maker {n}") for n in range(4)]


@pytest.fixture
def registrants(db, clock, makers):
    """Makers 0 and 1 ship zephyr, maker 2 ships routers, maker 3 (zephyr) awaits review."""
    declared = [
        ("", "pkg:github/zephyrproject-rtos/zephyr"),
        ("Zephyr gateways", ""),
        ("Routers", "pkg:deb/debian/openssl"),
        ("Zephyr boards", ""),
    ]
    return [
        vetting.add_by_admin(
            m.address,
            f"Maker {n}",
            m.cert,
            None,
            "t",
            clock.at,
            approve=n < 3,
            products=declared[n][0],
            package_urls=declared[n][1],
        )
        for n, m in enumerate(makers)
    ]


@pytest.fixture
def v(db, clock, settings):
    v = lifecycle.create("Overflow", "Details here.", CLI, clock.at, settings)
    v = lifecycle.set_field(v, "affected", "zephyr <4.2", CLI, clock.at)
    return lifecycle.set_status(v, "accepted", CLI, clock.at)


@pytest.fixture
def team(client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    return client


def html_of(response) -> str:
    return response.get_data(as_text=True)


def narrowed_preview(client, v, text="The advisory text."):
    page = html_of(client.get(f"/team/vulnerabilities/{v.tracking_id}/alerts"))
    return client.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts",
        data={"csrf_token": csrf_token(page), "text": text, "audience": "matching"},
    )


def confirmation(html: str) -> dict:
    """The preview form's fields as the browser would send them with nothing ticked."""
    return {
        "csrf_token": csrf_token(html),
        "text": entities.unescape(
            re.search(r'name="text" type="hidden" value="([^"]*)"', html).group(1)
        ),
        "shown": entities.unescape(
            re.search(r'name="shown" type="hidden" value="([^"]*)"', html).group(1)
        ),
    }


def test_narrowing_shows_who_gets_it_and_who_does_not_before_anything_is_sent(team, v, registrants):
    response = narrowed_preview(team, v)
    html = html_of(response)
    assert response.status_code == 200
    assert "Nothing is sent yet: check who gets it and who is left out" in html
    recipients = html[html.index('id="recipients"') : html.index('id="left-out"')]
    assert "Maker 0 &lt;psirt@w0.example&gt;" in recipients
    assert "Maker 1 &lt;psirt@w1.example&gt;" in recipients and "declares zephyr" in recipients
    left_out = html[html.index('id="left-out"') :]
    assert "Will NOT receive it (1 approved registrant)" in left_out
    assert f'<input type="checkbox" name="add" value="{registrants[2].id}"' in left_out
    assert "Maker 2 &lt;psirt@w2.example&gt; declares: Routers (pkg:deb/debian/openssl)" in (
        re.sub(r"\s+", " ", left_out)
    )
    assert "Maker 3" not in html  # not approved: never an alert recipient
    assert Advisory.select().count() == 0 and Delivery.select().count() == 0


def test_confirming_sends_to_the_list_and_the_progress_page_names_who_was_left_out(
    team, v, registrants
):
    text = 'The advisory "text" & <more>\non two lines.'
    html = html_of(narrowed_preview(team, v, text))
    assert '<pre class="text">The advisory &#34;text&#34; &amp; &lt;more&gt;' in html
    response = team.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/confirm",
        data=confirmation(html),
        follow_redirects=True,
    )
    body = html_of(response)
    assert f"{v.tracking_id} v1 is queued to 2 of 3 approved registrants (1 left out" in body
    assert re.search(
        r"sent to 2 of 3 approved registrants;\s+left out: Maker 2 &lt;psirt@w2.example&gt;", body
    )
    assert sorted(d.recipient for d in Delivery.select()) == [
        "psirt@w0.example",
        "psirt@w1.example",
    ]
    assert Advisory.get().text == text  # carried through the preview unchanged
    details = json.loads(AuditEvent.get(AuditEvent.action == "alert.send").details)
    assert details["narrowed"]["left_out"] == ["Maker 2 <psirt@w2.example>"]
    # The next version's form offers narrowing first, as the last one was.
    again = html_of(team.get(f"/team/vulnerabilities/{v.tracking_id}/alerts"))
    assert re.search(r'<input checked id="audience-1"[^>]*value="matching"', again)


def test_a_ticked_left_out_registrant_is_added_back(team, v, registrants):
    html = html_of(narrowed_preview(team, v))
    team.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/confirm",
        data={**confirmation(html), "add": [str(registrants[2].id)]},
    )
    assert sorted(d.recipient for d in Delivery.select()) == [
        "psirt@w0.example",
        "psirt@w1.example",
        "psirt@w2.example",
    ]
    progress = html_of(team.get(f"/team/vulnerabilities/{v.tracking_id}/alerts/v1"))
    assert "nobody left out" in progress and "Added back by the team: Maker 2" in progress


def test_a_registrant_approved_between_preview_and_confirm_shows_the_preview_again(
    team, v, registrants, clock
):
    html = html_of(narrowed_preview(team, v))
    vetting.decide(registrants[3], "approved", None, "t", clock.at)
    response = team.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/confirm",
        data={**confirmation(html), "add": [str(registrants[2].id)]},
    )
    again = html_of(response)
    assert response.status_code == 409
    assert "changed since the preview was shown: nothing was sent" in again
    assert "Maker 3 &lt;psirt@w3.example&gt;" in again  # now among the recipients
    assert re.search(rf'value="{registrants[2].id}" id="add-{registrants[2].id}" checked', again)
    assert Advisory.select().count() == 0 and Delivery.select().count() == 0
    team.post(f"/team/vulnerabilities/{v.tracking_id}/alerts/confirm", data=confirmation(again))
    assert len(Delivery.select()) == 3  # makers 0, 1 and 3: maker 2 left unticked this time


def test_a_forged_confirmation_without_the_preview_sends_nothing(team, v, registrants):
    html = html_of(narrowed_preview(team, v))
    response = team.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts/confirm",
        data={**confirmation(html), "shown": "to:1;out:"},
    )
    assert response.status_code == 409 and Delivery.select().count() == 0


def test_narrowing_without_affected_products_says_to_set_them_first(
    team, registrants, clock, settings
):
    v = lifecycle.create("Unscoped", "", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    html = html_of(narrowed_preview(team, v))
    assert "No alert was sent:" in html and "set `affected` first" in html
    assert Delivery.select().count() == 0


def test_the_default_still_sends_to_every_approved_registrant(team, v, registrants):
    page = html_of(team.get(f"/team/vulnerabilities/{v.tracking_id}/alerts"))
    assert re.search(r'<input checked id="audience-0"[^>]*value="everyone"', page)
    team.post(
        f"/team/vulnerabilities/{v.tracking_id}/alerts",
        data={"csrf_token": csrf_token(page), "text": "x", "audience": "everyone"},
    )
    assert Delivery.select().count() == 3


# -- the registrant's products ----------------------------------------------------------------


@pytest.fixture
def signed_in_registrant(client, registrants):
    registrant = registrants[2]
    User.update(password_hash=passwords.hash_password(PASSWORD)).where(
        User.id == registrant.user_id
    ).execute()
    client.post(
        "/login",
        data={
            "csrf_token": csrf_token(html_of(client.get("/login"))),
            "email": registrant.user.email,
            "password": PASSWORD,
        },
    )
    return registrant


def test_a_registrant_declares_package_urls_on_their_status_page(client, signed_in_registrant):
    page = html_of(client.get("/registry/status"))
    assert "pkg:deb/debian/openssl" in page and '<label for="package_urls">' in page
    response = client.post(
        "/registry/status/products",
        data={
            "csrf_token": csrf_token(page),
            "products": "Routers and Zephyr sensors",
            "package_urls": "pkg:deb/debian/openssl\npkg:github/zephyrproject-rtos/zephyr",
        },
        follow_redirects=True,
    )
    assert "Your products are saved." in html_of(response)
    saved = Registrant.get_by_id(signed_in_registrant.id)
    assert saved.package_urls == "pkg:deb/debian/openssl\npkg:github/zephyrproject-rtos/zephyr"
    assert AuditEvent.get(AuditEvent.action == "registry.products").actor_label == (
        "psirt@w2.example"
    )


def test_a_bad_package_url_is_refused_at_its_field_and_nothing_changes(
    client, signed_in_registrant
):
    page = html_of(client.get("/registry/status"))
    response = client.post(
        "/registry/status/products",
        data={
            "csrf_token": csrf_token(page),
            "products": "Other",
            "package_urls": "github.com/zephyrproject-rtos/zephyr",
        },
    )
    html = html_of(response)
    assert response.status_code == 400
    assert "Your products were not changed" in html
    assert 'id="package_urls-error"' in html and "pkg:TYPE/NAMESPACE/NAME" in html
    kept = Registrant.get_by_id(signed_in_registrant.id)
    assert (kept.products, kept.package_urls) == ("Routers", "pkg:deb/debian/openssl")
    assert AuditEvent.select().where(AuditEvent.action == "registry.products").count() == 0


def test_changing_products_needs_the_csrf_token(client, signed_in_registrant):
    response = client.post("/registry/status/products", data={"products": "x", "package_urls": ""})
    assert response.status_code == 400
    assert Registrant.get_by_id(signed_in_registrant.id).products == "Routers"


def test_admins_see_the_package_urls(client, auth, admin_user, registrants):
    auth.login(admin_user.email, PASSWORD)
    declared = next(r for r in registrants if "pkg:deb/debian/openssl" in r.package_urls)
    html = html_of(client.get(f"/admin/registrants/{declared.id}"))
    assert "<code>pkg:deb/debian/openssl</code>" in html
