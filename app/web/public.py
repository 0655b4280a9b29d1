"""Pages anyone may read: the start page, the service key, the vulnerabilities (list, pages,
Atom feed) and /.well-known/ (security.txt, the Web Key Directory).

Vulnerabilities reach these pages only as app.disclosure.redaction's public views, never as rows.
The service key's certificate and the signed security.txt are what the workers published
(app.servicekey.public): the web never holds the secret key, nor opens a GnuPG home for it.
"""

import functools
import gzip
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from itertools import groupby
from urllib.parse import quote

import peewee
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from markupsafe import Markup

from app.core import clock, markdown, timefmt
from app.core.errors import Refused
from app.disclosure import feeds, redaction, wellknown
from app.disclosure.exports import cve_record
from app.disclosure.redaction import Placeholder, Published
from app.models import PUBLIC_STATES, CveId, Vulnerability
from app.registry import answers
from app.servicekey import public
from app.vulns import affected
from keys import packets

bp = Blueprint("public", __name__)
log = logging.getLogger("forewarn.web")

LIST_DESCRIPTION_CHARS = 400
_ID = re.compile(r"^[A-Z][A-Z0-9]*-(\d{4})-(\d+)$")  # CVE-2026-1234 or SEC-2026-0001
_REMEMBERED_PAGES = 4096  # pages whose version (ETag, since when) is remembered
_RENDERED_PAGES = 256  # anonymous pages kept rendered


@bp.route("/")
def index():
    """The page for reporters: how to report, by encrypted mail or through the form."""
    settings = current_app.extensions["forewarn.settings"]
    fingerprint = public.fingerprint(settings)  # None before `forewarn init`
    return render_template(
        "index.html", security_address=settings.security_address, fingerprint=fingerprint
    )


@bp.route("/key.asc")
def service_key():
    """The service's OpenPGP key, for reporters to encrypt to (linked from every ack)."""
    return Response(
        _service_key()["armored"],
        mimetype="application/pgp-keys",
        headers={"Content-Disposition": 'inline; filename="security-key.asc"'},
    )


def service_certificate() -> str:
    """The service key's public part (ASCII armor), as the workers published it: what the
    report form and the follow-up page encrypt reporters' submissions to (503 until it is)."""
    return _published()[0].certificate


def _published() -> tuple[public.Published, bytes]:
    """What the workers published (and the certificate unarmored, for the WKD); 503 while
    nothing is. Read again only when the files change: a rotation, a renewal, a new day's
    security.txt reach the next request."""
    settings = current_app.extensions["forewarn.settings"]
    cache = current_app.extensions.setdefault("forewarn.published_key", {})
    seen = public.version(settings)
    with _lock:
        known = cache.get("published")
    if known is None or seen is None or known[0] != seen:
        try:
            found = public.required(settings)
        except public.NotPublished as exc:
            log.error("%s", exc)
            abort(503)
        known = (seen, found, packets.dearmor(found.certificate.encode("ascii")))
        with _lock:
            cache["published"] = known
    return known[1], known[2]


def _service_key() -> dict:
    published, binary = _published()
    return {"armored": published.certificate, "binary": binary}


# -- vulnerabilities -------------------------------------------------------------------------


def _public_rows() -> peewee.ModelSelect:
    """Every validated vulnerability with its CVE id, in one query (the join fills v.cve)."""
    return (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId, peewee.JOIN.LEFT_OUTER)
        .where(Vulnerability.status.in_(PUBLIC_STATES))
    )


def _views(rows) -> list[Placeholder | Published]:
    at = clock.now()
    show_dates = current_app.extensions["forewarn.settings"].show_embargo_dates
    return [view for view in redaction.public_views(rows, at, show_dates) if view is not None]


