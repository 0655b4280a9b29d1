"""Sign-in and sign-out for everyone with an account, and password reset by mail."""

import logging
from functools import wraps
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from app.accounts import password_reset, team
from app.core import clock
from app.core.errors import Refused
from app.core.instance import secret_key
from app.models import User
from app.web import ratelimit
from app.web.outgoing import send_soon

bp = Blueprint("auth", __name__)
log = logging.getLogger("forewarn.web.auth")
FORGOT = ratelimit.Limit("password-reset", attempts=5, window_seconds=3600)


class SessionUser(UserMixin):
    """The signed-in account. Its id is the account's session token, which rotates."""

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return self.user.session_token

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def role(self) -> str:
        return self.user.role


def init_app(app) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = "Please sign in to see that page."
    manager.login_message_category = "info"
    manager.session_protection = "basic"

    @manager.user_loader
    def _load(token: str):
        user = User.get_or_none(User.session_token == token, User.active == True)  # noqa: E712
        return SessionUser(user) if user is not None else None


def roles_required(*roles: str):
    """Only signed-in accounts with one of these roles; others are sent to sign in or get 403."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


class LoginForm(FlaskForm):
    # A shape check only (wtforms' Email() needs the email_validator package, not installed);
    # accounts.authenticate() decides whether the account exists.
    email = EmailField(
        "Email",
        validators=[
            DataRequired(),
            Regexp(r"^\s*[^@\s]+@[^@\s]+\s*$", message="Enter an email address."),
            Length(max=254),
        ],
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    code = StringField(
        "Authenticator code (if you set one up)",
        validators=[Length(max=10)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths, so the login page cannot send people elsewhere."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 for c in target):  # browsers read a backslash as "/"
        return None
    return target


def _home_for(role: str) -> str:
    return url_for("team.home") if role in team.TEAM_ROLES else url_for("public.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_home_for(current_user.role))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        settings = current_app.extensions["forewarn.settings"]
        email = form.email.data.strip().lower()
        address = request.remote_addr or "unknown"
        refusal = sign_in_refusal(email, address, clock.now())
        if refusal:
            flash(refusal, "error")
            return render_template("login.html", form=form), 429
        try:
            user = team.authenticate(
                email,
                form.password.data,
                form.code.data or "",
                clock.now(),
                settings.require_2fa,
                source=address,
            )
        except team.LoginFailed as exc:
            sign_in_failed(email, address, clock.now(), wrong_code=isinstance(exc, team.WrongCode))
            flash(str(exc), "error")
            status = 401
        except team.SecondFactorNeeded as exc:
            flash(str(exc), "info")
            status = 401
        else:
            sign_in_succeeded(email, address)
            session.clear()  # a fresh session at sign-in: no fixation
            login_user(SessionUser(user))
            flash(f"Signed in as {user.email}.", "success")
            return redirect(_safe_next(request.args.get("next")) or _home_for(user.role))
    elif request.method == "POST":
        status = 400
    return render_template("login.html", form=form), status


# -- how often a password may be tried ------------------------------------------------------
# Failures count per address (any account: ratelimit.LOGIN) and per account and address
# (ratelimit.LOGIN_PAIR: a few pass, then each waits longer), never per account alone, so no
# one can keep the owner out from their own address. Successful sign-ins cost nothing. Wrong
# authenticator codes after the right password also count per account (ratelimit.LOGIN_CODE).


def _redis():
    return current_app.extensions["forewarn.redis"]


def sign_in_refusal(email: str, address: str, at) -> str | None:
    """Why this attempt is refused before the password is checked, or None; a None counts
    the attempt against the address's budget (sign_in_succeeded gives it back)."""
    wait = ratelimit.wait_left(_redis(), ratelimit.LOGIN_PAIR, f"{email}|{address}", at)
    if wait:
        minutes = max(1, -(-wait // 60))
        unit = "minute" if minutes == 1 else "minutes"
        return (
            "Too many failed sign-ins to this account from your address. "
            f"Wait {minutes} {unit}, then try again (or reset your password)."
        )
    if ratelimit.exhausted(_redis(), ratelimit.LOGIN_CODE, f"account:{email}"):
        return "Too many wrong authenticator codes for this account. Wait 15 minutes."
    if not ratelimit.hit(_redis(), ratelimit.LOGIN, f"ip:{address}"):
        return "Too many failed sign-ins from your address. Wait 15 minutes, then try again."
    return None


def sign_in_failed(email: str, address: str, at, wrong_code: bool = False) -> None:
    ratelimit.failed(_redis(), ratelimit.LOGIN_PAIR, f"{email}|{address}", at)
    if wrong_code:
        ratelimit.hit(_redis(), ratelimit.LOGIN_CODE, f"account:{email}")


def sign_in_succeeded(email: str, address: str) -> None:
    ratelimit.refund(_redis(), ratelimit.LOGIN, f"ip:{address}")
    ratelimit.reset(_redis(), ratelimit.LOGIN_PAIR, f"{email}|{address}")
    ratelimit.reset(_redis(), ratelimit.LOGIN_CODE, f"account:{email}")


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        # Signing out ends every session of the account, including copied cookies.
        team.end_sessions(current_user.user)
    logout_user()
    session.clear()
    flash("You are signed out. Sign in again to continue working.", "success")
    return redirect(url_for("auth.login"))


# -- password reset by mail ----------------------------------------------------------------


class ForgotForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[
            DataRequired(message="Enter the address of your account."),
            Regexp(r"^\s*[^@\s]+@[^@\s]+\s*$", message="Enter an email address."),
            Length(max=254),
        ],
    )


MIN = team.MIN_PASSWORD_LENGTH


class ResetForm(FlaskForm):
    password = PasswordField(
        f"New password (at least {team.MIN_PASSWORD_LENGTH} characters)",
        validators=[
            DataRequired(message="Choose a new password."),
            Length(
                min=team.MIN_PASSWORD_LENGTH,
                max=1024,
                message=f"The password must have at least {MIN} characters.",
            ),
        ],
    )
    confirm = PasswordField(
        "The new password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


@bp.route("/login/forgot", methods=["GET", "POST"])
def forgot():
    form = ForgotForm()
    if request.method == "GET":
        return render_template("forgot.html", form=form)
    if not form.validate_on_submit():
        return render_template("forgot.html", form=form), 400
    redis_conn = current_app.extensions["forewarn.redis"]
    email = form.email.data.strip().lower()
    address = request.remote_addr or "unknown"
    if not (
        ratelimit.hit(redis_conn, FORGOT, f"ip:{address}")
        and ratelimit.hit(redis_conn, FORGOT, f"email:{email}")
    ):
        flash("Too many reset requests. Wait an hour, then try again.", "error")
        return render_template("forgot.html", form=form), 429
    password_reset.request_reset(email, clock.now())
    send_soon()
    flash(password_reset.MESSAGE, "info")
    return redirect(url_for("auth.login"))


@bp.route("/login/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    settings = current_app.extensions["forewarn.settings"]
    form = ResetForm()
    try:
        user = password_reset.check(token, secret_key(settings), clock.now())
    except Refused as exc:
        return render_template("reset.html", form=None, refused=str(exc)), 400
    if request.method == "GET":
        return render_template("reset.html", form=form, email=user.email)
    if not form.validate_on_submit():
        return render_template("reset.html", form=form, email=user.email), 400
    try:
        password_reset.reset(token, form.password.data, secret_key(settings), clock.now())
    except Refused as exc:
        return render_template("reset.html", form=None, refused=str(exc)), 400
    logout_user()
    session.clear()
    flash("Your password was changed and every session was ended. Sign in with it.", "success")
    return redirect(url_for("auth.login"))
