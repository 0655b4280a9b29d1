"""Admins vet product makers: the list of registrants (search, filters, pages; pending
applications first), one page per registrant with their evidence, the decisions the registry's
state machine allows, private notes, keys and alerts, and adding a registrant directly."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, Form, SelectField, StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from app.core import audit, clock, timefmt
from app.core.db import write_transaction
from app.core.errors import ForewarnError, Refused
from app.models import Registrant
from app.models.registry import REGISTRANT_STATES
from app.registry import answers, listing, vetting
from app.reports import bounces
from app.web.auth import roles_required
from app.web.outgoing import send_soon
from app.web.registry import AddressFields, KeyFields

bp = Blueprint("vetting", __name__, url_prefix="/admin/registrants")

# The status links' order: what needs a decision first, then the rest.
ORDER = ("pending_review", "approved", "suspended", "unverified", "rejected", "removed")
FLAGGED_NAMED = 5  # approved registrants without a usable key named on the list (then a link)
HEADINGS = {
    "pending_review": "Waiting for review",
    "approved": "Approved",
    "suspended": "Suspended",
    "unverified": "Key not confirmed yet",
    "rejected": "Rejected",
    "removed": "Removed",
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


class ListForm(Form):
    """A GET form: the search and filters are part of the address, so a view can be shared."""

    q = StringField(
        "Search by organisation, email or fingerprint",
        validators=[Length(max=200)],
        filters=[_strip],
    )
    # Unknown values are refused by listing.Filters.checked(), with a message saying so.
    status = SelectField("Status", choices=[], default="", validate_choice=False)
    health = SelectField("Key health", choices=[], default="", validate_choice=False)


def _list_form() -> ListForm:
    form = ListForm(request.args)
    form.status.choices = [("", "Any status")] + [
        (s, s.replace("_", " ")) for s in REGISTRANT_STATES
    ]
    form.health.choices = [
        ("", "Any key health"),
        ("ok", "usable"),
        ("expiring", "expiring within 30 days"),
        ("unusable", "missing, unusable or expired"),
    ]
    return form


def _list_args(**changes) -> dict[str, str]:
    """The list's address parameters as they came in, with changes (None drops one)."""
    args = {
        name: request.args[name] for name in ("q", "status", "health") if request.args.get(name)
    }
    args.update(changes)
    return {name: value for name, value in args.items() if value not in (None, "")}


@bp.route("/")
@roles_required("admin")
def queue():
    form = _list_form()
    at = clock.now()
    filters = listing.Filters(form.q.data or "", form.status.data or "", form.health.data or "")
    raw_page = request.args.get("page", "1")
    try:
        number = int(raw_page)
        found = listing.page(filters, number, at)
    except ValueError:
        return _list_error(
            form, f"The page {raw_page!r} is not a whole number: ask for page=1 or later"
        )
    except Refused as exc:
        return _list_error(form, str(exc))
    flagged, flagged_names = listing.unusable_approved(at, FLAGGED_NAMED)
    return render_template(
        "admin/registrants.html",
        form=form,
        found=found,
        rows=_rows(found.rows),
        list_url=url_for("vetting.queue"),
        filtered=bool(_list_args()),
        status_links=[
            (
                s,
                HEADINGS.get(s, s),
                found.counts[s],
                url_for("vetting.queue", **_list_args(status=s)),
            )
            for s in ORDER
        ],
        page_url=lambda n: url_for("vetting.queue", **_list_args(page=n if n > 1 else None)),
        any_status_url=url_for("vetting.queue", **_list_args(status=None)),
        flagged=flagged,
        flagged_names=flagged_names,
        flagged_url=url_for("vetting.queue", status="approved", health="unusable"),
        bouncing=[(row.user.email, row.bounces) for row in bounces.repeatedly_bouncing()],
    )


def _rows(rows: list[listing.Row]) -> list[tuple]:
    """The table's cells, made here rather than in the template: a page of 50 rows should cost
    about what a page of 10 does (bench/registry_page.py). A registrant's page is the list's
    address and their id."""
    base = url_for("vetting.queue")
    return [
        (
            f"{base}{r.id}",
            r.organisation,
            r.email,
            r.status,
            r.status.replace("_", " "),
            r.health,
            _KEY_LABELS[r.health]
            if r.health != "expiring" or r.expires is None
            else f"expires {timefmt.day(r.expires)}",
            f"…{r.fingerprint[-16:]}" if r.fingerprint else "none",
        )
        for r in rows
    ]


_KEY_LABELS = {"ok": "ok", "expiring": "expires soon", "unusable": "no usable key"}


def _list_error(form, message: str):
    flash(f"{message}.", "error")
    return render_template(
        "admin/registrants.html",
        form=form,
        found=None,
        list_url=url_for("vetting.queue"),
        filtered=True,
        status_links=[],
        page_url=None,
        any_status_url=url_for("vetting.queue"),
        flagged=0,
        flagged_names=[],
        flagged_url=None,
        bouncing=[],
    ), 400


def _registrant_page(registrant: Registrant, decision=None, notes=None, status: int = 200):
    """One registrant: the evidence, the decision and notes forms (with their errors when
    given), their keys, the decisions about them, the alerts they received, their answers."""
    prefix = f"r{registrant.id}"
    at = clock.now()
    keys = listing.keys(registrant)
    uploaded = keys[0] if keys and keys[0].id != registrant.key_id else None
    return (
        render_template(
            "admin/registrant.html",
            r=registrant,
            email=registrant.user.email,
            role_address=vetting.is_role_address(registrant.user.email),
            health=listing.health_of(registrant, at),
            uploaded=uploaded,
            keys=keys,
            key_events=listing.key_events(registrant),
            decisions_made=listing.decisions(registrant),
            alerts=listing.alerts_received(registrant),
            given_answers=answers.of_registrant(registrant),
            answer_labels=answers.LABELS,
            justification_labels=answers.JUSTIFICATION_LABELS,
            decisions=_decisions(registrant.status),
            decision_form=decision or DecisionForm(prefix=prefix),
            notes_form=notes or NotesForm(prefix=f"{prefix}n", data={"notes": registrant.notes}),
        ),
        status,
    )


@bp.route("/<int:registrant_id>")
@roles_required("admin")
def registrant(registrant_id: int):
    return _registrant_page(_registrant_or_404(registrant_id))


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
        return _registrant_page(registrant, decision=form, status=400)
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
        return _registrant_page(registrant, decision=form, status=400)
    send_soon()
    flash(_what_happened(decided, before), "success")
    return redirect(url_for("vetting.registrant", registrant_id=decided.id))


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
        return _registrant_page(registrant, notes=form, status=400)
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
    return redirect(url_for("vetting.registrant", registrant_id=registrant.id))


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
        else "waiting for review"
    )
    flash(
        f"Added {added.organisation} ({added.user.email}) with the key "
        f"{added.pinned_fingerprint} pinned, without a proof mail; {state}. They have no "
        "password, so they cannot sign in to the portal yet; alerts reach them regardless.",
        "success",
    )
    return redirect(url_for("vetting.registrant", registrant_id=added.id))