def _year_and_number(view: Placeholder | Published) -> tuple[int, int]:
    """The year and number in the id shown (the CVE id, else the tracking id)."""
    match = _ID.match(view.id)
    if match:
        return int(match.group(1)), int(match.group(2))
    if isinstance(view, Published):
        return view.published_at.year, 0
    return 0, 0  # never happens with our ids; listed last, under "Other"


def _newest_first(view: Placeholder | Published) -> tuple[int, bool, int]:
    # Within a year, those without a CVE id yet (the newest) come first, then CVE ids by number.
    year, number = _year_and_number(view)
    return year, view.cve_id is None, number


def by_year(views) -> list[tuple[int, list[Placeholder | Published]]]:
    """Grouped by the year of the id shown, newest year and newest id first."""
    ordered = sorted(views, key=_newest_first, reverse=True)
    return [
        (year, list(group)) for year, group in groupby(ordered, key=lambda v: _newest_first(v)[0])
    ]


FRESH_FOR = 1.0  # seconds a checked list page is served without asking the database again


@bp.route("/vulnerabilities")
def vulnerabilities():
    """The whole list. Rendering 2,000 entries takes a while, so an anonymous visitor gets the
    page rendered for the same fingerprint of the public rows (app.disclosure.redaction.version: one
    aggregate query, asked at most once every FRESH_FOR seconds), with its ETag and a gzip
    copy made once. A lift shows at most that late, never early."""
    if current_user.is_authenticated or session.get("_flashes"):
        views = _views(_public_rows())
        body = render_template("vulnerabilities/list.html", years=by_year(views))
        return conditional(body, "text/html; charset=utf-8")
    cache = current_app.extensions.setdefault("forewarn.list_page", {})
    with _lock:
        known = cache.get("page")
    fresh_for = current_app.config.get("FOREWARN_LIST_FRESH_FOR", FRESH_FOR)
    if known is None or time.monotonic() - known[4] >= fresh_for:
        settings = current_app.extensions["forewarn.settings"]
        key = (redaction.version(clock.now()), settings.show_embargo_dates, request.script_root)
        if known is None or known[0] != key:
            views = _views(_public_rows())
            data = render_template("vulnerabilities/list.html", years=by_year(views)).encode()
            etag = hashlib.sha256(data).hexdigest()[:40]
            known = (key, data, gzip.compress(data, 6), etag, time.monotonic())
        else:
            known = (*known[:4], time.monotonic())
        with _lock:
            cache["page"] = known
    _, data, compressed, etag, _ = known
    if _accepts_gzip():  # another representation: its own ETag
        response = conditional(compressed, "text/html; charset=utf-8", etag=f"{etag}-gz")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = conditional(data, "text/html; charset=utf-8", etag=etag)
    response.vary.add("Accept-Encoding")
    return response


def _accepts_gzip() -> bool:
    return any(
        part.split(";")[0].strip().lower() == "gzip" and "q=0" not in part.replace(" ", "")
        for part in request.headers.get("Accept-Encoding", "").split(",")
    )


@bp.route("/vulnerabilities/<ident>")
def vulnerability(ident: str):
    """One vulnerability by tracking id or CVE id. A published one has its tracking id's address
    (a CVE id redirects there); a placeholder answers at its CVE id alone once it has one (its
    tracking id answers 404, as an unknown id: app.disclosure.redaction.find), so that neither
    address ties the other to it before the lift."""
    show_dates = current_app.extensions["forewarn.settings"].show_embargo_dates
    found = redaction.find(ident, clock.now(), show_dates)
    if found is None:
        abort(404)  # not public, or no such id, or a tracking id under embargo: the same answer
    row, view = found
    if isinstance(view, Published) and ident != view.tracking_id:
        return redirect(url_for("public.vulnerability", ident=view.tracking_id))
    # Empty until the lift; after it, only what product makers agreed to make public.
    statements = answers.public_statements(row, clock.now())
    body = _page("vulnerabilities/detail.html", (view, statements), v=view, statements=statements)
    return conditional(body, "text/html; charset=utf-8")


