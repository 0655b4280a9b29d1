"""The advisories a registrant received, and for approved registrants the text of the active
embargoed ones (each view audited). Nobody else ever reaches embargoed text here."""

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

from app.core import audit, clock, timefmt
from app.models import Advisory, Delivery, Registrant, Vulnerability
from app.registry import alerts

bp = Blueprint("advisories", __name__, url_prefix="/registry/advisories")


@bp.context_processor
def _helpers():
    return {"utc": timefmt.minute, "utc_iso": timefmt.zulu}


def _registrant() -> Registrant:
    if current_user.role != "registrant":
        abort(403)
    found = Registrant.get_or_none(Registrant.user == current_user.user)
    if found is None:
        abort(404)
    return found


@bp.route("/")
@login_required
def received():
    registrant = _registrant()
    deliveries = (
        Delivery.select(Delivery, Advisory, Vulnerability)
        .join(Advisory)
        .join(Vulnerability)  # the advisory's: a bundle's versions are each another's
        .where(Delivery.user == registrant.user, Delivery.kind.in_(("alert", "alert-missed")))
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
    )
    # One row per version received: a bundle's one mail carries several.
    rows = [(d, a) for d in deliveries for a in alerts.carried(d.advisory)]
    return render_template("registry/advisories.html", registrant=registrant, rows=rows)


@bp.route("/<int:advisory_id>")
@login_required
def text(advisory_id: int):
    registrant = _registrant()
    if registrant.status != "approved":
        abort(403)  # pending, rejected, suspended and removed registrants read no advisory
    advisory = alerts.may_read(registrant, advisory_id)
    if advisory is None:
        abort(404)
    audit.record(
        current_user.user,
        "advisory.view",
        clock.now(),
        target=advisory.vulnerability.tracking_id,
        details={"version": advisory.version},
    )
    return render_template("registry/advisory.html", advisory=advisory, registrant=registrant)
