"""The team reads product makers' answers (#17): per vulnerability and per case, every approved
registrant × their current status, with counts, a filter by status ("no_answer": who stayed
silent, and when each was reminded) and the same rows as CSV (each download audited). The
statements are for the team: this blueprint is the only page that shows them."""

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_login import current_user

from app.accounts.team import TEAM_ROLES
from app.core import audit, clock, timefmt
from app.core.errors import NotFound, Refused
from app.models import Vulnerability
from app.registry import answers
from app.vulns import cases, lifecycle
from app.web.auth import roles_required

bp = Blueprint("answers", __name__, url_prefix="/team")


@bp.context_processor
def _helpers():
    return {
        "utc": timefmt.minute,
        "utc_iso": timefmt.zulu,
        "answer_labels": answers.LABELS,
        "justification_labels": answers.JUSTIFICATION_LABELS,
    }


def _vulnerability(ident: str) -> Vulnerability:
    try:
        return lifecycle.get(ident)  # a tracking id or a CVE id
    except NotFound:
        abort(404)


def _wanted_status() -> str | None:
    wanted = request.args.get("status", "").strip().lower()
    return wanted or None


def summary(vulnerabilities: list[Vulnerability]) -> str:
    """One line for the vulnerability and case pages: "3 affected, 1 not affected, 12 no
    answer" (the statuses someone is at, and always the silent)."""
    found = answers.counts(answers.matrix(vulnerabilities))
    return ", ".join(
        f"{n} {answers.LABELS[s].lower()}" for s, n in found.items() if n or s == answers.NO_ANSWER
    )


def _matrix(vulnerabilities: list[Vulnerability], title: str, here: str, csv_endpoint, ident):
    everyone = answers.matrix(vulnerabilities)
    wanted = _wanted_status()
    if wanted is not None and wanted not in answers.STATUSES + (answers.NO_ANSWER,):
        error = (
            f"Unknown status {wanted!r}: filter by one of "
            f"{', '.join(answers.STATUSES + (answers.NO_ANSWER,))}."
        )
        rows, status = [], 400
    else:
        error, status = "", 200
        rows = [r for r in everyone if wanted is None or r.status == wanted]
    per_vulnerability = {
        v.tracking_id: answers.counts([r for r in everyone if r.vulnerability.id == v.id])
        for v in vulnerabilities
    }
    return render_template(
        "team/answers.html",
        title=title,
        here=here,
        ident=ident,
        vulnerabilities=vulnerabilities,
        rows=rows,
        counts=answers.counts(everyone),
        per_vulnerability=per_vulnerability,
        wanted=wanted,
        error=error,
        statuses=answers.STATUSES + (answers.NO_ANSWER,),
        csv_url=url_for(csv_endpoint, tracking_id=ident, **({"status": wanted} if wanted else {})),
        several=len(vulnerabilities) > 1,
    ), status


def _csv(vulnerabilities: list[Vulnerability], target: str, kind: str) -> Response:
    try:
        rows = answers.matrix(vulnerabilities, status=_wanted_status())
    except Refused as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    now = clock.now()
    # The statements are the registrants' words to the team: who took a copy is on record.
    audit.record(
        current_user.user,
        "answers.export",
        now,
        target=target,
        details={"scope": kind, "status": _wanted_status(), "rows": len(rows)},
    )
    filename = f"forewarn-answers-{target}-{timefmt.compact(now)}.csv"
    return Response(
        answers.as_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/vulnerabilities/<tracking_id>/answers")
@roles_required(*TEAM_ROLES)
def vulnerability(tracking_id: str):
    v = _vulnerability(tracking_id)
    return _matrix(
        [v],
        f"Answers about {v.tracking_id}",
        url_for("team.vulnerability", tracking_id=v.tracking_id),
        "answers.vulnerability_csv",
        v.tracking_id,
    )


@bp.route("/vulnerabilities/<tracking_id>/answers.csv")
@roles_required(*TEAM_ROLES)
def vulnerability_csv(tracking_id: str):
    v = _vulnerability(tracking_id)
    return _csv([v], v.tracking_id, "vulnerability")


@bp.route("/cases/<tracking_id>/answers")
@roles_required(*TEAM_ROLES)
def case(tracking_id: str):
    visited = _vulnerability(tracking_id)
    members = list(cases.members(visited))
    case_id = cases.case_id(visited)
    return _matrix(
        members,
        f"Answers about case {case_id}",
        url_for("cases.case", tracking_id=visited.tracking_id),
        "answers.case_csv",
        visited.tracking_id,
    )


@bp.route("/cases/<tracking_id>/answers.csv")
@roles_required(*TEAM_ROLES)
def case_csv(tracking_id: str):
    visited = _vulnerability(tracking_id)
    return _csv(list(cases.members(visited)), cases.case_id(visited), "case")