@bp.route("/vulnerabilities.atom")
def feed():
    settings = current_app.extensions["forewarn.settings"]
    base = settings.base_url.rstrip("/")
    rows = (
        _public_rows()
        .where(Vulnerability.status == "published", Vulnerability.published_at <= clock.now())
        .order_by(Vulnerability.published_at.desc(), Vulnerability.tracking_id.desc())
        .limit(feeds.ENTRIES)
    )
    now = clock.now()
    withdrawn = _public_rows().where(  # recent withdrawals, however old the publication
        Vulnerability.status == "published",
        Vulnerability.published_at <= now,
        Vulnerability.withdrawn_at.between(now - timedelta(days=feeds.WITHDRAWN_DAYS), now),
    )
    listed = {v.id: v for v in [*rows, *withdrawn]}.values()
    published = [view for view in _views(listed) if isinstance(view, Published)]
    document = feeds.atom(
        published,
        base_url=base,
        page_url=lambda v: base + url_for("public.vulnerability", ident=v.tracking_id),
        title=f"{settings.product or settings.vendor or 'Forewarn'}: published vulnerabilities",
        author=f"{settings.vendor or settings.product or 'Forewarn'} security team",
        author_email=settings.security_address,
    )
    return conditional(document, "application/atom+xml; charset=utf-8")


@bp.context_processor
def _helpers():
    settings = current_app.extensions["forewarn.settings"]
    return {
        "page_url": _url_maker("public.vulnerability", "ident"),
        # (kind, label, url maker); a CVE record exists only for a vulnerability with a CVE id,
        # and only when the CNA's settings are there to make it (has_cve_record).
        "record_links": [
            (kind, label, _url_maker("downloads.record", "ident", kind=kind))
            for kind, label in (("cve", "CVE JSON 5.1"), ("osv", "OSV JSON"), ("csaf", "CSAF 2.0"))
        ],
        "has_cve_record": lambda view: cve_record.servable(view, settings),
        "rating": redaction.rating,
        "description_html": _description_html,
        "short_description_html": _short_description_html,
        "affected_items": _affected_items,
        "embargo_day": timefmt.day,
        "iso": timefmt.zulu,
        "is_published": lambda view: isinstance(view, Published),
        "show_embargo_dates": settings.show_embargo_dates,
    }


def _url_maker(endpoint: str, argument: str, **fixed: str):
    """url_for(endpoint, argument=value, **fixed) for many rows: the rule is built once, then
    filled in (url_for for each link was a third of the list's time at 2,000 entries)."""
    mark = f"--{argument}--"
    pattern = url_for(endpoint, **{argument: mark}, **fixed)
    return lambda value: pattern.replace(mark, quote(value, safe=""))


@functools.lru_cache(maxsize=8192)
def _description_html(text: str) -> Markup:
    return Markup(markdown.to_html(text))  # noqa: S704  (nh3-sanitised)


@functools.lru_cache(maxsize=8192)
def _short_description_html(text: str) -> tuple[Markup, bool]:
    """The first paragraph, at most LIST_DESCRIPTION_CHARS; and whether anything was cut."""
    text = text.strip()
    first = text.split("\n\n", 1)[0].strip()
    if len(first) > LIST_DESCRIPTION_CHARS:
        first = first[:LIST_DESCRIPTION_CHARS].rsplit(None, 1)[0] + " …"
    return Markup(markdown.to_html(first)), first != text  # noqa: S704  (nh3-sanitised)


def _affected_items(text: str) -> list[str]:
    try:
        return [str(item) for item in affected.parse(text)]
    except Refused:  # written before the format was checked: shown as the team wrote it
        return [item.strip() for item in text.split(";") if item.strip()]


# -- rendering once, conditional requests ------------------------------------------------------

_lock = threading.Lock()


