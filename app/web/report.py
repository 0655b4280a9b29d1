"""The report form (/report): a vulnerability reported with nothing but a browser, no account and
no OpenPGP. The portal encrypts it to the service key's public part and stores it before it
answers (app/reports/webform.py); a worker processes it as a mail report. The answer shows the
tracking id and the reporter's private follow-up link, once.
"""

import contextlib
import logging
from datetime import timedelta

import redis
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import BooleanField, EmailField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.core import clock, timefmt
from app.core.errors import REPORTED
from app.core.instance import secret_key
from app.reports import followup, webform
from app.web import ratelimit
from app.web.public import service_certificate
from app.workers import health, reconcile

bp = Blueprint("report", __name__)
log = logging.getLogger("forewarn.web.report")

MAX_KEY_BYTES = 1024 * 1024
# Reports from one address, and from everyone: a person reports a few things an hour at most;
# a flood from many addresses is stopped by the second.
PER_ADDRESS = ratelimit.Limit("report-address", attempts=10, window_seconds=3600)
GLOBAL = ratelimit.Limit("report-global", attempts=200, window_seconds=3600)
_ANSWER = "report.answer"  # the session's one-time answer: (tracking id, token, email given)


class ReportForm(FlaskForm):
    title = StringField(
        "Title (one line: what is wrong, and where)",
        validators=[DataRequired(message="Give your report a short title."), Length(max=200)],
    )
    description = TextAreaField(
        "Description (Markdown allowed): what the vulnerability is, the affected versions, "
        "how to reproduce it, and its impact",
        validators=[
            DataRequired(message="Describe the vulnerability: what, where, and how."),
            Length(max=webform.MAX_DESCRIPTION),
        ],
    )
    name = StringField("Your name (optional)", validators=[Optional(), Length(max=200)])
    email = EmailField(
        "Your email address (optional: for our acknowledgement and replies)",
        validators=[Optional(), Length(max=254)],
    )
    key_text = TextAreaField(
        "Your OpenPGP public key (optional; paste it, armored)",
        validators=[Optional(), Length(max=MAX_KEY_BYTES)],
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    key_file = FileField("…or upload your key file (armored or binary)")
    attachments = MultipleFileField("Files (optional: proofs of concept, logs, PDFs)")
    credit = BooleanField("Credit me by name in the advisory")
    # The honeypot: hidden from people (and from screen readers); bots fill every field.
    homepage = StringField("Leave this field empty", validators=[Optional()])


@bp.context_processor
def _helpers():
    settings = current_app.extensions["forewarn.settings"]
    return {
        "max_file": webform.size(settings.report_max_file_bytes),
        "max_report": webform.size(settings.report_max_bytes),
        "embargo_days": settings.embargo_days,
        "fix_days": settings.fix_target_days,
    }


def _form_page(form: ReportForm, message: str | None = None, status: int = 200):
    if message:
        flash(message, "error")
    return render_template("report/form.html", form=form), status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error):
    settings = current_app.extensions["forewarn.settings"]
    return render_template(
        "error.html",
        title="Report too large",
        message=(
            "Nothing was sent: the report with its files is larger than "
            f"{webform.size(settings.report_max_bytes)}, the limit for one report (each file "
            f"may have at most {webform.size(settings.report_max_file_bytes)}). Go back, "
            "compress the files or leave some out, and send it again."
        ),
    ), 413


@bp.route("/report", methods=["GET", "POST"])
def form():
    form = ReportForm()
    if request.method == "GET":
        return render_template("report/form.html", form=form)
    connection = current_app.extensions["forewarn.redis"]
    address = request.remote_addr or "?"
    for limit, key in ((PER_ADDRESS, f"ip:{address}"), (GLOBAL, "all")):
        if not ratelimit.hit(connection, limit, key):
            return _busy(ratelimit.retry_after(connection, limit, key))
    if form.homepage.data:
        return _trapped(connection)
    if not form.validate_on_submit():
        return _form_page(form, "Nothing was sent: correct the fields marked below.", 400)
    report, problem = _report(form)
    if problem:
        return _form_page(form, problem, 400)
    settings = current_app.extensions["forewarn.settings"]
    try:
        filed = webform.file(
            report, service_certificate(), settings, secret_key(settings), clock.now()
        )
    except webform.Mistake as exc:
        field = getattr(form, exc.field if exc.field != "key" else "key_text", None)
        if field is not None:
            field.errors = [*field.errors, str(exc)]
        return _form_page(form, f"Nothing was sent: {exc}", 400)
    except REPORTED as exc:  # the service key cannot be read or used: say so, keep nothing
        log.error("a web report could not be stored: %s", type(exc).__name__)
        return render_template(
            "error.html",
            title="Reports cannot be taken right now",
            message="Nothing was stored. Please try again in a few minutes, or mail your "
            f"report to {settings.security_address}.",
        ), 503
    _process_soon(connection, filed.message_id)
    session[_ANSWER] = [filed.tracking_id, filed.token, bool(report.email.strip())]
    flash(f"Your report was received as {filed.tracking_id}.", "success")
    return redirect(url_for("report.sent"), 303)


