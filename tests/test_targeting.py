"""Targeting by product (#17): registrants declare package URLs; an alert narrowed to matching
products shows who gets it and who does not, and never drops an approved registrant unless the
team leaves them out."""

import json
from datetime import datetime

import pytest
from playhouse.schema_diff import diff_models

from app.core import db as app_db
from app.core.errors import Refused
from app.models import ALL_MODELS, Advisory, AuditEvent, Delivery, Registrant
from app.registry import alerts, purls, targeting, vetting
from app.vulns import lifecycle
from tests import mailcorpus as mc

pytestmark = pytest.mark.db

CLI = lifecycle.Actor(None, "test")


@pytest.fixture(scope="module")
def makers():
    return [mc.make_reporter(f"psirt@t{n}.example", f"Maker {n}") for n in range(4)]


@pytest.fixture
def v(db, clock, settings):
    v = lifecycle.create("Overflow in the L2CAP reassembly", "Details.", CLI, clock.at, settings)
    v = lifecycle.set_field(v, "affected", "zephyr >=3.0 <4.2; mcuboot <2.1", CLI, clock.at)
    return lifecycle.set_status(v, "accepted", CLI, clock.at)


@pytest.fixture
def registrants(db, clock, makers):
    """Maker 0 ships zephyr (a package URL), maker 1 says so in words, maker 2 ships something
    else, maker 3 is still pending review (never an alert recipient)."""
    declared = [
        ("", "pkg:github/zephyrproject-rtos/Zephyr@v3.7.0"),
        ("Gateways running Zephyr 3.6 on nRF52", ""),
        ("Linux-based routers", "pkg:github/zephyrproject-rtos/hal_nordic pkg:deb/debian/openssl"),
        ("zephyr boards", ""),
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


def deliveries_to():
    return sorted(d.recipient for d in Delivery.select())


# -- package URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "namespace"),
    [
        ("pkg:github/zephyrproject-rtos/zephyr", "zephyr", "zephyrproject-rtos"),
        ("pkg:npm/%40angular/core@16.0.0", "core", "@angular"),
        ("pkg:pypi/Django@4.2?repository_url=x#src/django", "Django", ""),
        ("PKG:generic/vendor/sub/Firmware%20X", "Firmware X", "vendor/sub"),
    ],
)
def test_package_urls_split_as_the_purl_spec_says(text, name, namespace):
    parsed = purls.parse_package_url(text)
    assert (parsed.name, parsed.namespace) == (name, namespace)


@pytest.mark.parametrize(
    "text",
    [
        "zephyr",
        "https://github.com/zephyrproject-rtos/zephyr",
        "pkg:",
        "pkg:github",
        "pkg:github/",
        "pkg:1github/zephyr",
        "pkg:github/zephyr@",
    ],
)
def test_what_is_not_a_package_url_is_refused_saying_how_to_write_one(text):
    with pytest.raises(Refused, match="pkg:TYPE/NAMESPACE/NAME, e.g. pkg:github/"):
        purls.checked_package_urls(f"pkg:github/a/b\n{text}")


def test_package_urls_are_kept_one_a_line_and_each_once():
    given = " pkg:github/a/zephyr  pkg:deb/debian/openssl\r\npkg:github/a/zephyr\n"
    assert purls.checked_package_urls(given) == "pkg:github/a/zephyr\npkg:deb/debian/openssl"
    assert purls.checked_package_urls("  \n") == ""


# -- matching -------------------------------------------------------------------------------


def test_a_registrant_matches_by_package_name_or_a_whole_word_of_their_products(
    registrants,
):
    by_purl, by_words, other, _ = registrants
    assert targeting.matching(by_purl, ["zephyr"]) == ["zephyr"]  # the name, any case
    assert targeting.matching(by_words, ["zephyr", "mcuboot"]) == ["zephyr"]
    # The namespace is not the name; hal_nordic and openssl are not zephyr.
    assert targeting.matching(other, ["zephyr", "zephyrproject-rtos", "nordic"]) == []
    assert targeting.matching(other, ["hal_nordic", "OpenSSL".lower()]) == ["hal_nordic", "openssl"]
    # A whole word only: "Zephyrine" is not zephyr, "Linux-based" is linux.
    by_words.products = "Zephyrine sensors"
    assert targeting.matching(by_words, ["zephyr"]) == []
    assert targeting.matching(other, ["linux"]) == ["linux"]


