"""The security team's workspace."""

from flask import Blueprint, render_template

from app.accounts import TEAM_ROLES
from app.web.auth import roles_required

bp = Blueprint("team", __name__, url_prefix="/team")


@bp.route("/")
@roles_required(*TEAM_ROLES)
def home():
    return render_template("team/home.html")
