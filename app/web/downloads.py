"""Machine-readable records of published vulnerabilities: CVE JSON 5.1, OSV and CSAF 2.0.

Refused (404) while embargoed: the records are built from the public view alone. They answer
at the same ids as the vulnerability's page (app.disclosure.redaction.find): a published one's
records live under its tracking id (its CVE id redirects there).
"""

import json

from flask import Blueprint, Response, abort, current_app, redirect, url_for

from app.core import clock
from app.core.errors import NotFound, Refused
from app.disclosure import exports, redaction

bp = Blueprint("downloads", __name__, url_prefix="/vulnerabilities")

MEDIA_TYPES = {
    "cve": "application/json",
    "osv": "application/json",
    "csaf": "application/json",
}


@bp.route("/<ident>/<any(cve, osv, csaf):kind>.json")
def record(ident: str, kind: str):
    at = clock.now()
    found = redaction.find(ident, at)
    if found is None:
        abort(404)
    v, view = found
    if isinstance(view, redaction.Published) and ident != view.tracking_id:
        return redirect(url_for("downloads.record", ident=view.tracking_id, kind=kind))
    settings = current_app.extensions["forewarn.settings"]
    try:
        document = exports.document(kind, v, at, settings)
    except (NotFound, Refused):
        abort(404)  # embargoed or not public: the same answer as for an unknown id
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        mimetype=MEDIA_TYPES[kind],
        headers={
            "Content-Disposition": f'inline; filename="{view.tracking_id}.{kind}.json"',
        },
    )
