"""The case page: what one report started, seen from any of its vulnerabilities. The case's
vulnerabilities with their state, CVE id, embargo end and assignee, the finding map, the
actions that work on the whole case, and the case's one thread.

Each action's section is a template of its own in templates/team/case/, and its route here.
"""

from datetime import time

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
from wtforms import (
    BooleanField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length

from app.accounts.team import TEAM_ROLES
from app.core import clock, timefmt
from app.core.errors import ForewarnError, NotFound, Refused
from app.disclosure import embargo_change
from app.models import Vulnerability
from app.registry import alerts
from app.reports import followup, followup_view
from app.vulns import casemap, cases, cve_services, cves, duplicates, embargo, lifecycle
from app.web import answers, team, workspace
from app.web.auth import roles_required
from app.web.outgoing import send_soon

bp = Blueprint("cases", __name__, url_prefix="/team/cases")


@bp.context_processor
def _helpers():
    return {**team.template_helpers(), "alert_sendable": alerts.SENDABLE}


def _member_or_404(tracking_id: str) -> Vulnerability:
    v = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
    if v is None:
        abort(404)
    return v


@bp.route("/<tracking_id>")
@roles_required(*TEAM_ROLES)
def case(tracking_id: str):
    """The case of any of its vulnerabilities; `tracking_id` is the one the team came from."""
    visited = _member_or_404(tracking_id)
    root = cases.root(visited)
    return render_template(
        "team/case.html",
        **team.case_context(root),
        visited=visited,
        edit=workspace.forms_for(root),
        release=release_form(root),
        user=current_user.user,
        now=clock.now(),
        answer_summary=answers.summary(list(cases.members(root))),
        **_finding_map_context(root),
    )


# -- the coordinated release: the case's embargo end ------------------------------------------


class CaseEmbargoForm(FlaskForm):
    embargo_until = StringField(
        "The case's embargo end (UTC, e.g. 2027-02-23T14:00)",
        validators=[DataRequired(message="Give the new end.")],
    )
    reason = TextAreaField("Reason (needed to extend an embargo or end it early)")


def release_form(root: Vulnerability) -> CaseEmbargoForm:
    form = CaseEmbargoForm(formdata=None, prefix="release")
    form.embargo_until.data = workspace.forms_for(root)["dates"].embargo_until.data
    return form


@bp.route("/<tracking_id>/embargo", methods=["POST"])
@roles_required(*TEAM_ROLES)
def release(tracking_id: str):
    """Move the case's embargo end: the report's, with every vulnerability of the case that had
    the same end (app.disclosure.embargo_change)."""
    root = cases.root(_member_or_404(tracking_id))
    back = redirect(url_for("cases.case", tracking_id=tracking_id))
    form = CaseEmbargoForm(prefix="release")
    if not form.validate_on_submit():
        errors = "; ".join(" ".join(e) for e in form.errors.values())
        flash(f"The case's embargo end was not saved: {errors}", "error")
        return back
    settings = current_app.extensions["forewarn.settings"]
    if root.status in embargo_change.SETTLED:
        flash(
            f"The case's embargo end was not saved: its report {root.tracking_id} is "
            f"{root.status}; move each other vulnerability's date on its own page.",
            "error",
        )
        return back
    try:
        value = embargo.parse_instant(form.embargo_until.data, time(settings.publication_hour))
        if value == root.embargo_until:
            flash("The case's embargo end is unchanged.", "info")
            return back
        move = embargo_change.change_embargo(
            root,
            value,
            form.reason.data or "",
            lifecycle.Actor.of(current_user.user),
            clock.now(),
            settings,
        )
    except Refused as exc:
        flash(f"The case's embargo end was not saved: {exc}", "error")
        return back
    moved = ", ".join(c.vulnerability.tracking_id for c in move.changes)
    lifting = workspace.follow_move(move)
    flash(
        f"Saved: the embargo of {moved} ends {embargo.shown(value)}; a vulnerability with "
        f"its own date kept it. The change is in the audit log. {lifting}".strip(),
        "success",
    )
    return back


# -- one advisory for several ------------------------------------------------------------------


class AdvisoryForm(FlaskForm):
    """One advisory covering the selected vulnerabilities of the case (templates/team/case/
    _advisory.html writes its checkboxes)."""

    vulnerabilities = SelectMultipleField("Vulnerabilities the advisory covers", choices=[])
    note = TextAreaField("Note at the top of the mail (optional)", validators=[Length(max=20_000)])


@bp.route("/<tracking_id>/advisory", methods=["POST"])
@roles_required(*TEAM_ROLES)
def advisory(tracking_id: str):
    """The next advisory version of each selected vulnerability, in one mail per registrant."""
    visited = _member_or_404(tracking_id)
    back = redirect(url_for("cases.case", tracking_id=visited.tracking_id))
    members = {m.tracking_id: m for m in cases.members(cases.root(visited))}
    form = AdvisoryForm(prefix="advisory")
    form.vulnerabilities.choices = list(members)
    if not form.validate_on_submit():
        problems = "; ".join(" ".join(errors) for errors in form.errors.values())
        flash(f"No advisory was sent: {problems} (reload the page and try again).", "error")
        return back
    if not form.vulnerabilities.data:
        flash("No advisory was sent: select the vulnerabilities it should cover.", "error")
        return back
    chosen = [members[t] for t in form.vulnerabilities.data]
    if len(chosen) == 1 and (form.note.data or "").strip():
        # Alone, its advisory is its whole text, which the team edits on its alert page.
        flash(
            f"No advisory was sent: a note is for an advisory covering several. Write "
            f"{chosen[0].tracking_id}'s whole text here instead, then send it.",
            "error",
        )
        return redirect(url_for("alerting.compose", tracking_id=chosen[0].tracking_id))
    settings = current_app.extensions["forewarn.settings"]
    try:
        versions = alerts.send_many(
            chosen, current_user.user, current_user.email, clock.now(), settings, form.note.data
        )
    except Refused as exc:
        flash(f"No advisory was sent: {exc}", "error")
        return back
    send_soon()
    count = sum(alerts.progress(versions[0]).values())
    named = ", ".join(f"{a.vulnerability.tracking_id} v{a.version}" for a in versions)
    flash(
        f"{'One advisory covering ' if len(versions) > 1 else ''}{named} is queued to {count} "
        f"registrant{'s' if count != 1 else ''} (one mail each); this page shows the deliveries "
        "as they go out.",
        "success",
    )
    lead = versions[0]
    return redirect(
        url_for(
            "alerting.progress",
            tracking_id=lead.vulnerability.tracking_id,
            version=lead.version,
        )
    )


# -- the finding map (templates/team/case/_findings.html) -----------------------------------


class FindingsForm(FlaskForm):
    """One vulnerability's finding labels, set from the case page's map."""

    vulnerability = HiddenField(validators=[DataRequired()])
    labels = StringField("Finding labels", validators=[Length(max=5000)])


def _finding_map_context(root: Vulnerability) -> dict:
    at = clock.now()
    return {
        "casemap": casemap.finding_map(root),
        "casemap_unclaimed": casemap.unclaimed(root),
        "casemap_pending": casemap.pending(root, at),
        "casemap_sent": casemap.last_sent(root),
        "casemap_last": casemap.last_mail(root),
        "findings_form": FindingsForm(formdata=None, prefix="findings"),
    }


def _mail_said(root: Vulnerability) -> str:
    pending = casemap.pending(root, clock.now())
    if not root.reporter_email:
        return "The case has no reporter address, so nobody is mailed the map."
    if pending is None:
        return "The reporter gets no mail for it (a case of one without labels)."
    return (
        "The reporter gets the case's finding map by mail from "
        f"{timefmt.minute(pending.next_attempt_at)} (one mail for the changes of that minute)."
    )


@bp.route("/<tracking_id>/findings", methods=["POST"])
@roles_required(*TEAM_ROLES)
def set_findings(tracking_id: str):
    """The labels of one vulnerability of the case, from its row in the finding map."""
    root = cases.root(_member_or_404(tracking_id))
    back = redirect(url_for("cases.case", tracking_id=tracking_id, _anchor="finding-map"))
    form = FindingsForm(prefix="findings")
    if not form.validate_on_submit():
        flash("The findings were not saved: the form expired; try again.", "error")
        return back
    member = Vulnerability.get_or_none(Vulnerability.tracking_id == form.vulnerability.data)
    if member is None or member.id not in cases.member_ids(root):
        flash(
            f"The findings were not saved: {form.vulnerability.data} is not in this case.", "error"
        )
        return back
    before = cases.labels(member)
    try:
        member = lifecycle.set_field(
            member,
            "findings",
            " ".join((form.labels.data or "").split()),
            lifecycle.Actor.of(current_user.user),
            clock.now(),
        )
    except Refused as exc:
        flash(f"The findings of {member.tracking_id} were not saved: {exc}", "error")
        return back
    after = cases.labels(member)
    if after == before:
        flash(f"The findings of {member.tracking_id} are unchanged.", "info")
        return back
    flash(
        f"{member.tracking_id} now covers {' '.join(after) or 'no finding label'}; the change is "
        f"in the audit log. {_mail_said(root)}",
        "success",
    )
    return back


# -- duplicates (templates/team/case/_duplicate.html) ------------------------------------------


class DuplicateForm(FlaskForm):
    vulnerability = SelectField("Mark this vulnerability", choices=[])
    original = StringField(
        "as a duplicate of (its tracking id or CVE id)",
        validators=[DataRequired(message="Name the vulnerability it duplicates."), Length(max=40)],
    )
    reason = TextAreaField(
        "Reason (kept with the team; the reporter is not sent it)",
        validators=[Length(max=duplicates.MAX_REASON)],
    )
    credit = BooleanField("Credit its reporter on the original too")


class UndoDuplicateForm(FlaskForm):
    """A button beside a duplicate: track it on its own again."""


def _markable(case: list[Vulnerability]) -> list[tuple[str, str]]:
    return [
        (m.tracking_id, f"{m.tracking_id}: {m.title or '(no title)'}")
        for m in case
        if m.duplicate_of_id is None and m.status not in ("published", "rejected")
    ]


def duplicate_forms(case: list[Vulnerability], visited: Vulnerability) -> dict:
    """The case page's duplicate section: the form to mark one of the case's vulnerabilities
    (the one the team came from chosen), and the form behind each Undo button."""
    mark = DuplicateForm(formdata=None, prefix="duplicate")
    mark.vulnerability.choices = _markable(case)
    mark.vulnerability.data = visited.tracking_id
    return {"mark": mark, "undo": UndoDuplicateForm(formdata=None, prefix="undo")}


@bp.context_processor
def _duplicate_helpers():
    return {"duplicate_forms": duplicate_forms}


def _back_to_case(visited: Vulnerability):
    return redirect(url_for("cases.case", tracking_id=visited.tracking_id))


@bp.route("/<tracking_id>/duplicate", methods=["POST"])
@roles_required(*TEAM_ROLES)
def duplicate(tracking_id: str):
    """Mark one of the case's vulnerabilities a duplicate of another (any case's)."""
    visited = _member_or_404(tracking_id)
    form = DuplicateForm(prefix="duplicate")
    form.vulnerability.choices = _markable(list(cases.members(visited)))
    if not form.validate_on_submit():
        flash(f"Not marked as a duplicate: {workspace._form_errors(form)}", "error")
        return _back_to_case(visited)
    settings = current_app.extensions["forewarn.settings"]
    v = Vulnerability.get(Vulnerability.tracking_id == form.vulnerability.data)
    try:
        original = lifecycle.get(form.original.data)
        done = duplicates.mark(
            v,
            original,
            form.reason.data or "",
            form.credit.data,
            lifecycle.Actor.of(current_user.user),
            clock.now(),
            settings,
        )
    except (NotFound, Refused) as exc:
        flash(f"{v.tracking_id} was not marked as a duplicate: {exc}", "error")
        return _back_to_case(visited)
    send_soon()
    workspace._lift_or_schedule(done.vulnerability)  # rejected: a lift waiting finds nothing
    first = done.original.tracking_id
    said = [f"{v.tracking_id} is now a duplicate of {first} and rejected."]
    if done.reporter_told:
        key = done.vulnerability.reporter_key
        how = (
            "encrypted to their key"
            if key is not None and key.usable
            else "in a signed notice that names the id only once it is public (they have no "
            "usable key on file)"
        )
        said.append(f"Its reporter is told it is tracked under {first}, {how}.")
    if form.credit.data:
        said.append(
            f"Its reporter is now credited on {first}."
            if done.credit
            else f"Its reporter was already credited on {first}."
        )
    if done.vulnerability.cve_id:
        said.append(
            f"{done.vulnerability.cve.cve_id} stays with {v.tracking_id}: retire it if it is "
            "not to be used."
        )
    said.append("Undo it on this page if it was a mistake.")
    flash(" ".join(said), "success")
    return _back_to_case(visited)


@bp.route("/<tracking_id>/duplicate/undo", methods=["POST"])
@roles_required(*TEAM_ROLES)
def undo_duplicate(tracking_id: str):
    """The duplicate `tracking_id` is tracked on its own again."""
    v = _member_or_404(tracking_id)
    if not UndoDuplicateForm(prefix="undo").validate_on_submit():
        flash(f"{v.tracking_id} is still a duplicate: the form expired; try again", "error")
        return _back_to_case(v)
    settings = current_app.extensions["forewarn.settings"]
    try:
        done = duplicates.undo(v, lifecycle.Actor.of(current_user.user), clock.now(), settings)
    except Refused as exc:
        flash(f"Nothing undone: {exc}", "error")
        return _back_to_case(v)
    send_soon()
    lifting = workspace._lift_or_schedule(done.vulnerability)
    said = [
        f"{v.tracking_id} is tracked on its own again, as {done.vulnerability.status}, no "
        f"longer a duplicate of {done.original.tracking_id}."
    ]
    if done.credit:
        said.append(f"Its reporter is no longer credited on {done.original.tracking_id}.")
    if done.reporter_told:
        said.append("Its reporter is told.")
    said.append(lifting or "Work on it from its own page.")
    flash(" ".join(said), "success")
    return _back_to_case(v)


# -- CVE ids for the whole case -----------------------------------------------------------------


class CaseCvesForm(FlaskForm):
    """A button: CVE ids for every accepted vulnerability of the case that has none."""


@bp.context_processor
def _case_cves():
    return {"case_cves_form": CaseCvesForm(formdata=None, prefix="case-cves"), "cves": cves}


@bp.route("/<tracking_id>/cves", methods=["POST"])
@roles_required(*TEAM_ROLES)
def assign_cves(tracking_id: str):
    visited = _member_or_404(tracking_id)
    back = redirect(url_for("cases.case", tracking_id=visited.tracking_id))
    if not CaseCvesForm(prefix="case-cves").validate_on_submit():
        flash("No CVE id was assigned: the form expired; try again.", "error")
        return back
    try:
        services = cve_services.ServicesConfig.from_environ()
        done = cves.allocate_case(
            visited, current_user.user, current_user.email, clock.now(), services
        )
    except ForewarnError as exc:
        flash(f"No CVE id was assigned: {exc}", "error")
        return back
    skipped = "; ".join(f"{s.vulnerability.tracking_id} {s.reason}" for s in done.skipped)
    if not done.allocations:
        flash(
            f"No vulnerability of case {done.case} needs a CVE id ({skipped}). A vulnerability "
            "gets one once it is accepted.",
            "info",
        )
        return back
    given = ", ".join(f"{member.tracking_id} {cve.cve_id}" for member, cve in done.allocations)
    publish = (
        "at its lift, each record is published at CVE Services"
        if done.source == cves.SERVICES
        else "at its lift, publish each record at CVE Services (its page then offers cve.json)"
    )
    flash(
        f"Case {done.case}: {given}. While an embargo lasts, release notes name them by id "
        f"alone; {publish}."
        + (f" Not given one: {skipped}." if skipped else "")
        + f" {_mail_said(cases.root(visited))}",
        "success",
    )
    if done.low:
        flash(f"Admins: {done.warning}.", "error")
    return back


# -- the reporter's follow-up link: revoke, reissue -------------------------------------------


class FollowUpForm(FlaskForm):
    pass


def _follow_up_helpers():
    return {
        "follow_up_form": FollowUpForm(formdata=None, prefix="followup"),
        "follow_up_live": followup.live,
    }


bp.context_processor(_follow_up_helpers)


@bp.route("/<tracking_id>/follow-up", methods=["POST"])
@roles_required(*TEAM_ROLES)
def follow_up(tracking_id: str):
    """Revoke the case's follow-up link, or reissue it (the reporter is mailed the new one)."""
    visited = _member_or_404(tracking_id)
    back = redirect(url_for("cases.case", tracking_id=tracking_id))
    form = FollowUpForm(prefix="followup")
    if not form.validate_on_submit():
        flash("The follow-up link was not changed: the form expired; try again.", "error")
        return back
    actor = lifecycle.Actor.of(current_user.user)
    settings = current_app.extensions["forewarn.settings"]
    root = cases.root(visited)
    try:
        if request.form.get("action") == "revoke":
            followup_view.revoke(visited, actor, clock.now())
            flash(
                f"The follow-up link of {root.tracking_id} no longer works. Reissue one to give "
                "the reporter a way back in.",
                "success",
            )
            return back
        _link, told = followup_view.reissue(visited, actor, clock.now(), settings)
    except Refused as exc:
        flash(f"The follow-up link was not changed: {exc}", "error")
        return back
    send_soon()
    if told:
        flash(
            f"A new follow-up link for {root.tracking_id} is being mailed to the reporter; "
            "the old one no longer works.",
            "success",
        )
    else:
        flash(
            f"A new follow-up link for {root.tracking_id} was made, but the reporter gave no "
            "address: they cannot be told it. The old one no longer works.",
            "success",
        )
    return back
