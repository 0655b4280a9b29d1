"""A signed-in person's own account: two-factor enrolment, after their password again."""

import io
from datetime import datetime, timedelta

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from app.accounts import team, totp
from app.core import clock
from app.core.errors import Refused
from app.web.auth import sign_in_failed, sign_in_refusal, sign_in_succeeded

bp = Blueprint("account", __name__, url_prefix="/account")

# The secret being set up lives in Flask's session cookie until a code confirms it. That
# cookie is signed (the client cannot swap in another secret) but not encrypted, so whoever
# holds the cookie can read the secret. That is acceptable here: the page shows the same
# secret as text to the same person anyway, the secret grants nothing until a code from it is
# confirmed (it is then moved to the database and dropped from the cookie), the cookie is
# HttpOnly (and Secure over https), and an abandoned setup leaves nothing on the server.
# A setup starts only once the person has given their password again (whoever holds a
# session must not be able to put their own authenticator on the account), and lasts
# SETUP_LIFETIME: an old cookie cannot finish it later.
PENDING = "totp_pending"
SETUP_LIFETIME = timedelta(minutes=10)


class IdentityForm(FlaskForm):
    password = PasswordField(
        "Your password",
        validators=[DataRequired(message="Enter your password."), Length(max=1024)],
    )


class ConfirmForm(FlaskForm):
    code = StringField(
        "The 6-digit code your app shows now",
        validators=[
            DataRequired(message="Enter the 6-digit code your app shows."),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="The code is 6 digits, like 123 456."),
        ],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "maxlength": 8},
    )


@bp.route("/security")
@login_required
def security():
    return render_template("account/security.html", enrolled=bool(current_user.user.totp_secret))


@bp.route("/security/authenticator", methods=["GET", "POST"])
@login_required
def authenticator():
    user = current_user.user
    form = ConfirmForm()
    secret = _pending_secret()
    if form.is_submitted():
        if secret is None:  # expired, never started, or signed in again elsewhere
            flash("That setup had expired. Enter your password to start again.", "error")
            return redirect(url_for("account.authenticator"))
        if form.validate():
            try:
                totp.confirm_enrolment(user, secret, form.code.data, clock.now())
            except Refused as exc:
                form.code.errors.append(f"{str(exc)[0].upper()}{str(exc)[1:]}.")
            else:
                session.pop(PENDING, None)
                flash(
                    "Your authenticator app is set up: from now on, signing in asks for the "
                    "6-digit code it shows.",
                    "success",
                )
                return redirect(url_for("account.security"))
        flash("Your authenticator is not set up yet; see the code field below.", "error")
        return _setup_page(secret, form, status=400)
    if secret is None:
        return _identity_page(IdentityForm())
    return _setup_page(secret, form)


@bp.route("/security/authenticator/identity", methods=["POST"])
@login_required
def identity():
    """The password again; only then is a new secret made (and shown)."""
    user = current_user.user
    form = IdentityForm()
    if not form.validate_on_submit():
        return _identity_page(form, status=400)
    address = request.remote_addr or "unknown"
    refusal = sign_in_refusal(user.email, address, clock.now())
    if refusal:
        form.password.errors.append(refusal)
        return _identity_page(form, status=429)
    try:
        team.reauthenticate(
            user, form.password.data, clock.now(), why="authenticator", source=address
        )
    except team.LoginFailed as exc:
        sign_in_failed(user.email, address, clock.now())
        form.password.errors.append(str(exc))
        return _identity_page(form, status=401)
    sign_in_succeeded(user.email, address)
    session[PENDING] = {
        "user": user.id,
        "secret": totp.new_secret(),
        "since": clock.now().isoformat(),
    }
    return redirect(url_for("account.authenticator"))


@bp.route("/security/qr.svg")
@login_required
def qr_code():
    """The QR code of the secret being set up, served from here: the CSP allows no data: URLs."""
    secret = _pending_secret()
    if secret is None:
        abort(404)
    return Response(
        qr_svg(totp.provisioning_uri(secret, current_user.email)), mimetype="image/svg+xml"
    )


def qr_svg(uri: str) -> bytes:
    out = io.BytesIO()
    # A light background and the standard quiet zone, so dark-themed pages still scan.
    segno.make(uri, error="m").save(
        out,
        kind="svg",
        scale=4,
        border=4,
        dark="#000",
        light="#fff",
        xmldecl=False,
        title="QR code for your authenticator app",
    )
    return out.getvalue()


def _pending_secret() -> str | None:
    """The secret being set up, if this person started it (with their password) lately."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or pending.get("user") != current_user.user.id:
        return None
    try:
        since = datetime.fromisoformat(pending["since"])
    except (KeyError, TypeError, ValueError):
        return None
    if not since <= clock.now() < since + SETUP_LIFETIME:
        return None
    return pending.get("secret")


def _identity_page(form: IdentityForm, status: int = 200):
    page = render_template(
        "account/identity.html", form=form, replacing=bool(current_user.user.totp_secret)
    )
    return page, status


def _setup_page(secret: str, form: ConfirmForm, status: int = 200):
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    page = render_template(
        "account/authenticator.html",
        form=form,
        secret=grouped,
        replacing=bool(current_user.user.totp_secret),
    )
    return page, status
