"""A signed-in person's own account: two-factor enrolment."""

from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/account")
