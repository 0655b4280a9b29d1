"""Admins vet product makers: the queue of applications with their evidence, the decisions the
registry's state machine allows, private notes, and adding a registrant directly."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from app.core import audit, clock, timefmt
from app.core.db import write_transaction
from app.core.errors import ForewarnError, Refused
from app.models import PublicKey, Registrant, User
from app.registry import renewal, vetting
from app.reports import bounces
from app.web.auth import roles_required
from app.web.outgoing import send_soon
from app.web.registry import AddressFields, KeyFields

bp = Blueprint("vetting", __name__, url_prefix="/admin/registrants")

# The queue's order: what needs a decision first, then the rest.
ORDER = ("pending_review", "approved", "suspended", "unverified", "rejected")
HEADINGS = {
    "pending_review": "Waiting for review",
    "approved": "Approved",
    "suspended": "Suspended",
    "unverified": "Key not confirmed yet",
    "rejected": "Rejected",
}


def _strip(value):
    return value.strip() if isinstance(value, str) else value


@bp.context_processor
def _helpers():
    return {"utc": timefmt.minute, "utc_iso": timefmt.zulu}


class DecisionForm(FlaskForm):
    decision = StringField(validators=[AnyOf(vetting.TRANSITIONS, message="Unknown decision.")])
    reason = TextAreaField(
        "Reason (required to reject, and mailed to the applicant; always kept in the audit log)",
        validators=[Length(max=2000)],
        filters=[_strip],
    )


class NotesForm(FlaskForm):
    notes = TextAreaField(
        "Admin notes (admins only; never shown to the registrant)",
        validators=[Length(max=10000)],
        filters=[_strip],
    )


def _decisions(status: str) -> list[tuple[str, str]]:
    """(new status, button text) for what TRANSITIONS allows from this status."""
    words = {
        "approved": "Reinstate" if status == "suspended" else "Approve",
        "rejected": "Reject",
        "suspended": "Suspend",
        "removed": "Remove",
    }
    return [
        (s, words[s])
        for s in ("approved", "rejected", "suspended", "removed")
        if s in vetting.TRANSITIONS[status]
    ]


def _entry(registrant: Registrant, decision=None, notes=None) -> dict:
    prefix = f"r{registrant.id}"
    uploaded = (
        PublicKey.select()
        .where(PublicKey.owner == registrant.user_id)
        .order_by(PublicKey.created_at.desc(), PublicKey.id.desc())
        .first()
    )
    return {
        "r": registrant,
        "email": registrant.user.email,
        "role_address": vetting.is_role_address(registrant.user.email),
        "uploaded": uploaded if uploaded is not None and uploaded.id != registrant.key_id else None,
        "decisions": _decisions(registrant.status),
        "decision_form": decision or DecisionForm(prefix=prefix),
        "notes_form": notes or NotesForm(prefix=f"{prefix}n", data={"notes": registrant.notes}),
    }


def _queue_page(override: dict | None = None, status: int = 200):
    """The whole queue; `override` replaces one registrant's forms (to show their errors)."""
    override = override or {}
    rows = Registrant.select(Registrant, User).join(User, on=(Registrant.user == User.id))
    grouped = {state: [] for state in ORDER}
    for registrant in rows.order_by(Registrant.created_at, Registrant.id):
        forms = override.get(registrant.id, {})
        grouped.setdefault(registrant.status, []).append(_entry(registrant, **forms))
    return (
        render_template(
            "admin/registrants.html",
            groups=[(s, HEADINGS.get(s, s), grouped[s]) for s in grouped],
            total=sum(len(v) for v in grouped.values()),
            flagged=list(renewal.flagged(clock.now())),
            bouncing=[(row.user.email, row.bounces) for row in bounces.repeatedly_bouncing()],
        ),
        status,
    )


@bp.route("/")
@roles_required("admin")
def queue():
    return _queue_page()


def _registrant_or_404(registrant_id: int) -> Registrant:
    try:
        return vetting.get(registrant_id)
    except ForewarnError:
        abort(404)


@bp.route("/<int:registrant_id>/decide", methods=["POST"])
@roles_required("admin")
def decide(registrant_id: int):
    registrant = _registrant_or_404(registrant_id)
    form = DecisionForm(prefix=f"r{registrant.id}")
    if not form.validate_on_submit():
        flash(f"Nothing changed for {registrant.user.email}: choose one of the buttons.", "error")
        return _queue_page({registrant.id: {"decision": form}}, 400)
    before = registrant.status
    try:
        decided = vetting.decide(
            registrant,
            form.decision.data,
            current_user.user,
            current_user.email,
            clock.now(),
            reason=form.reason.data or "",
        )
    except Refused as exc:
        form.reason.errors.append(str(exc))
        flash(f"Nothing changed for {registrant.user.email}: {exc}", "error")
        return _queue_page({registrant.id: {"decision": form}}, 400)
    send_soon()
    flash(_what_happened(decided, before), "success")
    return redirect(url_for("vetting.queue") + f"#registrant-{decided.id}")


