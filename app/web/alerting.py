"""The team sends pre-disclosure alerts from a vulnerability and follows their delivery.

Narrowed to matching products (app.registry.targeting), an alert first shows who gets it and
who does not; nothing is sent until the team confirms that page."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, RadioField, SelectMultipleField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from app.accounts.team import TEAM_ROLES
from app.core import clock
from app.core.errors import Refused
from app.models import Advisory, Patch, Vulnerability
from app.registry import alerts, targeting
from app.vulns import patches
from app.web.auth import roles_required
from app.web.outgoing import send_soon

bp = Blueprint("alerting", __name__, url_prefix="/team/vulnerabilities")


class AlertForm(FlaskForm):
    text = TextAreaField(
        "Advisory text (plain text; sent to every approved registrant)",
        validators=[Length(max=200_000)],
    )
    audience = RadioField(
        "Who gets it",
        choices=[
            SelectChoice("everyone", "Every approved registrant"),
            SelectChoice(
                "matching",
                "Only registrants whose declared products match the affected ones "
                "(you see the list, and who is left out, before anything is sent)",
            ),
        ],
        default="everyone",
    )


class ConfirmForm(FlaskForm):
    """The preview's confirmation: the text and the preview it was shown (its key), and the
    left-out registrants ticked to be added back (templates/team/alert_preview.html)."""

    text = HiddenField(validators=[Length(max=200_000)])
    shown = HiddenField(validators=[Length(max=100_000)])
    add = SelectMultipleField(coerce=int, choices=[], validate_choice=False)


class PatchForm(FlaskForm):
    patch = FileField("Patch file (sent as it is, with its sha256)", validators=[FileRequired()])


class RemovePatchForm(FlaskForm):
    """A button: later versions no longer carry this patch."""


def _vulnerability(tracking_id: str) -> Vulnerability:
    v = Vulnerability.get_or_none(Vulnerability.tracking_id == tracking_id)
    if v is None:
        abort(404)
    return v


@bp.route("/<tracking_id>/alerts", methods=["GET", "POST"])
@roles_required(*TEAM_ROLES)
def compose(tracking_id: str):
    v = _vulnerability(tracking_id)
    settings = current_app.extensions["forewarn.settings"]
    versions = list(v.advisories.order_by(Advisory.version.desc()))
    form = AlertForm()
    if not form.is_submitted():
        form.text.data = alerts.draft(v, settings, (versions[0].version + 1) if versions else 1)
        if targeting.last_narrowed(v):  # offer the last version's choice; its preview shows
            form.audience.data = "matching"
    elif form.validate_on_submit() and form.audience.data == "matching":
        try:
            preview = targeting.preview(v, clock.now())
        except Refused as exc:
            flash(f"No alert was sent: {exc}", "error")
        else:  # nothing is sent from here: the team confirms the preview first
            flash(
                "Nothing is sent yet: check who gets it and who is left out, tick anyone to "
                "add back, then confirm.",
                "info",
            )
            return _preview_page(v, preview, form.text.data, versions)
    elif not form.errors:
        try:
            advisory = alerts.send(
                v, current_user.user, current_user.email, clock.now(), settings, text=form.text.data
            )
        except Refused as exc:
            flash(f"No alert was sent: {exc}", "error")
        else:
            send_soon()
            count = sum(alerts.progress(advisory).values())
            flash(
                f"{v.tracking_id} v{advisory.version} is queued to {count} "
                f"registrant{'s' if count != 1 else ''}; this page shows the deliveries as "
                "they go out.",
                "success",
            )
            return redirect(
                url_for("alerting.progress", tracking_id=v.tracking_id, version=advisory.version)
            )
    return render_template(
        "team/alerts.html",
        v=v,
        versions=versions,
        form=form,
        progress={a.id: alerts.progress(a) for a in versions},
        patches=list(patches.current(v)),
        patch_form=PatchForm(formdata=None, prefix="patch"),
        remove_form=RemovePatchForm(formdata=None, prefix="remove"),
    )


def _preview_page(v, preview, text, versions, added=(), status=200):
    confirm = ConfirmForm(formdata=None, text=text, shown=preview.key)
    return (
        render_template(
            "team/alert_preview.html",
            v=v,
            preview=preview,
            form=confirm,
            added=set(added),
            text=text,
            version=(versions[0].version + 1) if versions else 1,
        ),
        status,
    )


@bp.route("/<tracking_id>/alerts/confirm", methods=["POST"])
@roles_required(*TEAM_ROLES)
def confirm(tracking_id: str):
    """Send the narrowed alert the team saw, unless who gets alerts changed since: then the
    new preview, nothing sent."""
    v = _vulnerability(tracking_id)
    settings = current_app.extensions["forewarn.settings"]
    versions = list(v.advisories.order_by(Advisory.version.desc()))
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(
            "No alert was sent: the confirmation was incomplete; check the text and send again.",
            "error",
        )
        return redirect(url_for("alerting.compose", tracking_id=v.tracking_id))
    try:
        advisory = targeting.send_matching(
            v,
            current_user.user,
            current_user.email,
            clock.now(),
            settings,
            shown=form.shown.data or "",
            added=form.add.data or [],
            text=form.text.data,
        )
    except targeting.AudienceChanged as exc:
        flash(f"No alert was sent: {exc}.", "error")
        kept = [i for i in (form.add.data or []) if i in {r.id for r in exc.preview.left_out}]
        return _preview_page(v, exc.preview, form.text.data, versions, kept, 409)
    except Refused as exc:
        flash(f"No alert was sent: {exc}", "error")
        return redirect(url_for("alerting.compose", tracking_id=v.tracking_id))
    send_soon()
    record = targeting.audience(advisory)
    count = sum(alerts.progress(advisory).values())
    flash(
        f"{v.tracking_id} v{advisory.version} is queued to {count} of {record['approved']} "
        f"approved registrants ({len(record['left_out'])} left out, as you chose); this page "
        "shows the deliveries as they go out.",
        "success",
    )
    return redirect(
        url_for("alerting.progress", tracking_id=v.tracking_id, version=advisory.version)
    )


@bp.route("/<tracking_id>/alerts/patches", methods=["POST"])
@roles_required(*TEAM_ROLES)
def attach(tracking_id: str):
    v = _vulnerability(tracking_id)
    form = PatchForm(prefix="patch")
    back = redirect(url_for("alerting.compose", tracking_id=v.tracking_id))
    if not form.validate_on_submit():
        flash("No patch was attached: choose a file first.", "error")
        return back
    upload = form.patch.data
    try:
        patch = patches.attach(
            v,
            upload.filename or "",
            upload.read(patches.MAX_BYTES + 1),
            current_user.user,
            current_user.email,
            clock.now(),
        )
    except Refused as exc:
        flash(f"No patch was attached: {exc}", "error")
        return back
    flash(
        f"{patch.filename} is attached (sha256 {patch.sha256}). The next version carries it; "
        "the draft below lists it.",
        "success",
    )
    return back


@bp.route("/<tracking_id>/alerts/patches/<int:patch_id>/remove", methods=["POST"])
@roles_required(*TEAM_ROLES)
def remove(tracking_id: str, patch_id: int):
    v = _vulnerability(tracking_id)
    patch = Patch.get_or_none(Patch.id == patch_id, Patch.vulnerability == v)
    if patch is None or patch.removed:
        abort(404)
    if not RemovePatchForm(prefix="remove").validate_on_submit():
        abort(400)
    patches.remove(patch, current_user.user, current_user.email, clock.now())
    flash(
        f"{patch.filename} is removed: later versions will not carry it (versions already "
        "sent keep it).",
        "success",
    )
    return redirect(url_for("alerting.compose", tracking_id=v.tracking_id))


@bp.route("/<tracking_id>/alerts/v<int:version>")
@roles_required(*TEAM_ROLES)
def progress(tracking_id: str, version: int):
    v = _vulnerability(tracking_id)
    advisory = Advisory.get_or_none(Advisory.vulnerability == v, Advisory.version == version)
    if advisory is None:
        abort(404)
    counts = alerts.progress(advisory)
    return render_template(
        "team/alert_progress.html",
        v=v,
        advisory=advisory,
        bundled=[a for a in alerts.carried(advisory) if a.id != advisory.id],
        counts=counts,
        narrowed=targeting.audience(advisory),
        missed=alerts.missed(advisory),
        refresh=counts["queued"] > 0,
    )
