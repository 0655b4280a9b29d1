"""Admin pages: the audit log (and, later, CVE blocks and the registry)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")
