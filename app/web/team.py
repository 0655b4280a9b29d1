"""The security team's workspace: the reports, one report's thread with a reply form, and the
inbound messages held for a human."""

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
from markupsafe import Markup
from peewee import JOIN, fn
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.accounts.team import TEAM_ROLES
from app.core import clock, markdown, timefmt
from app.core.errors import Refused
from app.disclosure import lift, preflight
from app.models import Correspondence, CveId, Delivery, InboundMessage, User, Vulnerability
from app.registry import nudges
from app.reports import attachments, followup, replies
from app.vulns import cases, lifecycle, views
from app.web import answers, timeline, workspace
from app.web.auth import roles_required
from app.web.outgoing import send_soon

bp = Blueprint("team", __name__, url_prefix="/team")
log = logging.getLogger("forewarn.web.team")

HELD_STATES = ("quarantined", "junk")
HELD_SHOWN = 200  # junk piles up; the newest are the ones a person still acts on
MAX_REPLY_CHARS = 100_000

# What each signature status means (keys.verify.STATUSES, and "signed" on our own replies).
SIGNATURES = {
    "valid": "valid signature",
    "bad": "BAD signature: the text may have been changed",
    "unknown-key": "signed by a key we do not have",
    "expired-key": "signed by an expired key",
    "revoked-key": "signed by a revoked key",
    "unsigned": "not signed",
    "signed": "signed with the service key",
}


@bp.context_processor
def template_helpers():
    return {"utc": timefmt.minute, "utc_iso": timefmt.zulu, "signatures": SIGNATURES}


class ReplyForm(FlaskForm):
    text = TextAreaField(
        "Your reply to the reporter",
        validators=[
            DataRequired(message="Write a reply before sending it."),
            Length(
                max=MAX_REPLY_CHARS,
                message=f"Keep the reply under {MAX_REPLY_CHARS:,} characters.",
            ),
        ],
    )


@bp.route("/")
@roles_required(*TEAM_ROLES)
def home():
    view = request.args.get("view", "mine")
    if view not in views.QUEUES:
        view = "mine"
    search = request.args.get("q", "")[:200]
    messages = Correspondence.select(fn.COUNT(Correspondence.id)).where(
        Correspondence.vulnerability == Vulnerability.id
    )
    rows = views.queue(view, current_user.user, clock.now(), search)
    rows = list(rows.select_extend(messages.alias("message_count")))
    roots = {v.case_root_id for v in rows if v.case_root_id is not None}
    cases_of = dict(
        Vulnerability.select(Vulnerability.id, Vulnerability.tracking_id)
        .where(Vulnerability.id.in_(list(roots)))
        .tuples()
    )
    return render_template(
        "team/home.html",
        vulnerabilities=rows,
        cases_of=cases_of,
        held=_held_counts(),
        view=view,
        views=views.QUEUES,
        search=search,
        now=clock.now(),
    )


@bp.route("/dashboard")
@roles_required(*TEAM_ROLES)
def dashboard():
    at = clock.now()
    open_ones = (
        Vulnerability.select()
        .where(
            Vulnerability.status.in_(lifecycle.OPEN_STATES),
            Vulnerability.embargo_until.is_null(False),
        )
        .order_by(Vulnerability.embargo_until)
    )
    settings = current_app.extensions["forewarn.settings"]
    return render_template(
        "team/dashboard.html",
        chart=timeline.chart(list(open_ones), at),
        now=at,
        silences=nudges.nearing(at, settings),
        preflights=preflight.upcoming(at, settings),
    )


@bp.route("/vulnerabilities/<tracking_id>")
@roles_required(*TEAM_ROLES)
def vulnerability(tracking_id: str):
    return _vulnerability_page(_vulnerability_or_404(tracking_id), ReplyForm())


