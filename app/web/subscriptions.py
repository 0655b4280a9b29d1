"""Alerts subscription: the RFC 8058 one-click unsubscribe that alerts carry, its page, and
resubscribing from the registrant's status page. Each link belongs to one alert and expires
(app.registry.subscriptions); every unsubscription is confirmed to the registrant by mail."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from app.core import clock
from app.core.errors import Refused
from app.core.instance import secret_key
from app.registry import subscriptions
from app.web.auth import roles_required
from app.web.outgoing import send_soon
from app.web.registry import own_registration

bp = Blueprint("subscriptions", __name__, url_prefix="/registry")


class ButtonForm(FlaskForm):
    """Only a button (and its CSRF token)."""


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """A page with a button: opening the link (GET) changes nothing, since scanners fetch it."""
    form = ButtonForm()
    settings = current_app.extensions["forewarn.settings"]
    try:
        if request.method == "GET":  # an expired or broken link says so before the button
            subscriptions.check(token, secret_key(settings), clock.now())
            return render_template("registry/unsubscribe.html", form=form, done=False)
        form.validate_on_submit()  # CSRF is checked before the view; the form has nothing else
        subscriptions.unsubscribe(token, secret_key(settings), clock.now())
    except Refused as exc:
        return render_template("registry/unsubscribe.html", form=None, refused=str(exc)), 400
    send_soon()  # the notice that alerts stopped
    return render_template("registry/unsubscribe.html", form=None, done=True)


@bp.route("/unsubscribe/<token>/one-click", methods=["GET", "POST"])
def unsubscribe_one_click(token: str):
    """RFC 8058: mail providers POST `List-Unsubscribe=One-Click` without a session or CSRF
    token; the signed token in the address is the authorisation. A person who opens the
    List-Unsubscribe address in a browser (GET) gets the page with its button."""
    if request.method == "GET":
        return redirect(url_for("subscriptions.unsubscribe", token=token))
    if request.form.get("List-Unsubscribe") != "One-Click":
        return _plain("Send List-Unsubscribe=One-Click (RFC 8058).", 400)
    settings = current_app.extensions["forewarn.settings"]
    try:
        subscriptions.unsubscribe(token, secret_key(settings), clock.now(), via="one-click")
    except Refused as exc:
        return _plain(str(exc), 400)
    send_soon()  # the notice that alerts stopped
    return _plain("Unsubscribed.", 200)


def _plain(text: str, status: int):
    return text, status, {"Content-Type": "text/plain; charset=utf-8"}


# The one documented exception to CSRF protection (tests/test_routes.py checks it).
bp.record_once(lambda state: state.app.extensions["csrf"].exempt(unsubscribe_one_click))


@bp.route("/status/resubscribe", methods=["POST"])
@roles_required("registrant")
def resubscribe():
    registrant = own_registration()
    ButtonForm().validate_on_submit()  # CSRF is checked before the view
    subscriptions.resubscribe(registrant, clock.now())
    flash("You receive alerts again.", "success")
    return redirect(url_for("registry.status"))


@bp.route("/status/unsubscribe", methods=["POST"])
@roles_required("registrant")
def unsubscribe_signed_in():
    registrant = own_registration()
    ButtonForm().validate_on_submit()  # CSRF is checked before the view
    subscriptions.stop(registrant, clock.now())
    send_soon()  # the notice that alerts stopped
    flash("You receive no more alerts. You can ask for them again here at any time.", "success")
    return redirect(url_for("registry.status"))
