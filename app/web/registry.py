"""The vulnerability registry as product makers see it: sign up, confirm the key by the link
sent encrypted to it, see their own status, replace their key; and the public member list."""

import json
import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, EmailField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from app.accounts.team import MIN_PASSWORD_LENGTH
from app.core import clock, timefmt
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import AuditEvent, PublicKey, Registrant
from app.registry import proof, renewal, targeting, vetting
from app.web import ratelimit
from app.web.auth import roles_required
from app.web.outgoing import send_soon

bp = Blueprint("registry", __name__, url_prefix="/registry")
log = logging.getLogger("forewarn.web.registry")

MAX_KEY_BYTES = 1024 * 1024  # a public certificate, even with many signatures, is far smaller
APPLY = ratelimit.Limit("registry-apply", attempts=10, window_seconds=3600)
RESEND = ratelimit.Limit("registry-resend", attempts=5, window_seconds=3600)
EMBARGO_DAYS, FIX_DAYS, DEPLOY_DAYS = 90, 30, 60


@bp.context_processor
def _helpers():
    return {
        "utc": timefmt.minute,
        "utc_iso": timefmt.zulu,
        "policy_version": vetting.POLICY_VERSION,
    }


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ProductFields:
    """What the registrant ships: free text, and package URLs the team can match alerts to."""

    products = TextAreaField(
        "Products you build on the project",
        validators=[Length(max=5000)],
        filters=[_strip],
    )
    package_urls = TextAreaField(
        "Package URLs of what you ship (optional, one a line, e.g. "
        "pkg:github/zephyrproject-rtos/zephyr)",
        validators=[Optional(), Length(max=60_000)],
        filters=[_strip],
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )


