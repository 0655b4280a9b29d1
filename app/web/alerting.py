"""The team sends pre-disclosure alerts from a vulnerability and follows their delivery."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import TextAreaField
from wtforms.validators import Length

from app.accounts.team import TEAM_ROLES
from app.core import clock
from app.core.errors import Refused
from app.models import Advisory, Patch, Vulnerability
from app.registry import alerts
from app.vulns import patches
from app.web.auth import roles_required
from app.web.outgoing import send_soon

bp = Blueprint("alerting", __name__, url_prefix="/team/vulnerabilities")


class AlertForm(FlaskForm):
    text = TextAreaField(
        "Advisory text (plain text; sent to every approved registrant)",
        validators=[Length(max=200_000)],
    )


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
    elif form.validate_on_submit():
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
        missed=alerts.missed(advisory),
        refresh=counts["queued"] > 0,
    )
