"""Release-note lines for the team: embargoed CVEs by id alone, published ones with a link."""

from flask import Blueprint, Response, current_app, render_template, request

from app.accounts.team import TEAM_ROLES
from app.core import clock
from app.disclosure import exports
from app.web.auth import roles_required

bp = Blueprint("releases", __name__, url_prefix="/team/release-notes")


def _since():
    """The `since` date asked for, None for all, or the error to show."""
    text = request.args.get("since", "").strip()
    if not text:
        return None, None
    try:
        return exports.parse_date(text), None
    except ValueError as exc:
        return None, str(exc)


def _lines(since) -> list[str]:
    settings = current_app.extensions["forewarn.settings"]
    return exports.release_notes(clock.now(), since, base_url=settings.base_url)


@bp.route("/")
@roles_required(*TEAM_ROLES)
def notes():
    since, error = _since()
    lines = [] if error else _lines(since)
    page = render_template(
        "team/release_notes.html",
        lines=lines,
        since=request.args.get("since", "").strip(),
        error=error,
    )
    return page, 400 if error else 200


@bp.route("/release-notes.txt")
@roles_required(*TEAM_ROLES)
def notes_text():
    since, error = _since()
    if error:
        return Response(error + "\n", status=400, mimetype="text/plain")
    lines = _lines(since)
    return Response("".join(f"{line}\n" for line in lines), mimetype="text/plain")