def test_narrowing_a_vulnerability_without_affected_products_is_refused(
    db, clock, settings, registrants
):
    v = lifecycle.create("No products yet", "", CLI, clock.at, settings)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    with pytest.raises(Refused, match="set `affected` first"):
        targeting.preview(v, clock.at)


def test_the_preview_lists_recipients_and_every_approved_registrant_left_out(v, registrants, clock):
    preview = targeting.preview(v, clock.at)
    assert preview.products == ("zephyr", "mcuboot")
    assert [(r.registrant.organisation, r.why) for r in preview.recipients] == [
        ("Maker 0", "declares zephyr"),
        ("Maker 1", "declares zephyr"),
    ]
    assert [r.organisation for r in preview.left_out] == ["Maker 2"]  # 3 is not approved
    assert preview.approved == 3
    assert Delivery.select().count() == 0 and Advisory.select().count() == 0  # nothing sent


def test_a_vulnerability_that_cannot_be_alerted_has_no_preview(db, clock, settings, registrants):
    v = lifecycle.create("New", "", CLI, clock.at, settings)
    v = lifecycle.set_field(v, "affected", "zephyr <4.2", CLI, clock.at)
    with pytest.raises(Refused, match="accepted or fixed"):
        targeting.preview(v, clock.at)


def test_zero_matches_is_refused(db, clock, settings, registrants):
    v = lifecycle.create("Elsewhere", "", CLI, clock.at, settings)
    v = lifecycle.set_field(v, "affected", "trusted-firmware-m <2.0", CLI, clock.at)
    v = lifecycle.set_status(v, "accepted", CLI, clock.at)
    with pytest.raises(Refused, match="no approved registrant declares trusted-firmware-m"):
        targeting.preview(v, clock.at)


# -- sending --------------------------------------------------------------------------------


def test_a_left_out_registrant_gets_nothing_unless_the_team_adds_them(
    v, registrants, clock, settings
):
    shown = targeting.preview(v, clock.at).key
    advisory = targeting.send_matching(v, None, "cli:op", clock.at, settings, shown=shown)
    assert deliveries_to() == ["psirt@t0.example", "psirt@t1.example"]
    record = targeting.audience(advisory)
    assert (record["to"], record["approved"]) == (2, 3)
    assert record["left_out"] == ["Maker 2 <psirt@t2.example>"]
    assert json.loads(advisory.audience)["left_out"] == [registrants[2].id]  # no address kept
    event = AuditEvent.get(AuditEvent.action == "alert.send")
    details = json.loads(event.details)
    assert details["to"] == 2
    assert details["narrowed"] == {
        "products": ["zephyr", "mcuboot"],
        "approved": 3,
        "left_out": ["Maker 2 <psirt@t2.example>"],
        "added": [],
    }


def test_a_registrant_the_team_adds_back_gets_it(v, registrants, clock, settings):
    shown = targeting.preview(v, clock.at).key
    advisory = targeting.send_matching(
        v, None, "cli:op", clock.at, settings, shown=shown, added=[registrants[2].id]
    )
    assert deliveries_to() == ["psirt@t0.example", "psirt@t1.example", "psirt@t2.example"]
    record = targeting.audience(advisory)
    assert record["left_out"] == [] and record["added"] == ["Maker 2 <psirt@t2.example>"]


def test_only_a_left_out_registrant_can_be_added(v, registrants, clock, settings):
    shown = targeting.preview(v, clock.at).key
    with pytest.raises(Refused, match="only a registrant left out"):
        targeting.send_matching(
            v, None, "t", clock.at, settings, shown=shown, added=[registrants[3].id]
        )
    assert Advisory.select().count() == 0


def test_a_registrant_approved_after_the_preview_stops_the_send_and_shows_it_again(
    v, registrants, clock, settings
):
    shown = targeting.preview(v, clock.at).key
    vetting.decide(registrants[3], "approved", None, "t", clock.at)  # declares zephyr boards
    with pytest.raises(targeting.AudienceChanged) as changed:
        targeting.send_matching(v, None, "t", clock.at, settings, shown=shown)
    assert Advisory.select().count() == 0 and Delivery.select().count() == 0
    assert [r.registrant.organisation for r in changed.value.preview.recipients] == [
        "Maker 0",
        "Maker 1",
        "Maker 3",
    ]
    targeting.send_matching(v, None, "t", clock.at, settings, shown=changed.value.preview.key)
    assert "psirt@t3.example" in deliveries_to()


