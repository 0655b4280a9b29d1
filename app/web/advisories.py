"""The advisories a registrant received, and for approved registrants the text of the active
embargoed ones (each view audited) with a form to answer each vulnerability it covers (#17).
Nobody else ever reaches embargoed text here, and a registrant sees their own answers alone."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.core import audit, clock, timefmt
from app.core.errors import Refused
from app.models import Advisory, Delivery, Registrant, Vulnerability
from app.registry import alerts, answers

bp = Blueprint("advisories", __name__, url_prefix="/registry/advisories")


@bp.context_processor
def _helpers():
    return {
        "utc": timefmt.minute,
        "utc_iso": timefmt.zulu,
        "answer_labels": answers.LABELS,
        "justification_labels": answers.JUSTIFICATION_LABELS,
        "answer_statuses": answers.STATUSES,
        "justifications": answers.JUSTIFICATIONS,
        "max_statement": answers.MAX_STATEMENT,
    }


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
    said = {a.vulnerability_id: a for a in answers.of_registrant(registrant)}
    return render_template("registry/advisories.html", registrant=registrant, rows=rows, said=said)


def _readable(advisory_id: int) -> tuple[Registrant, Advisory]:
    registrant = _registrant()
    if registrant.status != "approved":
        abort(403)  # pending, rejected, suspended and removed registrants read no advisory
    advisory = alerts.may_read(registrant, advisory_id)
    if advisory is None:
        abort(404)
    return registrant, advisory


@bp.route("/<int:advisory_id>")
@login_required
def text(advisory_id: int):
    registrant, advisory = _readable(advisory_id)
    audit.record(
        current_user.user,
        "advisory.view",
        clock.now(),
        target=advisory.vulnerability.tracking_id,
        details={"version": advisory.version},
    )
    return _page(registrant, advisory)


def _covered(advisory: Advisory) -> list[Advisory]:
    """The versions the page answers for: its own first, then the rest of its bundle."""
    versions = alerts.carried(advisory)
    return [advisory] + [a for a in versions if a.id != advisory.id]


def _page(registrant, advisory, failed: str | None = None, error: str = "", entered=None):
    """The advisory with an answer form per vulnerability it covers; `failed` is the tracking
    id whose form comes back with `error` and what was `entered`."""
    forms = []
    for version in _covered(advisory):
        v = version.vulnerability
        current = answers.current_of(registrant, v)
        if v.tracking_id == failed:
            filled = entered
        elif current is not None:
            filled = {
                "status": current.status,
                "justification": current.justification or "",
                "statement": current.statement,
                "consent": current.public_consent,
            }
        else:
            filled = {"status": "", "justification": "", "statement": "", "consent": False}
        forms.append(
            {
                "version": version,
                "v": v,
                "current": current,
                "history": answers.history(registrant, v),
                "may_answer": answers.may_answer(registrant, v),
                "filled": filled,
                "error": error if v.tracking_id == failed else "",
            }
        )
    return render_template(
        "registry/advisory.html", advisory=advisory, registrant=registrant, forms=forms
    ), (400 if failed else 200)


@bp.route("/<int:advisory_id>/answers/<tracking_id>", methods=["POST"])
@login_required
def answer(advisory_id: int, tracking_id: str):
    """Record the registrant's answer about one vulnerability the advisory covers."""
    registrant = _registrant()
    if registrant.status != "approved":
        flash(
            f"Nothing was recorded: your registration is {registrant.status}, and only approved "
            "registrants answer alerts. Ask the security team if that is wrong.",
            "error",
        )
        return redirect(url_for("advisories.received"))
    advisory = alerts.may_read(registrant, advisory_id)
    if advisory is None:
        abort(404)
    version = next(
        (a for a in _covered(advisory) if a.vulnerability.tracking_id == tracking_id), None
    )
    if version is None:
        abort(404)
    v = version.vulnerability
    entered = {
        "status": request.form.get("status", ""),
        "justification": request.form.get("justification", ""),
        "statement": request.form.get("statement", ""),
        "consent": request.form.get("consent") == "yes",
    }
    # The page hides the justification unless "not_affected" is chosen: one left selected
    # behind another status is not what they meant (the domain refuses it from mail).
    justification = (
        entered["justification"] if entered["status"].strip().lower() == "not_affected" else ""
    )
    try:
        given = answers.check(
            entered["status"], justification, entered["statement"], entered["consent"]
        )
    except Refused as exc:
        return _page(registrant, advisory, failed=v.tracking_id, error=str(exc), entered=entered)
    back = redirect(
        url_for("advisories.text", advisory_id=advisory.id) + f"#answer-{v.tracking_id}"
    )
    try:
        answers.record(
            registrant,
            v,
            given,
            via="web",
            at=clock.now(),
            actor=current_user.user,
            advisory=version,
        )
    except Refused as exc:
        flash(f"Nothing was recorded: {exc}", "error")
        return back
    said = answers.LABELS[given.status]
    if given.justification:
        said += f" ({answers.JUSTIFICATION_LABELS[given.justification].lower()})"
    public = (
        "with your consent, your status and statement appear on the public page as a product "
        "maker's statement once the embargo lifts."
        if given.consent
        else "it stays with the team: nothing of it is published (you did not consent)."
    )
    flash(
        f"Recorded: {v.tracking_id} — {said}. The security team sees it now; {public} "
        "A later answer replaces this one.",
        "success",
    )
    return back
