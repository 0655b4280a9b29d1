"""Working a vulnerability: its fields, state, dates and assignee, each a form of its own that
ends with a message saying what happened and what comes next."""

from flask import Blueprint, abort, current_app, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import HiddenInput

from app.accounts.team import TEAM_ROLES
from app.core import clock, timefmt
from app.core.errors import ForewarnError, Refused
from app.disclosure import embargo_change, lift
from app.models import User, Vulnerability
from app.reports import attachments, reporter_keys
from app.vulns import (
    casemap,
    cases,
    cve_services,
    cves,
    embargo,
    lifecycle,
    revisions,
    split,
    withdrawal,
)
from app.web import files
from app.web.auth import roles_required
from app.web.outgoing import send_soon
from app.workers import scheduling

bp = Blueprint("workspace", __name__, url_prefix="/team/vulnerabilities")

EDITABLE = (
    "title",
    "description",
    "severity",
    "affected",
    "cwe",
    "credits",
    "fix_refs",
    "introduced_commit",
    "mitigation",
    "findings",
)


class FieldsForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=250)])
    description = TextAreaField("Description (Markdown)", validators=[Length(max=100_000)])
    severity = StringField("CVSS vector (3.1 or 4.0)", validators=[Optional(), Length(max=200)])
    affected = StringField(
        "Affected (e.g. zephyr >=3.0 <4.2; zephyr =3.7.0)", validators=[Length(max=2000)]
    )
    cwe = StringField("CWE (e.g. CWE-787)", validators=[Length(max=20)])
    credits = StringField("Credits (empty: the reporter, by name)", validators=[Length(max=500)])
    credit_reporter = BooleanField("Credit the reporter")
    fix_refs = TextAreaField(
        "Fix references: URLs, private until the embargo ends", validators=[Length(max=5000)]
    )
    introduced_commit = StringField(
        "Introducing commit: its full hash in the configured repository (empty: unknown)",
        validators=[Length(max=64)],
    )
    mitigation = TextAreaField(
        "Mitigation: what users can do until they deploy the fix",
        validators=[Length(max=20_000)],
    )
    deploy_before_lift = BooleanField(
        "Registrants may deploy the fix before the embargo ends (without saying what it fixes)"
    )
    findings = StringField(
        "Findings: the reporter's labels it covers, separated by spaces (e.g. NCC-ZEP-001)",
        validators=[Length(max=5000)],
    )


class SplitForm(FlaskForm):
    titles = TextAreaField(
        "Titles of the new vulnerabilities, one per line",
        validators=[DataRequired(message="Give at least one title."), Length(max=25_000)],
    )


class StatusForm(FlaskForm):
    status = SelectField("New state", choices=[])
    reason = TextAreaField("Reason (needed to reject; the reporter is told)")


class DatesForm(FlaskForm):
    embargo_until = StringField("Embargo until (UTC, e.g. 2027-02-23T14:00)")
    only = BooleanField(
        "Move only this vulnerability (not the others of the case with the same end)"
    )
    fix_due = StringField("Fix due (UTC)")
    reason = TextAreaField("Reason (needed to extend an embargo or end it early)")


class CveForm(FlaskForm):
    """A button: the next free CVE id for this vulnerability."""


class ConfirmKeyForm(FlaskForm):
    """A button beside a key a message offered: make it the reporter's key."""

    correspondence = IntegerField(validators=[DataRequired()], widget=HiddenInput())


class WithdrawForm(FlaskForm):
    """A published vulnerability that proved not to be one (app.vulns.withdrawal)."""

    reason = TextAreaField(
        "Why it is not a vulnerability (shown on its page and in every record)",
        validators=[DataRequired(message="Say why it is withdrawn."), Length(max=2000)],
    )
    confirm = BooleanField(
        "I understand: its page, feed entry and records say withdrawn, its CVE record is "
        "rejected, and this cannot be undone",
        validators=[DataRequired(message="Tick the box to confirm the withdrawal.")],
    )


class AssigneeForm(FlaskForm):
    assignee = SelectField("Assignee", choices=[])


