"""The case page: what one report started, seen from any of its vulnerabilities. The case's
vulnerabilities with their state, CVE id, embargo end and assignee, the finding map, the
actions that work on the whole case, and the case's one thread.

Each action's section is a template of its own in templates/team/case/, and its route here.
"""

from flask import Blueprint, abort, render_template
from flask_login import current_user

from app.accounts.team import TEAM_ROLES
from app.core import clock
from app.models import Vulnerability
from app.vulns import cases
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