def test_a_later_version_reaches_everyone_an_earlier_one_did(v, registrants, clock, settings):
    first = targeting.preview(v, clock.at)
    targeting.send_matching(
        v, None, "t", clock.at, settings, shown=first.key, added=[registrants[2].id]
    )
    second = targeting.preview(v, clock.move(hours=1))
    assert [(r.registrant.organisation, r.why) for r in second.recipients] == [
        ("Maker 0", "declares zephyr"),
        ("Maker 1", "declares zephyr"),
        ("Maker 2", "received an earlier version"),
    ]
    assert second.left_out == ()
    v2 = targeting.send_matching(v, None, "t", clock.at, settings, shown=second.key)
    assert v2.version == 2
    assert Delivery.select().where(Delivery.advisory == v2).count() == 3
    assert targeting.last_narrowed(v)


def test_sending_to_everyone_is_unchanged_and_records_no_narrowing(v, registrants, clock, settings):
    advisory = alerts.send(v, None, "t", clock.at, settings)
    assert deliveries_to() == ["psirt@t0.example", "psirt@t1.example", "psirt@t2.example"]
    assert targeting.audience(advisory) is None and not targeting.last_narrowed(v)
    assert "narrowed" not in json.loads(AuditEvent.get(AuditEvent.action == "alert.send").details)


# -- declaring ------------------------------------------------------------------------------


def test_a_registrant_declares_products_audited_and_a_bad_package_url_changes_nothing(
    registrants, clock
):
    r = registrants[2]
    declared = targeting.declare(
        r, "Zephyr gateways", "pkg:github/zephyrproject-rtos/zephyr", clock.at
    )
    assert declared.package_urls == "pkg:github/zephyrproject-rtos/zephyr"
    event = AuditEvent.get(AuditEvent.action == "registry.products")
    assert event.target == "psirt@t2.example"
    assert json.loads(event.details)["package_urls"] == ["pkg:github/zephyrproject-rtos/zephyr"]
    with pytest.raises(Refused, match="is not a package URL"):
        targeting.declare(declared, "other", "github.com/zephyr", clock.at)
    kept = Registrant.get_by_id(r.id)
    assert (kept.products, kept.package_urls) == (
        "Zephyr gateways",
        "pkg:github/zephyrproject-rtos/zephyr",
    )


def test_a_sign_up_with_a_bad_package_url_is_refused(db, clock, makers):
    form = vetting.SignUp(
        email="psirt@new.example",
        password="a long enough password",
        organisation="New Ltd",
        products="",
        website="",
        justification="We ship.",
        key=makers[0].cert,
        agrees_to_policy=True,
        package_urls="zephyr",
    )
    with pytest.raises(Refused, match="is not a package URL"):
        vetting.sign_up(form, clock.at)
    assert Registrant.select().count() == 0


# -- the migration --------------------------------------------------------------------------


def test_the_schema_before_migrates_to_package_urls_and_audiences(settings):
    settings.instance.mkdir(parents=True)
    database = app_db.open_database(settings.database_url)
    app_db.migrate(database, target="0018_answers")
    at = datetime(2026, 5, 1, 9, 0)
    p = database.param
    with database.connection_context():
        database.execute_sql(
            'INSERT INTO "user" (email, password_hash, role, active, created_at, session_token,'
            " away) VALUES (?, ?, ?, ?, ?, ?, ?)".replace("?", p),
            ("psirt@old.example", "!", "registrant", True, at, "tok", False),
        )
        database.execute_sql(
            "INSERT INTO registrant (user_id, organisation, products, website, justification,"
            " status, notes, listed_publicly, unsubscribed, created_at, updated_at) VALUES"
            " ((SELECT id FROM \"user\"), ?, ?, '', '', 'approved', '', ?, ?, ?, ?)".replace(
                "?", p
            ),
            ("Old Ltd", "Zephyr boards", False, False, at, at),
        )
    assert "0019_package_urls" in app_db.migrate(database)
    with database.connection_context():
        assert not diff_models(database, list(ALL_MODELS))
        old = Registrant.get()
        assert (old.products, old.package_urls) == ("Zephyr boards", "")
        assert targeting.matching(old, ["zephyr"]) == ["zephyr"]
        assert Advisory.select().count() == 0


