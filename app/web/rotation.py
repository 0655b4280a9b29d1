"""Triage rotation: who is next, who is away, everyone's open load."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import AnyOf

from app.accounts.team import TEAM_ROLES
from app.core import clock, timefmt
from app.core.errors import Refused
from app.models import User
from app.reports import triage
from app.web.auth import roles_required

bp = Blueprint("rotation", __name__, url_prefix="/team/rotation")


@bp.context_processor
def _helpers():
    return {"utc": timefmt.minute, "utc_iso": timefmt.zulu}


class AwayForm(FlaskForm):
    # The state asked for, not "toggle": a form sent twice does not flip it back.
    away = HiddenField(validators=[AnyOf(["1", "0"])])


@bp.route("/")
@roles_required(*TEAM_ROLES)
def overview():
    at = clock.now()
    load = triage.open_load()
    in_turn = triage.order(at)
    away = sorted(
        (u for u in load if u.active and u.role in TEAM_ROLES and u.away), key=lambda u: u.email
    )
    # Accounts disabled (or no longer team) that still hold open reports: someone must take them.
    stranded = [u for u, count in load.items() if count and not (u.active and u.role in TEAM_ROLES)]
    return render_template(
        "team/rotation.html",
        in_turn=in_turn,
        away=away,
        stranded=stranded,
        load=load,
        may_set_away=lambda user: triage.may_set_away(current_user.user, user),
    )


@bp.route("/members/<int:user_id>/away", methods=["POST"])
@roles_required(*TEAM_ROLES)
def set_away(user_id: int):
    user = User.get_or_none(User.id == user_id, User.role.in_(TEAM_ROLES), User.active == True)  # noqa: E712
    if user is None:
        abort(404)
    me = current_user.user
    if not triage.may_set_away(me, user):
        abort(403)
    form = AwayForm()
    if not form.validate_on_submit():
        flash("Nothing changed: the form was incomplete. Reload the page and try again.", "error")
        return redirect(url_for("rotation.overview"))
    away = form.away.data == "1"
    at = clock.now()
    try:
        changed = triage.set_away(user, away, me, at)
    except Refused as exc:
        flash(f"Nothing changed: {exc}.", "error")
        return redirect(url_for("rotation.overview"))
    flash(_what_happened(user, away, changed, me, at), "success")
    return redirect(url_for("rotation.overview"))


def _what_happened(user: User, away: bool, changed: bool, me: User, at) -> str:
    """What the change did and what happens next, as the person who made it reads it."""
    is_me = user.id == me.id
    who = "You" if is_me else user.email
    if not changed:
        state = "away" if away else "in the rotation"
        return f"{who} {'were' if is_me else 'was'} already {state}; nothing changed."
    if away:
        said = (
            "You are away: new reports skip you until you are back."
            if is_me
            else f"{user.email} is away: new reports skip them until they are back."
        )
    else:
        said = (
            "You are back: new reports come to you again in turn."
            if is_me
            else f"{user.email} is back: new reports come to them again in turn."
        )
    following = triage.next_assignee(at)
    if following is None:
        return f"{said} Everyone is away now: new reports stay unassigned until someone is back."
    nxt = "you" if following.id == me.id else following.email
    return f"{said} The next report goes to {nxt}."