def _what_happened(r: Registrant, before: str) -> str:
    who = f"{r.organisation} ({r.user.email})"
    if r.status == "approved" and before == "suspended":
        return f"{who} is reinstated: alerts go to them again, encrypted to {r.pinned_fingerprint}."
    if r.status == "approved":
        return (
            f"{who} is approved: the next alerts go to them, encrypted to {r.pinned_fingerprint}."
        )
    if r.status == "rejected":
        return f"{who} is rejected; the reason is being mailed to them. They receive no alerts."
    if r.status == "removed":
        return f"{who} is removed: the account is disabled and receives nothing; the history stays."
    return f"{who} is suspended: they receive no alerts until an admin reinstates them."


@bp.route("/<int:registrant_id>/notes", methods=["POST"])
@roles_required("admin")
def notes(registrant_id: int):
    registrant = _registrant_or_404(registrant_id)
    form = NotesForm(prefix=f"r{registrant.id}n")
    if not form.validate_on_submit():
        flash(f"The notes on {registrant.user.email} were not saved: they are too long.", "error")
        return _queue_page({registrant.id: {"notes": form}}, 400)
    at = clock.now()
    with write_transaction():
        Registrant.update(notes=form.notes.data or "", updated_at=at).where(
            Registrant.id == registrant.id
        ).execute()
        audit.record(
            current_user.user,
            "registry.notes",
            at,
            target=registrant.user.email,
            details={"notes": form.notes.data or ""},
        )
    flash(
        f"Notes on {registrant.user.email} saved. Only admins see them (and the audit log keeps "
        "each version).",
        "success",
    )
    return redirect(url_for("vetting.queue") + f"#registrant-{registrant.id}")


# -- adding a registrant directly ---------------------------------------------------------------


class AddForm(AddressFields, KeyFields, FlaskForm):
    organisation = StringField(
        "Organisation",
        validators=[DataRequired(message="Name the organisation."), Length(max=250)],
        filters=[_strip],
    )
    products = TextAreaField(
        "Products they build on the project", validators=[Length(max=5000)], filters=[_strip]
    )
    package_urls = TextAreaField(
        "Package URLs of what they ship (optional, one a line, e.g. "
        "pkg:github/zephyrproject-rtos/zephyr)",
        validators=[Length(max=60_000)],
        filters=[_strip],
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    approve = BooleanField("Approve now (otherwise they wait in the review queue)")
    allow_other_uid = BooleanField(
        "Allow a key whose user id does not match the address (noted in the audit log)"
    )


@bp.route("/add", methods=["GET", "POST"])
@roles_required("admin")
def add():
    form = AddForm()
    if request.method == "GET":
        return render_template("admin/registrants_add.html", form=form)
    key = form.key_bytes() if form.validate_on_submit() else None
    if key is None:
        flash("Nobody was added: correct the fields marked below.", "error")
        return render_template("admin/registrants_add.html", form=form), 400
    try:
        added = vetting.add_by_admin(
            form.email.data,
            form.organisation.data,
            key,
            current_user.user,
            current_user.email,
            clock.now(),
            approve=bool(form.approve.data),
            products=form.products.data or "",
            allow_other_uid=bool(form.allow_other_uid.data),
            package_urls=form.package_urls.data or "",
        )
    except Refused as exc:
        message = str(exc)
        target = form.key_text if message.startswith("The key") else form.email
        if "is not a package URL" in message:
            form.package_urls.errors.append(message)
        elif "account for" in message or message.startswith("The key"):
            target.errors.append(message)
        flash(f"Nobody was added: {message}", "error")
        return render_template("admin/registrants_add.html", form=form), 400
    state = (
        "approved: the next alerts go to them"
        if added.status == "approved"
        else "waiting for review below"
    )
    flash(
        f"Added {added.organisation} ({added.user.email}) with the key "
        f"{added.pinned_fingerprint} pinned, without a proof mail; {state}. They have no "
        "password, so they cannot sign in to the portal yet; alerts reach them regardless.",
        "success",
    )
    return redirect(url_for("vetting.queue") + f"#registrant-{added.id}")