class KeyFields:
    """An OpenPGP certificate, pasted or uploaded (armored or binary)."""

    key_text = TextAreaField(
        "OpenPGP public key (paste it, armored)",
        validators=[Optional(), Length(max=MAX_KEY_BYTES)],
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    key_file = FileField("…or upload the key file (armored or binary)")

    def key_bytes(self) -> bytes | None:
        """The key given, or None with the error put at the key fields."""
        upload = self.key_file.data
        pasted = (self.key_text.data or "").strip()
        data = upload.read(MAX_KEY_BYTES + 1) if upload and upload.filename else b""
        if data and pasted:
            self.key_text.errors.append("Give the key once: paste it or upload it, not both.")
            return None
        if len(data) > MAX_KEY_BYTES:
            self.key_file.errors.append("That file is too large to be a public key.")
            return None
        if not data and not pasted:
            self.key_text.errors.append(
                "Paste your OpenPGP public key or upload it: alerts are encrypted to it."
            )
            return None
        return data or pasted.encode("utf-8")


class AddressFields:
    """The registrant's alert address, as the sign-up and the admin's add form ask for it."""

    email = EmailField(
        "Email address for alerts",
        validators=[
            DataRequired(message="Enter the address alerts should go to."),
            Regexp(r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$", message="Enter an email address."),
            Length(max=254),
        ],
        filters=[_strip],
    )


class ApplyForm(AddressFields, ProductFields, KeyFields, FlaskForm):
    password = PasswordField(
        f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
        validators=[
            DataRequired(message="Choose a password to sign in with."),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=1024,
                message=f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            ),
        ],
    )
    organisation = StringField(
        "Organisation",
        validators=[DataRequired(message="Name your organisation."), Length(max=250)],
        filters=[_strip],
    )
    website = StringField(
        "Website",
        validators=[
            Optional(),
            Length(max=250),
            Regexp(r"^https?://\S+$", message="Give the full address, starting with https://."),
        ],
        filters=[_strip],
    )
    justification = TextAreaField(
        "Why you qualify (who uses your products, how many, how you ship fixes)",
        validators=[
            DataRequired(message="Say why you qualify: the products and who uses them."),
            Length(max=5000),
        ],
        filters=[_strip],
    )
    agrees = BooleanField(
        f"I agree to the embargo policy (version {vetting.POLICY_VERSION})",
        validators=[DataRequired(message="Registrants must agree to the embargo policy.")],
    )
    listed = BooleanField("List my organisation publicly as a registry member")


# The domain's refusals, put at the field they concern (the rest go at the top of the form).
_REFUSAL_FIELDS = (
    ("The key", "key_text"),
    ("is not an email address", "email"),
    ("password", "password"),
    ("organisation", "organisation"),
    ("the website", "website"),
    ("why you qualify", "justification"),
    ("embargo policy", "agrees"),
    ("package URL", "package_urls"),
)


def _refusal_field(form: FlaskForm, message: str):
    for fragment, name in _REFUSAL_FIELDS:
        if fragment in message and name in form:
            return form[name]
    return None


@bp.route("/apply", methods=["GET", "POST"])
def apply():
    form = ApplyForm()
    if request.method == "GET":
        return render_template("registry/apply.html", form=form)
    if not form.validate_on_submit():
        form.key_bytes()  # report a missing key with the other mistakes at once
        return _apply_page(form, "Nothing was registered: correct the fields marked below.")
    key = form.key_bytes()
    if key is None:
        return _apply_page(form, "Nothing was registered: correct the fields marked below.")
    if not ratelimit.hit(
        current_app.extensions["forewarn.redis"], APPLY, f"ip:{request.remote_addr or '?'}"
    ):
        return _apply_page(form, "Too many sign-ups from your address. Try again in an hour.", 429)
    signup = vetting.SignUp(
        email=form.email.data,
        password=form.password.data,
        organisation=form.organisation.data,
        products=form.products.data or "",
        website=form.website.data or "",
        justification=form.justification.data,
        key=key,
        agrees_to_policy=bool(form.agrees.data),
        listed_publicly=bool(form.listed.data),
        package_urls=form.package_urls.data or "",
    )
    try:
        # The same answer whether or not the address has an account (registry.apply).
        application = vetting.apply(signup, clock.now())
    except Refused as exc:
        field = _refusal_field(form, str(exc))
        if field is not None:
            field.errors.append(str(exc))
            return _apply_page(form, "Nothing was registered: correct the fields marked below.")
        return _apply_page(form, f"Nothing was registered: {exc}")
    send_soon()
    return render_template(
        "registry/applied.html", email=application.email, fingerprint=application.fingerprint
    )


def _apply_page(form: ApplyForm, message: str, status: int = 400):
    flash(message, "error")
    return render_template("registry/apply.html", form=form), status


@bp.route("/policy")
def policy():
    return render_template(
        "registry/policy.html",
        embargo_days=EMBARGO_DAYS,
        fix_days=FIX_DAYS,
        deploy_days=DEPLOY_DAYS,
    )


@bp.route("/members")
def members():
    return render_template(
        "registry/members.html", organisations=[r.organisation for r in vetting.public_members()]
    )


# -- the proof link --------------------------------------------------------------------------


class ConfirmForm(FlaskForm):
    """Only a button: opening the link (GET) must not use it up, since mail scanners fetch
    links on their own."""


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str):
    form = ConfirmForm()
    if request.method == "GET":
        return render_template("registry/verify.html", form=form)
    form.validate_on_submit()  # CSRF is checked before the view; the form has nothing else
    settings = current_app.extensions["forewarn.settings"]
    try:
        registrant = proof.verify(token, secret_key(settings), clock.now())
    except Refused as exc:
        return render_template("registry/verify.html", form=None, refused=str(exc)), 400
    return render_template("registry/verified.html", registrant=registrant)


@bp.route("/reconfirm/<token>", methods=["GET", "POST"])
def reconfirm(token: str):
    """The yearly "we still qualify" link. GET only shows the button (mail scanners fetch
    links); the POST confirms."""

    form = ConfirmForm()
    if request.method == "GET":
        return render_template("registry/reconfirm.html", form=form)
    settings = current_app.extensions["forewarn.settings"]
    try:
        registrant = renewal.confirm(token, secret_key(settings), clock.now())
    except Refused as exc:
        return render_template("registry/reconfirm.html", form=None, refused=str(exc)), 400
    return render_template("registry/reconfirm.html", form=None, confirmed=registrant)


# -- the registrant's own page -------------------------------------------------------------


class KeyForm(KeyFields, FlaskForm):
    pass


class ResendForm(FlaskForm):
    pass


class ProductsForm(ProductFields, FlaskForm):
    pass


def own_registration() -> Registrant:
    found = Registrant.get_or_none(Registrant.user == current_user.user)
    if found is None:
        abort(404)
    return found


