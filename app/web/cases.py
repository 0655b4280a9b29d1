"""The case page: what one report started, seen from any of its vulnerabilities. The case's
vulnerabilities with their state, CVE id, embargo end and assignee, the finding map, the
actions that work on the whole case, and the case's one thread.

Each action's section is a template of its own in templates/team/case/, and its route here.
"""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from app.accounts.team import TEAM_ROLES
from app.core import clock
from app.core.errors import ForewarnError
from app.models import Vulnerability
from app.vulns import cases, cve_services, cves
from app.web import team, workspace
from app.web.auth import roles_required

bp = Blueprint("cases", __name__, url_prefix="/team/cases")


@bp.context_processor
def _helpers():
    return team.template_helpers()


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
        user=current_user.user,
        now=clock.now(),
    )


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
    if not done.given:
        flash(
            f"No vulnerability of case {done.case} needs a CVE id ({skipped}). A vulnerability "
            "gets one once it is accepted.",
            "info",
        )
        return back
    given = ", ".join(f"{member.tracking_id} {cve.cve_id}" for member, cve in done.given)
    publish = (
        "at its lift, each record is published at CVE Services"
        if done.source == cves.SERVICES
        else "at its lift, publish each record at CVE Services (its page then offers cve.json)"
    )
    flash(
        f"Case {done.case}: {given}. While an embargo lasts, release notes name them by id "
        f"alone; {publish}." + (f" Not given one: {skipped}." if skipped else ""),
        "success",
    )
    if done.low:
        flash(f"Admins: {done.warning}.", "error")
    return back
