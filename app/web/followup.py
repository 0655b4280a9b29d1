"""The reporter's follow-up page, `/follow-up/<token>`: their case without an account.

Opening it changes nothing (mail scanners fetch links); what the reporter does is a POST with
CSRF. An unknown, altered or revoked token gets the same 404 as any unknown address, and an
address that keeps trying tokens that open nothing is slowed down (app/web/ratelimit.py).
"""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import Length

from app.core import clock, timefmt
from app.core.errors import Refused
from app.models import Vulnerability
from app.reports import followup, followup_view
from app.web import files, public, ratelimit
from app.workers import reconcile

bp = Blueprint("followup", __name__, url_prefix="/follow-up")

# Tokens that open nothing, per address: far more than a reporter mistyping ever needs, far
# too few to guess one of 2^256.
GUESSES = ratelimit.Limit("follow-up", attempts=30, window_seconds=3600)


class ReplyForm(FlaskForm):
    text = TextAreaField("Your message to the security team", validators=[Length(max=100_000)])
    attachments = MultipleFileField("Files to attach (optional)")


class CreditForm(FlaskForm):
    name = StringField("Name to credit", validators=[Length(max=followup_view.MAX_NAME)])
    anonymous = BooleanField("Stay anonymous: do not credit me")


def _redis():
    return current_app.extensions["forewarn.redis"]


def _case(token: str, pending_too: bool = False) -> Vulnerability | followup_view.Pending:
    """The case the token opens, or the generic 404 (counted against the address). With
    `pending_too`, a web report not yet filed by a worker (its link works at once)."""
    address = request.remote_addr or "unknown"
    if ratelimit.exhausted(_redis(), GUESSES, address):
        page = render_template(
            "error.html",
            title="Too many tries",
            message="Too many follow-up links that open nothing came from your address. "
            "Try again in an hour, with the link exactly as we sent it.",
        )
        abort(make_response(page, 429, {"Retry-After": str(GUESSES.window_seconds)}))
    link = followup.find(token)
    root = followup_view.case_of(link) if link is not None else None
    if root is None and link is not None and pending_too:
        waiting = followup_view.pending(link)
        if waiting is not None:
            return waiting
    if root is None:
        ratelimit.hit(_redis(), GUESSES, address)
        abort(404)
    return root


def _page(token: str, root: Vulnerability, reply: ReplyForm, credit: CreditForm, status=200):
    view = followup_view.page(root)
    if not credit.is_submitted():
        credit.name.data = view.root.reporter_name
        credit.anonymous.data = view.anonymous
    response = render_template(
        "followup.html",
        token=token,
        view=view,
        reply=reply,
        credit=credit,
        minute=timefmt.minute,
    )
    return response, status, {"X-Robots-Tag": "noindex, nofollow"}


@bp.route("/<token>")
def page(token: str):
    root = _case(token, pending_too=True)
    if isinstance(root, followup_view.Pending):  # the forms come once the report is filed
        page = render_template("followup_pending.html", report=root, minute=timefmt.minute)
        return page, 200, {"X-Robots-Tag": "noindex, nofollow"}
    return _page(token, root, ReplyForm(formdata=None), CreditForm(formdata=None, prefix="credit"))


@bp.route("/<token>/reply", methods=["POST"])
def reply(token: str):
    root = _case(token)
    form = ReplyForm()
    if not form.validate_on_submit():
        flash("Your reply was not sent: " + _errors(form), "error")
        return _page(token, root, form, CreditForm(formdata=None, prefix="credit"), 400)
    uploads = [
        followup_view.Upload(f.filename or "", f.mimetype or "", f.read())
        for f in request.files.getlist(form.attachments.name)
        if f and f.filename
    ]
    at = clock.now()
    settings = current_app.extensions["forewarn.settings"]
    try:
        message_id = followup_view.store_reply(
            root, form.text.data, uploads, public.service_certificate(), settings, at
        )
    except Refused as exc:
        flash(f"Your reply was not sent: {exc}", "error")
        return _page(token, root, form, CreditForm(formdata=None, prefix="credit"), 400)
    try:  # committed already: the reconciler picks it up within a minute if this fails
        reconcile.queue_new_inbound(_redis(), [message_id])
    except Exception:  # noqa: BLE001 (Redis down: the row is safe, the reconciler queues it)
        current_app.logger.warning("could not queue follow-up reply %d now", message_id)
    flash(
        "Your reply was received, encrypted, and will join the thread below shortly; "
        "the security team is told of it.",
        "success",
    )
    return redirect(url_for("followup.page", token=token))


@bp.route("/<token>/credit", methods=["POST"])
def credit(token: str):
    root = _case(token)
    form = CreditForm(prefix="credit")
    if not form.validate_on_submit():
        flash("Your credit was not changed: " + _errors(form), "error")
        return _page(token, root, ReplyForm(formdata=None), form, 400)
    try:
        changed = followup_view.set_credit(
            root, form.name.data or "", bool(form.anonymous.data), clock.now()
        )
    except Refused as exc:
        flash(f"Your credit was not changed: {exc}", "error")
        return _page(token, root, ReplyForm(formdata=None), form, 400)
    if changed.credit_reporter:
        flash(f"Saved: you will be credited as {changed.reporter_name} when we publish.", "success")
    else:
        flash("Saved: you will not be credited by name when we publish.", "success")
    return redirect(url_for("followup.page", token=token))


@bp.route("/<token>/files/<int:file_id>")
def file(token: str, file_id: int):
    """One of the reporter's own files: always a download, never shown inline."""
    root = _case(token)
    found = followup_view.attachment(root, file_id)
    if found is None:
        abort(404)
    return files.download(found)


def _errors(form: FlaskForm) -> str:
    return "; ".join(" ".join(e) for e in form.errors.values()) or "try again"