def _latest_unproven_key(registrant: Registrant) -> PublicKey | None:
    """The newest key uploaded and not yet proven (the pinned one is proven)."""
    query = PublicKey.select().where(
        PublicKey.owner == registrant.user_id,
        PublicKey.usable == False,  # noqa: E712
    )
    if registrant.key_id is not None:
        pinned = PublicKey.get_by_id(registrant.key_id)
        query = query.where(PublicKey.id != pinned.id, PublicKey.created_at >= pinned.created_at)
    return query.order_by(PublicKey.created_at.desc(), PublicKey.id.desc()).first()


def _rejection_reason(registrant: Registrant) -> str:
    event = (
        AuditEvent.select()
        .where(AuditEvent.action == "registry.rejected", AuditEvent.target == registrant.user.email)
        .order_by(AuditEvent.id.desc())
        .first()
    )
    if event is None:
        return ""
    return json.loads(event.details or "{}").get("reason", "")


def _status_page(
    registrant: Registrant,
    key_form: KeyForm | None = None,
    status: int = 200,
    products_form: ProductsForm | None = None,
):
    return (
        render_template(
            "registry/status.html",
            registrant=registrant,
            email=registrant.user.email,
            unproven=_latest_unproven_key(registrant),
            reason=_rejection_reason(registrant) if registrant.status == "rejected" else "",
            key_form=key_form or KeyForm(),
            products_form=products_form
            or ProductsForm(
                formdata=None,
                products=registrant.products,
                package_urls=registrant.package_urls,
            ),
            resend_form=ResendForm(),
            resubscribe_form=ResendForm(),
            role_address=vetting.is_role_address(registrant.user.email),
        ),
        status,
    )


@bp.route("/status")
@roles_required("registrant")
def status():
    return _status_page(own_registration())


@bp.route("/status/resend", methods=["POST"])
@roles_required("registrant")
def resend():
    registrant = own_registration()
    key = _latest_unproven_key(registrant)
    if key is None:
        flash("You have no key waiting for confirmation: there is nothing to send.", "error")
        return redirect(url_for("registry.status"))
    if not ratelimit.hit(current_app.extensions["forewarn.redis"], RESEND, f"user:{registrant.id}"):
        flash("We sent several links in the last hour: wait an hour, then ask again.", "error")
        return redirect(url_for("registry.status"))
    proof.resend_proof(registrant, key, clock.now())
    send_soon()
    flash(
        f"We sent a new link to {registrant.user.email}, encrypted to your key "
        f"{key.fingerprint}. Decrypt it and open it within 48 hours; older links still work "
        "until they expire.",
        "success",
    )
    return redirect(url_for("registry.status"))


@bp.route("/status/key", methods=["POST"])
@roles_required("registrant")
def replace_key():
    registrant = own_registration()
    form = KeyForm()
    if registrant.status == "rejected":
        flash("Your application was rejected: there is no key to replace.", "error")
        return redirect(url_for("registry.status"))
    key = form.key_bytes() if form.validate_on_submit() else None
    if key is None:
        flash("Your key was not replaced: see the key form below.", "error")
        return _status_page(registrant, form, 400)
    try:
        stored = vetting.replace_key(registrant, key, clock.now())
    except Refused as exc:
        form.key_text.errors.append(str(exc))
        flash("Your key was not replaced: see the key form below.", "error")
        return _status_page(registrant, form, 400)
    send_soon()
    if registrant.pinned_fingerprint:
        until = f"until then, alerts stay encrypted to your key {registrant.pinned_fingerprint}"
    else:
        until = "until then, your registration stays unconfirmed"
    flash(
        f"We sent a link to {registrant.user.email}, encrypted to your new key "
        f"{stored.fingerprint}. Decrypt it and open it within 48 hours; {until}.",
        "success",
    )
    return redirect(url_for("registry.status"))


@bp.route("/status/products", methods=["POST"])
@roles_required("registrant")
def products():
    registrant = own_registration()
    form = ProductsForm()
    if not form.validate_on_submit():
        flash("Your products were not changed: see the products form below.", "error")
        return _status_page(registrant, status=400, products_form=form)
    try:
        targeting.declare(
            registrant, form.products.data or "", form.package_urls.data or "", clock.now()
        )
    except Refused as exc:
        form.package_urls.errors.append(str(exc))
        flash("Your products were not changed: see the products form below.", "error")
        return _status_page(registrant, status=400, products_form=form)
    flash(
        "Your products are saved. The security team may send an alert only to registrants "
        "whose products it affects; these are what it matches.",
        "success",
    )
    return redirect(url_for("registry.status"))