def forms_for(v: Vulnerability) -> dict:
    """The edit forms of the vulnerability page, filled with its current values."""
    fields = FieldsForm(obj=v, formdata=None, prefix="fields")
    fields.findings.data = " ".join(cases.labels(v))
    status = StatusForm(formdata=None, prefix="state")
    status.status.choices = _status_choices(v)
    dates = DatesForm(formdata=None, prefix="dates")
    dates.embargo_until.data = _iso(v.embargo_until)
    dates.fix_due.data = _iso(v.fix_due)
    assignee = AssigneeForm(formdata=None, prefix="assign")
    assignee.assignee.choices = _members()
    assignee.assignee.data = v.assignee.email if v.assignee_id else ""
    return {
        "fields": fields,
        "status": status,
        "dates": dates,
        "assignee": assignee,
        "cve": CveForm(formdata=None, prefix="cve"),
        "split": SplitForm(formdata=None, prefix="split"),
        # Only a published vulnerability not withdrawn yet can be withdrawn.
        "withdraw": WithdrawForm(formdata=None, prefix="withdraw")
        if revisions.is_public(v, clock.now()) and v.withdrawn_at is None
        else None,
    }


def _status_choices(v: Vulnerability) -> list[tuple[str, str]]:
    """The next states a person may choose: "published" is the lift's alone."""
    return [(s, s) for s in sorted(lifecycle.TRANSITIONS[v.status] - {"published"})]


def _iso(at) -> str:
    return timefmt.zulu_minute(at) if at else ""


def _members() -> list[tuple[str, str]]:
    team = User.select().where(User.role.in_(TEAM_ROLES), User.active == True)  # noqa: E712
    return [("", "nobody")] + [(u.email, u.email) for u in team.order_by(User.email)]


def _vulnerability(tracking_id: str) -> Vulnerability:
    v = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
    if v is None:
        abort(404)
    return v


def _back(v: Vulnerability):
    return redirect(url_for("team.vulnerability", tracking_id=v.tracking_id))


def _actor() -> lifecycle.Actor:
    return lifecycle.Actor.of(current_user.user)


def _refused(v: Vulnerability, what: str, exc: Exception):
    flash(f"{what} not saved: {exc}", "error")
    return _back(v)


def _lift_or_schedule(v: Vulnerability, change: lift.AfterChange | None = None) -> str:
    """Lift now when the embargo has ended, else (re)schedule the lift; says which. `change`:
    what an embargo change already did for the lift (else it is looked at now)."""
    settings = current_app.extensions["forewarn.settings"]
    redis = current_app.extensions["forewarn.redis"]
    change = change or lift.after_change(v, clock.now(), settings)
    outcome = scheduling.follow(redis, change, clock.now())
    if outcome == "lifted":
        send_soon()
        return "Its embargo has ended, so it is published now and the announcement goes out."
    if outcome == "held":
        return "Its embargo has ended but it is not accepted: it stays private until you accept it."
    if outcome == "scheduled" and v.status in lift.LIFTABLE:
        return f"It will be published at {embargo.shown(v.embargo_until)}."
    return ""


def follow_move(move: embargo_change.EmbargoMove) -> str:
    """Have the workers follow the lift of every vulnerability an embargo move moved; says
    what it means for the first one (the others' follow it: the same end)."""
    said = _lift_or_schedule(move.vulnerability, move.changes[0])
    for change in move.changes[1:]:
        _lift_or_schedule(change.vulnerability, change)
    return said


def _map_mail(v: Vulnerability) -> str:
    """What a flash adds when a change queued the case's finding map to the reporter."""
    pending = casemap.pending(v, clock.now())
    if pending is None:
        return ""
    return (
        " The reporter gets the case's finding map by mail from "
        f"{timefmt.minute(pending.next_attempt_at)}."
    )


def _form_errors(form: FlaskForm) -> str:
    return "; ".join(
        f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items()
    )


@bp.route("/<tracking_id>/fields", methods=["POST"])
@roles_required(*TEAM_ROLES)
def fields(tracking_id: str):
    v = _vulnerability(tracking_id)
    form = FieldsForm(prefix="fields")
    if not form.validate_on_submit():
        return _refused(v, "The fields were", _form_errors(form))
    changed, began = [], clock.now()
    try:
        for name in EDITABLE:
            value = (getattr(form, name).data or "").strip()
            if name in ("fix_refs", "findings"):
                value = " ".join(value.split())
            current = " ".join(cases.labels(v)) if name == "findings" else getattr(v, name)
            if value != (current or ""):
                v = lifecycle.set_field(v, name, value, _actor(), clock.now())
                changed.append(name.replace("_", " "))
    except Refused as exc:
        saved = f" ({', '.join(changed)} saved)" if changed else ""
        return _refused(v, f"The {name.replace('_', ' ')} was{saved}", exc)
    if form.credit_reporter.data != v.credit_reporter:
        credit = "yes" if form.credit_reporter.data else "no"
        v = lifecycle.set_field(v, "credit_reporter", credit, _actor(), clock.now())
        changed.append("reporter credit")
    if form.deploy_before_lift.data != v.deploy_before_lift:
        allowed = "yes" if form.deploy_before_lift.data else "no"
        v = lifecycle.set_field(v, "deploy_before_lift", allowed, _actor(), clock.now())
        changed.append("deployment before the lift")
    if changed:
        told = _map_mail(v) if "findings" in changed else ""
        if scheduling.after_revision(current_app.extensions["forewarn.redis"], v, began):
            told += (
                " It is published, so this is a new revision: its records follow now, and "
                "with CVE Services the CVE record is updated there (see Publication below)."
            )
        flash(f"Saved: {', '.join(changed)}. The change is in the audit log.{told}", "success")
    else:
        flash("Nothing changed.", "info")
    return _back(v)


