"""Pages anyone may read."""

from flask import Blueprint, current_app, render_template

bp = Blueprint("public", __name__)


@bp.route("/")
def index():
    settings = current_app.extensions["forewarn.settings"]
    return render_template("index.html", security_address=settings.security_address)