# -- the command line -----------------------------------------------------------------------


def test_cli_matching_lists_both_groups_and_sends_nothing_without_yes(forewarn, v, registrants):
    shown = forewarn("alert", "send", v.tracking_id, "--matching")
    assert shown.returncode == 1
    assert "2 of 3 approved registrants would get it" in shown.stdout
    assert "  to  Maker 0 <psirt@t0.example> (declares zephyr)" in shown.stdout
    assert "left out (1):" in shown.stdout
    assert "  out Maker 2 <psirt@t2.example>: Linux-based routers; pkg:github/" in shown.stdout
    assert shown.stderr.strip() == (
        f"forewarn: nothing sent: run `forewarn alert send {v.tracking_id} --matching --yes` "
        "to send to this list (add a left-out one with --add EMAIL)"
    )
    assert Delivery.select().count() == 0 and Advisory.select().count() == 0
    adding = forewarn("alert", "send", v.tracking_id, "--matching", "--add", "psirt@t2.example")
    assert adding.returncode == 1 and "--add psirt@t2.example --yes`" in adding.stderr
    assert "  to  Maker 2 <psirt@t2.example> (added with --add)" in adding.stdout
    assert Delivery.select().count() == 0


def test_cli_matching_with_yes_sends_to_the_list_and_added_ones(forewarn, v, registrants):
    sent = forewarn("alert", "send", v.tracking_id, "--matching", "--yes")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip().endswith(f"{v.tracking_id} v1 queued to 2 registrants")
    assert deliveries_to() == ["psirt@t0.example", "psirt@t1.example"]
    again = forewarn("alert", "send", v.tracking_id, "--matching", "--yes")
    assert again.returncode == 0, again.stderr  # v2: the same audience, nobody dropped
    assert len(deliveries_to()) == 4
    event = AuditEvent.select().where(AuditEvent.action == "alert.send").order_by(AuditEvent.id)
    assert json.loads(event[0].details)["narrowed"]["left_out"] == ["Maker 2 <psirt@t2.example>"]
    assert event[0].actor_label.startswith("cli:")


def test_cli_matching_refuses_unknown_adds_and_several_ids(forewarn, v, registrants):
    unknown = forewarn("alert", "send", v.tracking_id, "--matching", "--add", "x@y.example")
    assert unknown.returncode == 1
    assert "x@y.example is not an approved registrant left out of this alert" in unknown.stderr
    several = forewarn("alert", "send", v.tracking_id, v.tracking_id, "--matching")
    assert several.returncode == 1 and "send the ids one by one to narrow" in several.stderr
    stray = forewarn("alert", "send", v.tracking_id, "--yes")
    assert stray.returncode == 1 and "go with --matching" in stray.stderr
    assert Delivery.select().count() == 0


def test_registrants_import_reads_the_purl_column(forewarn, db, tmp_path, makers):
    for n, m in enumerate(makers[:3]):
        (tmp_path / f"k{n}.asc").write_bytes(m.cert)
    (tmp_path / "r.csv").write_text(
        "email,org,product,purl,key_file\n"
        "psirt@t0.example,A,Zephyr boards,pkg:github/zephyrproject-rtos/zephyr pkg:npm/x,k0.asc\n"
        "psirt@t1.example,B,,,k1.asc\n"
        "psirt@t2.example,C,,github.com/zephyr,k2.asc\n"
    )
    result = forewarn("registrants", "import", str(tmp_path / "r.csv"))
    assert result.returncode == 1
    assert "imported 2 of 3 registrants" in result.stdout
    assert "skipped line 4: psirt@t2.example: 'github.com/zephyr' is not a package URL" in (
        result.stderr
    )
    got = {r.organisation: r.package_urls for r in Registrant.select()}
    assert got == {"A": "pkg:github/zephyrproject-rtos/zephyr\npkg:npm/x", "B": ""}
