"""The registry's pages: sign-up, the proof link, a registrant's own page, and admin vetting."""

import io
import re

import pytest

from app.accounts import team as accounts
from app.core.instance import secret_key
from app.models import AuditEvent, Delivery, PublicKey, Registrant, User
from app.outbox import sending
from app.registry import proof, vetting
from app.workers import queue, reconcile
from tests import mailcorpus as mc
from tests.conftest import PASSWORD, csrf_token
from tests.openpgp import encrypted_payload, parts_as_sent, run, text_of

MAKER = "psirt@maker.example"
MAKER_PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def maker():
    return mc.make_reporter(MAKER, "Maker PSIRT")


@pytest.fixture(scope="module")
def maker_new_key():
    """The same team's next key (same address, new key material)."""
    return mc.make_reporter(MAKER, "Maker PSIRT 2027")


def apply(client, key: bytes | None, upload: bytes | None = None, **changes):
    page = client.get("/registry/apply")
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "email": MAKER,
        "password": MAKER_PASSWORD,
        "organisation": "Maker Ltd",
        "products": "Maker gateway 3000",
        "website": "https://maker.example",
        "justification": "We ship 2 million gateways running the project.",
        "key_text": key.decode() if key else "",
        "agrees": "y",
        "listed": "y",
    }
    if upload is not None:
        data["key_file"] = (io.BytesIO(upload), "maker.gpg")
    data.update(changes)
    data = {name: value for name, value in data.items() if value is not None}
    return client.post("/registry/apply", data=data, content_type="multipart/form-data")


def text(response) -> str:
    return response.get_data(as_text=True)


