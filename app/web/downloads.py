"""Machine-readable records of published vulnerabilities: CVE JSON 5.1, OSV and CSAF 2.0.

Refused (404) while embargoed: the records are built from the public view alone.
"""

import json

from flask import Blueprint, Response, abort, current_app

from app import clock, exports
from app.errors import NotFound, Refused
from app.models import Vulnerability

bp = Blueprint("downloads", __name__, url_prefix="/vulnerabilities")

MEDIA_TYPES = {
    "cve": "application/json",
    "osv": "application/json",
    "csaf": "application/json",
}


@bp.route("/<tracking_id>/<any(cve, osv, csaf):kind>.json")
def record(tracking_id: str, kind: str):
    v = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
    if v is None:
        abort(404)
    settings = current_app.extensions["forewarn.settings"]
    try:
        document = exports.document(kind, v, clock.now(), settings)
    except (NotFound, Refused):
        abort(404)  # embargoed or not public: the same answer as for an unknown id
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        mimetype=MEDIA_TYPES[kind],
        headers={
            "Content-Disposition": f'inline; filename="{tracking_id}.{kind}.json"',
        },
    )