@bp.route("/<tracking_id>/status", methods=["POST"])
@roles_required(*TEAM_ROLES)
def status(tracking_id: str):
    v = _vulnerability(tracking_id)
    form = StatusForm(prefix="state")
    form.status.choices = _status_choices(v)
    if not form.validate_on_submit():
        return _refused(v, "The state was", _form_errors(form))
    try:
        v = lifecycle.set_status(v, form.status.data, _actor(), clock.now(), form.reason.data or "")
    except Refused as exc:
        return _refused(v, "The state was", exc)
    next_steps = {
        "triage": "Decide whether it is a vulnerability: accept or reject it.",
        "accepted": "It now shows publicly as a placeholder until the embargo ends. "
        "Assign a CVE id and work on the fix.",
        "fixed": "Send the pre-disclosure alert so product makers can deploy before the lift.",
        "published": "Its details are public now.",
        "rejected": "The reporter is told, with the reason (encrypted when their key is known).",
    }
    lifting = _lift_or_schedule(v) if v.status in ("accepted", "fixed") else ""
    said = [f"{v.tracking_id} is now {v.status}.", next_steps.get(v.status, ""), lifting]
    flash(" ".join(filter(None, said)), "success")
    return _back(v)


@bp.route("/<tracking_id>/withdraw", methods=["POST"])
@roles_required(*TEAM_ROLES)
def withdraw(tracking_id: str):
    v = _vulnerability(tracking_id)
    form = WithdrawForm(prefix="withdraw")
    if not form.validate_on_submit():
        flash(f"Not withdrawn: {_form_errors(form)}", "error")
        return _back(v)
    began = clock.now()
    try:
        v = withdrawal.withdraw(v, form.reason.data, _actor(), began)
    except Refused as exc:
        flash(f"Not withdrawn: {exc}", "error")
        return _back(v)
    scheduling.after_revision(current_app.extensions["forewarn.redis"], v, began)
    cve = (
        f" {v.cve.cve_id} is rejected; with CVE Services its record is rejected there too."
        if v.cve_id
        else ""
    )
    flash(
        f"{v.tracking_id} is withdrawn. Its page, the feed and its OSV and CSAF records now say "
        f"so with your reason; they go out again now (see Publication below).{cve} "
        "Nothing was deleted, and the withdrawal is in the audit log.",
        "success",
    )
    return _back(v)


@bp.route("/<tracking_id>/dates", methods=["POST"])
@roles_required(*TEAM_ROLES)
def dates(tracking_id: str):
    from datetime import time

    v = _vulnerability(tracking_id)
    form = DatesForm(prefix="dates")
    if not form.validate_on_submit():
        return _refused(v, "The dates were", _form_errors(form))
    settings = current_app.extensions["forewarn.settings"]
    said = []
    move = None
    try:
        for name, default_time in (
            ("fix_due", time(23, 59, 59)),
            ("embargo_until", time(settings.publication_hour)),
        ):
            text = (getattr(form, name).data or "").strip()
            if not text:
                continue
            value = embargo.parse_instant(text, default_time)
            if value == getattr(v, name):
                continue
            reason = form.reason.data or ""
            if name == "embargo_until":
                move = embargo_change.change_embargo(
                    v, value, reason, _actor(), clock.now(), settings, only=form.only.data
                )
                v = move.vulnerability
            else:
                v = lifecycle.set_date(v, name, value, _actor(), clock.now(), reason)
            said.append(f"{name.replace('_', ' ')} is {embargo.shown(value)}")
            if name == "embargo_until" and move.moved_with:
                ids = ", ".join(m.tracking_id for m in move.moved_with)
                said.append(f"{ids} of the case moved with it (they had the same end)")
    except Refused as exc:
        return _refused(v, "The dates were", exc)
    if said:
        lifting = follow_move(move) if move else _lift_or_schedule(v)
        flash(
            f"Saved: {'; '.join(said)}. The change is in the audit log. {lifting}".strip(),
            "success",
        )
    else:
        flash("The dates are unchanged.", "info")
    return _back(v)