@bp.route("/report/sent")
def sent():
    """The answer, shown once: the tracking id and the follow-up link leave the session here
    (the token is stored nowhere else)."""
    answer = session.pop(_ANSWER, None)
    if not answer:
        return render_template("report/sent.html", tracking_id=None)
    tracking_id, token, emailed = answer
    settings = current_app.extensions["forewarn.settings"]
    return render_template(
        "report/sent.html",
        tracking_id=tracking_id,
        follow_up=followup.url_of(token, settings.base_url),
        emailed=emailed,
        security_address=settings.security_address,
    )


def _report(form: ReportForm) -> tuple[webform.WebReport | None, str | None]:
    """The report as given, or why it cannot be read (a key given twice, a file too large)."""
    settings = current_app.extensions["forewarn.settings"]
    pasted = (form.key_text.data or "").strip()
    upload = form.key_file.data
    key_data = upload.read(MAX_KEY_BYTES + 1) if upload and upload.filename else b""
    if key_data and pasted:
        form.key_text.errors = ["Give the key once: paste it or upload it, not both."]
        return None, "Nothing was sent: correct the fields marked below."
    if len(key_data) > MAX_KEY_BYTES:
        form.key_file.errors = ["That file is too large to be a public key."]
        return None, "Nothing was sent: correct the fields marked below."
    files = []
    for upload in request.files.getlist("attachments"):
        if not upload or not upload.filename:
            continue  # the empty part a browser sends when no file was chosen
        # Read no more than the limit allows, plus a byte to know it was exceeded.
        content = upload.read(settings.report_max_file_bytes + 1)
        files.append(webform.File(upload.filename, upload.mimetype or "", content))
    try:
        webform.check_sizes([(f.filename, len(f.content)) for f in files], settings)
    except webform.Mistake as exc:
        form.attachments.errors = [str(exc)]
        return None, f"Nothing was sent: {exc} Choose the files again."
    report = webform.WebReport(
        title=form.title.data or "",
        description=form.description.data or "",
        name=form.name.data or "",
        email=form.email.data or "",
        key=key_data or pasted.encode("utf-8") or None,
        files=tuple(files),
        credit=bool(form.credit.data),
    )
    return report, None


def _process_soon(connection, message_id: int) -> None:
    """Queue its processing now; without Redis the reconciler finds the stored row later."""
    try:
        reconcile.queue_new_inbound(connection, [message_id])
    except redis.RedisError as exc:
        log.warning("could not queue a web report now (%s); the reconciler will", exc)


def _busy(seconds: int):
    at = clock.now() + timedelta(seconds=seconds)
    minutes = max(1, (seconds + 59) // 60)
    page = render_template(
        "error.html",
        title="Too many reports",
        message=(
            "Nothing was sent: too many reports came from your address (or from everyone) in "
            f"the last hour. Try again in {minutes} minute{'s' if minutes != 1 else ''}, after "
            f"{timefmt.minute(at)}. Your text is not kept: copy it before you leave this page."
        ),
    )
    return page, 429, {"Retry-After": str(max(1, seconds))}


def _trapped(connection):
    """The hidden field was filled: a bot. It gets the answer a person gets, and nothing is
    stored; the trap is counted (the metrics page shows it)."""
    with contextlib.suppress(redis.RedisError):
        connection.incr(health.REPORT_TRAPPED)
    log.info("report form: a submission filled the hidden field; nothing was stored")
    settings = current_app.extensions["forewarn.settings"]
    fake = f"{settings.tracking_prefix}-{clock.now().year}-{webform.decoy_number()}"
    session[_ANSWER] = [fake, webform.decoy_token(), False]
    flash(f"Your report was received as {fake}.", "success")
    return redirect(url_for("report.sent"), 303)