@bp.route("/vulnerabilities/<tracking_id>/reply", methods=["POST"])
@roles_required(*TEAM_ROLES)
def reply(tracking_id: str):
    v = _vulnerability_or_404(tracking_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        flash("Your reply was not sent; see the reply form below.", "error")
        return _vulnerability_page(v, form, status=400)
    try:
        entry = replies.reply_to_reporter(v, current_user.user, form.text.data, clock.now())
    except Refused as exc:
        flash(f"Your reply was not sent: {exc}.", "error")
        return _vulnerability_page(v, form, status=400)
    send_soon()
    if entry.delivery_id is None:
        flash(
            "Reply kept: the reporter gave no email address, so nothing is mailed; they read "
            "it on their follow-up page.",
            "success",
        )
    elif entry.encrypted:
        flash(
            f"Reply queued to {v.reporter_email}, encrypted to their key "
            f"{v.reporter_key.fingerprint}. Its delivery state shows beside it in the thread.",
            "success",
        )
    elif followup.live(cases.case_id(v)) is not None:
        flash(
            f"Reply queued to {v.reporter_email}: they have no usable key on file, so they get "
            "a signed notice (your text is not sent unencrypted) pointing to their follow-up "
            "page, where they read your reply and can answer it.",
            "success",
        )
    else:
        flash(
            f"Reply queued to {v.reporter_email}: they have no usable key on file, so they get "
            "a signed notice asking for one (your text is not sent unencrypted). When their key "
            "arrives with their answer, confirm it in the thread, then send your reply again.",
            "success",
        )
    return redirect(url_for("team.vulnerability", tracking_id=v.tracking_id))


@bp.route("/messages/held")
@roles_required(*TEAM_ROLES)
def held_messages():
    # Never the raw bytes: they are the sender's, possibly hostile, and can be large.
    held = (
        InboundMessage.select(
            InboundMessage.id,
            InboundMessage.received_at,
            InboundMessage.envelope_from,
            InboundMessage.state,
            InboundMessage.error,
        )
        .where(InboundMessage.state.in_(HELD_STATES))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(HELD_SHOWN)
    )
    counts = _held_counts()
    return render_template(
        "team/held.html", messages=list(held), counts=counts, total=sum(counts.values())
    )


def _held_counts() -> dict[str, int]:
    found = dict(
        InboundMessage.select(InboundMessage.state, fn.COUNT(InboundMessage.id))
        .where(InboundMessage.state.in_(HELD_STATES))
        .group_by(InboundMessage.state)
        .tuples()
    )
    return {state: found.get(state, 0) for state in HELD_STATES}


def _vulnerability_or_404(tracking_id: str) -> Vulnerability:
    v = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
    if v is None:
        abort(404)
    return v


def case_context(v: Vulnerability) -> dict:
    """What the vulnerability page and the case page both show: the case's vulnerabilities,
    their findings, and the case's one thread with who each message is from."""
    case = list(cases.members(v).select(Vulnerability, CveId).join(CveId, JOIN.LEFT_OUTER))
    ids = [member.id for member in case]
    thread = (  # the case's one thread: an entry stays on the vulnerability it was sent to
        Correspondence.select(Correspondence, Delivery, User)
        .join(Delivery, JOIN.LEFT_OUTER)
        .switch(Correspondence)
        .join(User, JOIN.LEFT_OUTER)
        .where(Correspondence.vulnerability.in_(ids))
        .order_by(Correspondence.at, Correspondence.id)
    )
    thread = list(thread)
    pinned = views.pinned_fingerprint(v)
    return {
        "v": v,
        "thread": thread,
        "senders": {e.id: views.sender_of(e, v.reporter_email, pinned) for e in thread},
        "key_form": workspace.ConfirmKeyForm(formdata=None, prefix="key"),
        "files": attachments.of_vulnerabilities(ids),
        "case": case,
        "case_id": cases.case_id(v),
        "tracking": {member.id: member.tracking_id for member in case},
        "findings": {member.id: cases.labels(member) for member in case},
        "report_text": attachments.report_text,
        "unencrypted_parts": attachments.unencrypted_parts,
    }


def _vulnerability_page(v: Vulnerability, form: ReplyForm, status: int = 200):
    page = render_template(
        "team/vulnerability.html",
        **case_context(v),
        form=form,
        edit=workspace.forms_for(v),
        description_html=Markup(markdown.to_html(v.description)),  # noqa: S704  (nh3-sanitised)
        score=v.cvss_score,
        credits=lifecycle.credits(v),
        publication=lift.status_of(v),
        answer_summary=answers.summary([v]),
    )
    return page, status