@bp.route("/<tracking_id>/split", methods=["POST"])
@roles_required(*TEAM_ROLES)
def split_case(tracking_id: str):
    """New vulnerabilities in this one's case, one per line of titles."""
    v = _vulnerability(tracking_id)
    form = SplitForm(prefix="split")
    if not form.validate_on_submit():
        return _refused(v, "The split was", _form_errors(form))
    settings = current_app.extensions["forewarn.settings"]
    try:
        made = split.split(v, split.titles_of(form.titles.data), _actor(), clock.now(), settings)
    except Refused as exc:
        return _refused(v, "The split was", exc)
    ids = ", ".join(n.tracking_id for n in made)
    flash(
        f"Created {ids} in case {cases.case_id(v)}, each with the case's reporter, dates, "
        f"credits and assignee; {v.tracking_id} stays as it was. They start as new: describe "
        f"each, set its findings, then accept or reject it on its own page.{_map_mail(v)}",
        "success",
    )
    return _back(v)


@bp.route("/<tracking_id>/assignee", methods=["POST"])
@roles_required(*TEAM_ROLES)
def assignee(tracking_id: str):
    v = _vulnerability(tracking_id)
    form = AssigneeForm(prefix="assign")
    form.assignee.choices = _members()
    if not form.validate_on_submit():
        return _refused(v, "The assignee was", _form_errors(form))
    try:
        v = lifecycle.set_field(v, "assignee", form.assignee.data or "none", _actor(), clock.now())
    except Refused as exc:
        return _refused(v, "The assignee was", exc)
    who = v.assignee.email if v.assignee_id else "nobody"
    flash(f"{v.tracking_id} is now assigned to {who}.", "success")
    return _back(v)


@bp.route("/<tracking_id>/cve", methods=["POST"])
@roles_required(*TEAM_ROLES)
def cve(tracking_id: str):

    v = _vulnerability(tracking_id)
    if not CveForm(prefix="cve").validate_on_submit():
        return _refused(v, "No CVE id was assigned:", "the form expired; try again")
    try:
        services = cve_services.ServicesConfig.from_environ()
        allocation = cves.allocate(v, current_user.user, current_user.email, clock.now(), services)
    except ForewarnError as exc:
        flash(f"No CVE id was assigned: {exc}", "error")
        return _back(v)
    flash(
        f"{allocation.cve.cve_id} is assigned to {v.tracking_id}. While the embargo lasts, "
        "release notes name it by id alone.",
        "success",
    )
    if allocation.low:
        flash(f"Admins: {allocation.warning}.", "error")
    return _back(v)


@bp.route("/<tracking_id>/attachments/<int:file_id>")
@roles_required(*TEAM_ROLES)
def attachment(tracking_id: str, file_id: int):
    """A reporter's file, for the team only: always a download (never shown inline), served as
    bytes unless its type is one a browser cannot run, never sniffed, never cached."""
    v = _vulnerability(tracking_id)
    found = attachments.by_id(v, file_id)
    if found is None or found.content is None:
        abort(404)
    return files.download(found)


@bp.route("/<tracking_id>/reporter-key", methods=["POST"])
@roles_required(*TEAM_ROLES)
def reporter_key(tracking_id: str):
    """The team confirms a key a later message offered as the reporter's (never automatic:
    anyone can write the reporter's address in a From line)."""
    v = _vulnerability(tracking_id)
    form = ConfirmKeyForm(prefix="key")
    if not form.validate_on_submit():
        return _refused(v, "The reporter's key was", "the form expired; try again")
    try:
        key = reporter_keys.confirm_reporter_key(
            v, form.correspondence.data, current_user.user, clock.now()
        )
    except Refused as exc:
        return _refused(v, "The reporter's key was", exc)
    flash(
        f"The reporter's key is now {key.fingerprint}: replies, rejections and embargo changes "
        "are encrypted to it. The change is in the audit log.",
        "success",
    )
    return _back(v)
