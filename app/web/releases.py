"""Release-note lines for the team: embargoed CVEs by id alone."""

from flask import Blueprint

bp = Blueprint("releases", __name__, url_prefix="/team/release-notes")