def _page(template: str, shown: tuple, **context) -> str:
    """The page, or the same body as last time when the public views shown are equal (the
    views are all a page shows of vulnerabilities, so this is exact). Only for anonymous
    visitors without a pending message: a signed-in visitor's navigation is theirs alone."""
    if current_user.is_authenticated or session.get("_flashes"):
        return render_template(template, **context)
    key = (template, request.script_root, shown)
    rendered = current_app.extensions.setdefault("forewarn.rendered_pages", OrderedDict())
    with _lock:
        known = rendered.get(request.path)
    if known is not None and known[0] == key:
        return known[1]
    body = render_template(template, **context)
    with _lock:
        rendered[request.path] = (key, body)
        rendered.move_to_end(request.path)
        while len(rendered) > _RENDERED_PAGES:
            rendered.popitem(last=False)
    return body


def conditional(
    body: str | bytes, mimetype: str, cache_control: str | None = None, etag: str | None = None
) -> Response:
    """The response with an ETag (a hash of the body, so it changes with anything shown,
    including at an embargo's end) and a Last-Modified, answering 304 when the client has it.

    Last-Modified is when this process first served this body of this page: never earlier
    than the change that produced it, so If-Modified-Since cannot hide a change."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    etag = etag or hashlib.sha256(data).hexdigest()[:40]
    response = Response(data, content_type=mimetype)
    response.set_etag(etag)
    response.last_modified = _first_served(etag)
    if cache_control is None:
        # Revalidate every time; a signed-in visitor's page (their navigation) is theirs alone.
        cache_control = "private, no-cache" if current_user.is_authenticated else "no-cache"
        response.vary.add("Cookie")
    response.headers["Cache-Control"] = cache_control
    return response.make_conditional(request)


def _first_served(etag: str) -> datetime:
    user = current_user.get_id() if current_user.is_authenticated else None
    key = (request.path, user)
    now = clock.now().astimezone(UTC).replace(microsecond=0)
    versions = current_app.extensions.setdefault("forewarn.page_versions", OrderedDict())
    with _lock:
        known = versions.get(key)
        if known is not None and known[0] == etag:
            versions.move_to_end(key)
            return known[1]
        # Last-Modified has whole seconds: a change within the second of the previous version
        # must still be later than it.
        since = max(now, known[1] + timedelta(seconds=1)) if known else now
        versions[key] = (etag, since)
        while len(versions) > _REMEMBERED_PAGES:
            versions.popitem(last=False)
        return since


# -- /.well-known/ -----------------------------------------------------------------------------


@bp.route("/.well-known/security.txt")
def security_txt():
    """RFC 9116, clear-signed by the service key: as a worker signed it (again every day, so
    that Expires moves forward), never signed here."""
    published, _ = _published()
    if published.security_txt is None:
        abort(503)  # the key could not sign (health says why); never an unsigned one
    return conditional(published.security_txt, "text/plain; charset=utf-8", "public, max-age=3600")


@bp.route("/.well-known/openpgpkey/hu/<name>")
@bp.route("/.well-known/openpgpkey/<domain>/hu/<name>")
def wkd_key(name: str, domain: str | None = None):
    """The service key, binary, under its WKD name: the direct method, and the advanced one
    for when openpgpkey.DOMAIN points here. Any ?l= (the local part) is not needed."""
    hashed, own_domain = wellknown.wkd_names(current_app.extensions["forewarn.settings"])
    if name != hashed or (domain is not None and domain.lower() != own_domain):
        abort(404)
    return Response(
        _service_key()["binary"],
        mimetype="application/octet-stream",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"},
    )


@bp.route("/.well-known/openpgpkey/policy")
@bp.route("/.well-known/openpgpkey/<domain>/policy")
def wkd_policy(domain: str | None = None):
    """The directory's policy flags: none (an empty file says the directory exists)."""
    own_domain = wellknown.wkd_names(current_app.extensions["forewarn.settings"])[1]
    if domain is not None and domain.lower() != own_domain:
        abort(404)
    return Response(
        b"",
        mimetype="text/plain",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=3600"},
    )
