"""/.well-known/csaf/: the CSAF 2.0 trusted provider's files, as the workers wrote and signed
them (app.disclosure.provider), served read-only; the web never signs, nor holds the key.

Folders answer with a listing (CSAF 2.0, 7.1.14), with or without the trailing slash (7.1.6:
no redirects); anything not in the current tree is a 404.
"""

from flask import Blueprint, Response, abort, current_app, render_template

from app.disclosure import provider_files
from app.web.public import conditional

bp = Blueprint("csaf", __name__)

CACHE = "public, max-age=300"


@bp.after_request
def readable_anywhere(response: Response) -> Response:
    """Public data: a browser-based CSAF tool on another site may read it too."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.route("/.well-known/csaf", strict_slashes=False, merge_slashes=False, defaults={"relative": ""})
@bp.route("/.well-known/csaf/<path:relative>", strict_slashes=False, merge_slashes=False)
def served(relative: str) -> Response:
    settings = current_app.extensions["forewarn.settings"]
    found = provider_files.lookup(settings, relative)
    if found is None:
        abort(404)
    if found.path is None:
        here = "/.well-known/csaf/" + "".join(f"{p}/" for p in relative.split("/") if p)
        page = render_template("csaf_listing.html", here=here, entries=found.entries)
        return conditional(page, "text/html; charset=utf-8", CACHE)
    try:
        data = found.path.read_bytes()
    except OSError:  # a tree two builds old, removed since it was looked up
        abort(404)
    return conditional(data, found.content_type, CACHE)
