"""The OSV source: /osv/all.json and /osv/<id>.json, as OSV.dev's REST sources read them
(app.disclosure.osvsource). Published records only; anything else is a 404, the same as for an id
that never existed.

Each answer has a Last-Modified (the record's `modified`; the list's latest) and an ETag, and
answers 304 to If-Modified-Since or If-None-Match when nothing changed. A record's former id
(its CVE id, or `x_` and the tracking id) redirects permanently to its current one.
"""

import hashlib
import json
from datetime import datetime

from flask import Blueprint, Response, abort, current_app, redirect, request, url_for

from app.core import clock, timefmt
from app.disclosure import osvsource

bp = Blueprint("osv", __name__, url_prefix="/osv")


@bp.route("/all.json")
def index():
    settings = current_app.extensions["forewarn.settings"]
    entries = osvsource.index(clock.now(), settings)
    listed = [{"id": e.id, "modified": timefmt.zulu(e.modified)} for e in entries]
    latest = max((e.modified for e in entries), default=None)
    return _conditional(listed, latest)


@bp.route("/<ident>.json")
def record(ident: str):
    settings = current_app.extensions["forewarn.settings"]
    found = osvsource.find(ident, clock.now(), settings)
    if found is None:
        abort(404)  # embargoed, not public, or unknown: the same answer
    if found.record is None:
        return redirect(url_for("osv.record", ident=found.id), 301)
    return _conditional(found.record, found.modified)


def _conditional(document, last_modified: datetime | None) -> Response:
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    response = Response(data, mimetype="application/json")
    response.set_etag(hashlib.sha256(data).hexdigest()[:40])
    if last_modified is not None:
        response.last_modified = last_modified
    response.headers["Cache-Control"] = "public, no-cache"
    return response.make_conditional(request)