def one_line(html: str) -> str:
    """The page's text with tags dropped and whitespace collapsed, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def signed_up(maker, clock) -> Registrant:
    return vetting.sign_up(
        vetting.SignUp(
            email=MAKER,
            password=MAKER_PASSWORD,
            organisation="Maker Ltd",
            products="Maker gateway 3000",
            website="https://maker.example",
            justification="We ship 2 million gateways running the project.",
            key=maker.cert,
            agrees_to_policy=True,
            listed_publicly=True,
        ),
        clock.at,
    )


def token_for(registrant, settings, clock) -> str:
    key = (
        PublicKey.select()
        .where(PublicKey.owner == registrant.user_id)
        .order_by(PublicKey.id.desc())[0]
    )
    return proof.verification_token(secret_key(settings), registrant.id, key.id, clock.at)


def proven(maker, settings, clock) -> Registrant:
    registrant = signed_up(maker, clock)
    return proof.verify(token_for(registrant, settings, clock), secret_key(settings), clock.at)


def approved(maker, settings, clock, admin_user) -> Registrant:
    return vetting.decide(proven(maker, settings, clock), "approved", admin_user, "t", clock.at)


def linked_in(delivery: Delivery, secret: bytes, keyring, settings, clock, tmp_path) -> str:
    """The path of the link in a proof mail, read as the registrant would: decrypted with the
    key it was sent to."""
    raw = sending.compose(delivery, "<t@example>", keyring, settings, clock.at)
    assert b"/registry/verify/" not in raw  # the link travels encrypted only
    (tmp_path / "secret.key").write_bytes(secret)
    entity = run(
        "sqop", "decrypt", str(tmp_path / "secret.key"), input=encrypted_payload(raw)
    ).stdout
    body = text_of(parts_as_sent(entity)[0])
    return re.search(r"https?://[^/\s]+(/registry/verify/\S+)", body).group(1)


def post_form(client, page_url: str, url: str, data: dict, csrf_name="csrf_token"):
    token = csrf_token(text(client.get(page_url)))
    return client.post(url, data={csrf_name: token, **data})


# -- sign-up ------------------------------------------------------------------------------------


def test_apply_form_labels_every_input_and_carries_a_csrf_token(client, db):
    page = client.get("/registry/apply")
    html = text(page)
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in html
    csrf_token(html)
    inputs = re.findall(
        r'<(?:input|textarea|select)\b(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html
    )
    labels = set(re.findall(r'<label for="([^"]+)"', html))
    assert set(inputs) == {
        "email",
        "password",
        "organisation",
        "products",
        "package_urls",
        "website",
        "justification",
        "key_text",
        "key_file",
        "agrees",
        "listed",
    }
    assert set(inputs) <= labels
    assert f"I agree to the embargo policy (version {vetting.POLICY_VERSION})" in html
    assert 'href="/registry/policy"' in html
    assert "security@ or psirt@" in html  # role addresses are encouraged


def test_policy_page_states_the_timeline_and_the_rules(client, db):
    page = one_line(text(client.get("/registry/policy")))
    assert f"Version {vetting.POLICY_VERSION}" in page
    assert "embargoed (kept private) for 90 days" in page
    assert "a fix within 30 days, which leaves 60 days" in page
    assert "deploy the fix to your own products" in page
    assert "tell anyone outside your organisation" in page
    assert "removed from the registry" in page


def test_sign_up_creates_an_unverified_registrant_and_sends_the_proof(
    client, db, clock, maker, redis_conn
):
    response = apply(client, maker.cert)
    assert response.status_code == 200
    assert (
        f"We sent a mail to {MAKER}. For a new registration it holds a link encrypted to your "
        f"key {maker.fingerprint}. Decrypt it and open it within 48 hours; then an admin reviews "
        "your application."
    ) in one_line(text(response))
    [registrant] = Registrant.select()
    assert registrant.status == "unverified" and registrant.listed_publicly
    assert registrant.policy_version == vetting.POLICY_VERSION
    [proof] = Delivery.select().where(Delivery.kind == "verify-key")
    assert (proof.recipient, proof.fingerprint, proof.state) == (MAKER, maker.fingerprint, "queued")
    assert reconcile.delivery_job_id(proof.id) in queue.work_queue(redis_conn).job_ids  # sent now


def test_a_sign_up_keeps_its_package_urls(client, db, clock, maker):
    urls = "pkg:github/maker/gateway-os\r\npkg:github/zephyrproject-rtos/zephyr"
    response = apply(client, maker.cert, package_urls=urls)
    assert response.status_code == 200, text(response)
    assert Registrant.get().package_urls == (
        "pkg:github/maker/gateway-os\npkg:github/zephyrproject-rtos/zephyr"
    )


def test_a_binary_key_file_is_accepted(client, db, clock, maker):
    binary = mc.run("sqop", "dearmor", input=maker.cert)
    assert not binary.startswith(b"-----")
    response = apply(client, None, upload=binary)
    assert response.status_code == 200, text(response)
    assert Delivery.get(Delivery.kind == "verify-key").fingerprint == maker.fingerprint


def _nothing_created():
    assert Registrant.select().count() == 0
    assert User.select().where(User.email == MAKER).count() == 0
    assert Delivery.select().count() == 0


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"key_text": "not a key at all"}, "key_text", "The key was not accepted"),
        ({"key_text": ""}, "key_text", "Paste your OpenPGP public key or upload it"),
        ({"agrees": None}, "agrees", "Registrants must agree to the embargo policy."),
        ({"email": "nobody"}, "email", "Enter an email address."),
        ({"password": "short"}, "password", "at least 12 characters"),
        ({"justification": " "}, "justification", "Say why you qualify"),
        (
            {"organisation": "Maker\r\nLtd"},
            "organisation",
            "the organisation must be one line without control characters",
        ),
        (
            {"website": "https://maker.example\x00"},
            "website",
            "the website must be one line without control characters",
        ),
        ({"package_urls": "zephyr"}, "package_urls", "is not a package URL: write it as pkg:"),
    ],
)
def test_a_bad_sign_up_says_what_is_wrong_at_the_field_and_creates_nothing(
    client, db, clock, maker, changes, field, message
):
    response = apply(client, maker.cert, **changes)
    assert response.status_code == 400
    html = text(response)
    error = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', html)
    assert error and message in error.group(1), html
    assert "Nothing was registered" in html
    _nothing_created()


def test_a_key_for_another_address_is_refused_at_the_key_field(client, db, clock):
    stranger = mc.make_reporter("someone@elsewhere.example", "Someone")
    response = apply(client, stranger.cert)
    assert response.status_code == 400
    assert 'id="key_text-error"' in text(response)
    _nothing_created()


def without_csrf_tokens(html: str) -> str:
    return re.sub(r'(name="csrf_token"[^>]*value=")[^"]+"', r'\1"', html)


def test_signing_up_again_with_an_address_answers_as_the_first_time_and_tells_its_owner(
    client, db, clock, maker, maker_new_key
):
    first = apply(client, maker.cert)
    assert first.status_code == 200

    again = [apply(client, key) for key in (maker.cert, maker_new_key.cert, maker.cert)]

    assert [page.status_code for page in again] == [200, 200, 200]
    assert without_csrf_tokens(text(again[0])) == without_csrf_tokens(text(first))
    assert "already exists" not in text(again[1])
    assert Registrant.select().count() == 1
    assert User.select().where(User.email == MAKER).count() == 1
    assert [k.fingerprint for k in PublicKey.select()] == [maker.fingerprint]  # nothing added
    assert Delivery.select().where(Delivery.kind == "verify-key").count() == 1
    # The owner hears of it once (at most once a day), at their own address.
    [notice] = Delivery.select().where(Delivery.kind == "sign-up-attempt")
    assert (notice.recipient, notice.state) == (MAKER, "queued")
    clock.move(hours=24, seconds=1)
    assert apply(client, maker.cert).status_code == 200
    assert Delivery.select().where(Delivery.kind == "sign-up-attempt").count() == 2


def test_applying_with_a_team_address_answers_exactly_as_for_a_new_address(
    client, db, clock, maker, keyring, settings, monkeypatch
):
    import hashlib

    from app.privacy import erasure

    runs = []
    real = hashlib.scrypt

    def counted(password, **parameters):
        runs.append(parameters["n"])
        return real(password, **parameters)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    new = apply(client, maker.cert)  # the address has no account yet
    assert new.status_code == 200 and runs == [2**15]
    # The registrant is erased and the address becomes a security-team member's.
    erasure.erase_registrant(Registrant.get().id, "test", clock.at)
    clock.move(minutes=1)
    accounts.create_team_account(MAKER, PASSWORD, "team", clock.at, by="test")
    runs.clear()

    team = apply(client, maker.cert)

    assert team.status_code == 200
    assert without_csrf_tokens(text(team)) == without_csrf_tokens(text(new))
    assert runs == [2**15]  # the same password hashing as creating the account
    assert Registrant.select().count() == 1
    assert User.get(User.email == MAKER).role == "team"
    # The team member is told, in a mail signed by the service (they have no key on file),
    # and the key given in the form is used for nothing.
    [notice] = Delivery.select().where(Delivery.kind == "sign-up-attempt")
    raw = sending.compose(notice, "<t@example>", keyring, settings, clock.at)
    assert maker.fingerprint.encode() not in raw
    mail_text = text_of(parts_as_sent(raw)[0])
    assert max(len(line) for line in mail_text.splitlines()) <= 72
    body = one_line(mail_text)
    assert f"Someone asked to register this address ({MAKER})" in body
    assert "nothing was created or changed" in body
    assert f"{settings.base_url}/login/forgot" in body
    [event] = AuditEvent.select().where(AuditEvent.action == "registry.sign_up_existing")
    assert event.target == MAKER


def test_a_sign_up_without_its_csrf_token_is_refused(client, db, clock, maker):
    response = client.post(
        "/registry/apply",
        data={"email": MAKER, "password": MAKER_PASSWORD, "organisation": "Maker Ltd",
              "justification": "x", "key_text": maker.cert.decode(), "agrees": "y"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "Form expired" in text(response)
    _nothing_created()


# -- the proof link ----------------------------------------------------------------------------


def test_opening_the_link_does_not_use_it_confirming_does(client, db, clock, maker, settings):
    registrant = signed_up(maker, clock)
    url = f"/registry/verify/{token_for(registrant, settings, clock)}"
    for _ in range(2):  # a mail scanner fetches the link, then the person opens it
        page = client.get(url)
        assert page.status_code == 200 and "Confirm my key" in text(page)
    assert Registrant.get_by_id(registrant.id).status == "unverified"

    confirmed = client.post(url, data={"csrf_token": csrf_token(text(page))})
    assert confirmed.status_code == 200
    assert (
        f"Your key {maker.fingerprint} is confirmed. An admin reviews your application next; "
        "you will get an email either way."
    ) in one_line(text(confirmed))
    after = Registrant.get_by_id(registrant.id)
    assert (after.status, after.pinned_fingerprint) == ("pending_review", maker.fingerprint)

    again = client.post(url, data={"csrf_token": csrf_token(text(client.get(url)))})
    assert again.status_code == 400
    assert "This link was already used" in text(again)


def test_a_tampered_or_unsigned_confirmation_is_refused(client, db, clock, maker, settings):
    registrant = signed_up(maker, clock)
    token = token_for(registrant, settings, clock)
    url = f"/registry/verify/{token[:-4]}abcd"
    tampered = client.post(url, data={"csrf_token": csrf_token(text(client.get(url)))})
    assert tampered.status_code == 400
    assert "This link is not valid" in text(tampered)
    assert client.post(f"/registry/verify/{token}").status_code == 400  # no CSRF token
    assert Registrant.get_by_id(registrant.id).status == "unverified"


# -- a registrant's own page -------------------------------------------------------------------


def test_the_status_page_is_for_registrants_only(client, auth, db, clock, maker):
    signed_up(maker, clock)
    anonymous = client.get("/registry/status")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert client.post("/registry/status/resend").status_code == 400  # no CSRF token

    accounts.create_team_account("bob@example.org", PASSWORD, "team", clock.at, by="t")
    auth.login("bob@example.org", PASSWORD)
    assert client.get("/registry/status").status_code == 403
    token = csrf_token(text(client.get("/team/")))
    for url in ("/registry/status/resend", "/registry/status/key"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403
    client.post("/logout", data={"csrf_token": token})

    auth.login(MAKER, MAKER_PASSWORD)
    assert client.get("/registry/status").status_code == 200


def _status_for(client, auth) -> str:
    auth.login(MAKER, MAKER_PASSWORD)
    page = client.get("/registry/status")
    assert page.status_code == 200
    return one_line(text(page))


def test_an_unverified_registrant_is_told_to_check_their_mail(client, auth, db, clock, maker):
    signed_up(maker, clock)
    page = _status_for(client, auth)
    assert f"Check your mail: we sent a link to {MAKER}" in page
    assert maker.fingerprint in page
    assert "Send me a new link" in page


def test_a_pending_registrant_is_told_an_admin_reviews(client, auth, db, clock, maker, settings):
    proven(maker, settings, clock)
    page = _status_for(client, auth)
    assert "an admin is reviewing your application" in page
    assert "Send me a new link" not in page


def test_an_approved_registrant_sees_since_when_and_their_key(
    client, auth, db, clock, maker, settings, admin_user
):
    registrant = approved(maker, settings, clock, admin_user)
    page = _status_for(client, auth)
    assert "You are approved since 2026-11-25 12:00 UTC" in page
    assert registrant.pinned_fingerprint == maker.fingerprint and maker.fingerprint in page
    expires = registrant.encryption_expires
    if expires is None:
        assert "Encryption subkey expires never" in page
    else:
        assert f"Its encryption subkey expires {expires:%Y-%m-%d %H:%M} UTC" in page


def test_a_rejected_registrant_sees_the_reason(
    client, auth, db, clock, maker, settings, admin_user
):
    registrant = proven(maker, settings, clock)
    vetting.decide(registrant, "rejected", admin_user, "t", clock.at, "No product ships it.")
    page = _status_for(client, auth)
    assert "Your application was not accepted: No product ships it." in page
    assert "Replace your key" not in page


def test_a_suspended_registrant_is_told_alerts_stopped(
    client, auth, db, clock, maker, settings, admin_user
):
    registrant = approved(maker, settings, clock, admin_user)
    vetting.decide(registrant, "suspended", admin_user, "t", clock.at, "Leaked an embargo.")
    page = _status_for(client, auth)
    assert "Your registration is suspended: you receive no alerts" in page


def test_an_unverified_registrant_can_ask_for_a_new_link(client, auth, db, clock, maker):
    signed_up(maker, clock)
    auth.login(MAKER, MAKER_PASSWORD)
    clock.move(hours=50)  # the first link has expired
    response = post_form(client, "/registry/status", "/registry/status/resend", {})
    assert response.status_code == 302
    proofs = list(Delivery.select().where(Delivery.kind == "verify-key").order_by(Delivery.id))
    assert len(proofs) == 2 and proofs[1].fingerprint == maker.fingerprint
    assert proofs[1].next_attempt_at == clock.at
    assert AuditEvent.get(AuditEvent.action == "registry.proof_resent").target == MAKER
    page = one_line(text(client.get("/registry/status")))
    assert f"We sent a new link to {MAKER}, encrypted to your key {maker.fingerprint}." in page


def test_replacing_the_key_sends_the_proof_to_the_new_key_and_keeps_the_old_one(
    client, auth, db, clock, maker, maker_new_key, settings, admin_user, keyring, tmp_path
):
    approved(maker, settings, clock, admin_user)
    auth.login(MAKER, MAKER_PASSWORD)
    token = csrf_token(text(client.get("/registry/status")))
    response = client.post(
        "/registry/status/key",
        data={"csrf_token": token, "key_file": (io.BytesIO(maker_new_key.cert), "new.asc")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = one_line(text(client.get("/registry/status")))
    assert (
        f"We sent a link to {MAKER}, encrypted to your new key {maker_new_key.fingerprint}. "
        f"Decrypt it and open it within 48 hours; until then, alerts stay encrypted to your key "
        f"{maker.fingerprint}."
    ) in page
    registrant = Registrant.get()
    assert registrant.pinned_fingerprint == maker.fingerprint  # the old key stays in use
    proof = Delivery.select().where(Delivery.kind == "verify-key").order_by(Delivery.id.desc())[0]
    assert proof.fingerprint == maker_new_key.fingerprint

    link = linked_in(proof, maker_new_key.secret, keyring, settings, clock, tmp_path)
    confirmed = client.post(link, data={"csrf_token": csrf_token(text(client.get(link)))})
    assert confirmed.status_code == 200
    after = Registrant.get()
    assert (after.status, after.pinned_fingerprint) == ("approved", maker_new_key.fingerprint)


def test_a_bad_replacement_key_is_refused_on_the_page(client, auth, db, clock, maker, settings):
    proven(maker, settings, clock)
    auth.login(MAKER, MAKER_PASSWORD)
    token = csrf_token(text(client.get("/registry/status")))
    response = client.post("/registry/status/key", data={"csrf_token": token, "key_text": "junk"})
    assert response.status_code == 400
    assert re.search(r'id="key_text-error">The key was not accepted', text(response))
    assert Delivery.select().count() == 1  # only the first proof


# -- admins vet ----------------------------------------------------------------------------------


@pytest.fixture
def admin(client, auth, admin_user):
    auth.login(admin_user.email, PASSWORD)
    return admin_user


def decide(client, registrant, decision, reason=""):
    prefix = f"r{registrant.id}"
    return post_form(
        client,
        f"/admin/registrants/{registrant.id}",
        f"/admin/registrants/{registrant.id}/decide",
        {f"{prefix}-decision": decision, f"{prefix}-reason": reason},
        csrf_name=f"{prefix}-csrf_token",
    )


def test_the_list_shows_pending_applications_first_and_each_page_its_evidence(
    client, db, clock, maker, settings, admin
):
    other = mc.make_reporter("jo@gmail.example", "Jo")
    vetting.add_by_admin("jo@gmail.example", "Early Bird", other.cert, admin, "t", clock.at, True)
    pending = proven(maker, settings, clock)
    listed = one_line(text(client.get("/admin/registrants/")))
    assert "Waiting for review (1)" in listed and "Approved (1)" in listed
    assert listed.index("Maker Ltd") < listed.index("Early Bird")  # pending first
    assert f'name="r{pending.id}-decision"' not in text(client.get("/admin/registrants/"))
    assert f'href="/admin/registrants/{pending.id}"' in text(client.get("/admin/registrants/"))

    page = one_line(text(client.get(f"/admin/registrants/{pending.id}")))
    for evidence in (
        "Maker gateway 3000",
        "https://maker.example",
        "We ship 2 million gateways running the project.",
        f"{MAKER} — a role address",
        maker.fingerprint,
        f"version {vetting.POLICY_VERSION}, agreed 2026-11-25 12:00 UTC",
    ):
        assert evidence in page, evidence
    early = Registrant.get(Registrant.organisation == "Early Bird")
    assert "jo@gmail.example — a personal address" in one_line(
        text(client.get(f"/admin/registrants/{early.id}"))
    )
    if pending.encryption_expires:
        assert f"encryption expires {pending.encryption_expires:%Y-%m-%d %H:%M} UTC" in page
    buttons = re.findall(
        rf'name="r{pending.id}-decision" value="(\w+)"',
        text(client.get(f"/admin/registrants/{pending.id}")),
    )
    assert buttons == ["approved", "rejected", "removed"]
    assert client.get(f"/admin/registrants/{pending.id + early.id + 1}").status_code == 404


def test_rejecting_needs_a_reason_and_mails_it(client, db, clock, maker, settings, admin):
    registrant = proven(maker, settings, clock)
    refused = decide(client, registrant, "rejected")
    assert refused.status_code == 400
    assert re.search(rf'id="r{registrant.id}-reason-error">Rejecting needs a reason', text(refused))
    assert Registrant.get_by_id(registrant.id).status == "pending_review"

    done = decide(client, registrant, "rejected", "We could not find a product of yours.")
    assert done.status_code == 302
    assert Registrant.get_by_id(registrant.id).status == "rejected"
    assert Delivery.get(Delivery.kind == "registrant-rejected").recipient == MAKER
    event = AuditEvent.get(AuditEvent.action == "registry.rejected")
    assert (event.actor_label, event.target) == (admin.email, MAKER)
    assert "is rejected; the reason is being mailed to them" in text(
        client.get("/admin/registrants/")
    )


def test_approve_suspend_and_reinstate_through_the_forms_are_audited(
    client, db, clock, maker, settings, admin
):
    registrant = proven(maker, settings, clock)
    steps = [("approved", "approved"), ("suspended", "suspended"), ("approved", "approved")]
    for decision, expected in steps:
        response = decide(client, registrant, decision, "checked by phone")
        assert response.status_code == 302
        assert Registrant.get_by_id(registrant.id).status == expected
    page = one_line(text(client.get("/admin/registrants/")))
    assert "Maker Ltd (psirt@maker.example) is reinstated" in page
    actions = [
        e.action
        for e in AuditEvent.select().where(AuditEvent.target == MAKER).order_by(AuditEvent.id)
    ]
    assert actions[-3:] == ["registry.approved", "registry.suspended", "registry.approved"]
    assert Registrant.get_by_id(registrant.id).reviewer_id == admin.id


def test_a_decision_the_state_machine_forbids_changes_nothing(
    client, db, clock, maker, settings, admin
):
    registrant = signed_up(maker, clock)  # unverified: only its link moves it on
    response = decide(client, registrant, "approved")
    assert response.status_code == 400
    assert "it can become: removed" in text(response)
    assert Registrant.get_by_id(registrant.id).status == "unverified"


def test_notes_are_for_admins_only(client, auth, db, clock, maker, settings, admin):
    registrant = proven(maker, settings, clock)
    prefix = f"r{registrant.id}n"
    response = post_form(
        client,
        f"/admin/registrants/{registrant.id}",
        f"/admin/registrants/{registrant.id}/notes",
        {f"{prefix}-notes": "Called their CTO; legit."},
        csrf_name=f"{prefix}-csrf_token",
    )
    assert response.status_code == 302
    assert Registrant.get_by_id(registrant.id).notes == "Called their CTO; legit."
    assert "Called their CTO; legit." in text(client.get(f"/admin/registrants/{registrant.id}"))
    event = AuditEvent.get(AuditEvent.action == "registry.notes")
    assert (event.actor_label, event.target) == (admin.email, MAKER)

    client.post("/logout", data={"csrf_token": csrf_token(text(client.get("/team/")))})
    auth.login(MAKER, MAKER_PASSWORD)
    page = client.get("/registry/status")
    assert page.status_code == 200 and "CTO" not in text(page)
    assert client.get("/admin/registrants/").status_code == 403
    assert client.get(f"/admin/registrants/{registrant.id}").status_code == 403


def test_an_admin_adds_a_registrant_with_a_key_for_another_uid(client, db, clock, admin):
    partner = mc.make_reporter("pgp-owner@partner.example", "Partner")
    token = csrf_token(text(client.get("/admin/registrants/add")))
    data = {
        "csrf_token": token,
        "email": "security@partner.example",
        "organisation": "Partner AG",
        "products": "Partner router",
        "key_text": partner.cert.decode(),
        "approve": "y",
    }
    refused = client.post("/admin/registrants/add", data=data)
    assert refused.status_code == 400 and 'id="key_text-error"' in text(refused)
    assert Registrant.select().count() == 0

    bad_purl = client.post(
        "/admin/registrants/add",
        data={**data, "allow_other_uid": "y", "package_urls": "partner-router"},
    )
    assert bad_purl.status_code == 400 and 'id="package_urls-error"' in text(bad_purl)
    assert Registrant.select().count() == 0

    added = client.post(
        "/admin/registrants/add",
        data={**data, "allow_other_uid": "y", "package_urls": "pkg:github/partner/router"},
    )
    assert added.status_code == 302
    registrant = Registrant.get()
    assert registrant.package_urls == "pkg:github/partner/router"
    assert (registrant.status, registrant.pinned_fingerprint) == ("approved", partner.fingerprint)
    assert AuditEvent.get(AuditEvent.action == "registry.admin_add").actor_label == admin.email
    page = one_line(text(client.get("/admin/registrants/")))
    assert f"Added Partner AG (security@partner.example) with the key {partner.fingerprint}" in page


# -- the public list -------------------------------------------------------------------------------


def test_members_lists_only_approved_organisations_that_opted_in(
    client, db, clock, maker, settings, admin_user
):
    approved(maker, settings, clock, admin_user)  # listed_publicly=True
    quiet = mc.make_reporter("security@quiet.example", "Quiet")
    vetting.add_by_admin(
        "security@quiet.example", "Quiet Corp", quiet.cert, None, "t", clock.at, True
    )
    waiting = mc.make_reporter("security@waiting.example", "Waiting")
    vetting.add_by_admin(
        "security@waiting.example", "Waiting Inc", waiting.cert, None, "t", clock.at
    )
    Registrant.update(listed_publicly=True).where(
        Registrant.organisation == "Waiting Inc"
    ).execute()

    page = text(client.get("/registry/members"))
    assert "<li>Maker Ltd</li>" in page
    assert "Quiet Corp" not in page  # approved, but did not opt in
    assert "Waiting Inc" not in page  # opted in, not approved
    assert "@" not in one_line(page.split("<main", 1)[1])  # never an address


def test_the_nav_offers_registration_to_visitors_and_the_status_to_registrants(
    client, auth, db, clock, maker
):
    assert 'href="/registry/apply">Register<' in text(client.get("/"))
    signed_up(maker, clock)
    auth.login(MAKER, MAKER_PASSWORD)
    assert 'href="/registry/status">My registration<' in text(client.get("/"))


def test_an_expired_link_sends_people_to_sign_in_for_a_new_one(client, db, clock, maker, settings):
    registrant = signed_up(maker, clock)
    url = f"/registry/verify/{token_for(registrant, settings, clock)}"
    token = csrf_token(text(client.get(url)))
    clock.move(hours=48, seconds=1)
    response = client.post(url, data={"csrf_token": token})
    assert response.status_code == 400
    assert "This link has expired (links last 48 hours)" in text(response)
    assert Registrant.get_by_id(registrant.id).status == "unverified"


def test_sign_ups_are_rate_limited_per_address_in_redis(client, db, clock, maker, redis_conn):
    from app.web import ratelimit
    from app.web.registry import APPLY

    for _ in range(APPLY.attempts):  # ten sign-ups from this address within the hour
        assert ratelimit.hit(redis_conn, APPLY, "ip:127.0.0.1")
    response = apply(client, maker.cert)
    assert response.status_code == 429
    assert "Too many sign-ups from your address. Try again in an hour." in text(response)
    assert Registrant.select().count() == 0
