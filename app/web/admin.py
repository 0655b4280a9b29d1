"""Admin pages: the audit log, filtered and paged, and its CSV export (itself audited); the
CNA's CVE ids: what is left (or the CVE Services quota), importing a block, retiring an id."""

import csv
import io
import json
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, Form, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.core import audit, clock, timefmt
from app.core.errors import ForewarnError
from app.models import CveId, Vulnerability
from app.vulns import cve_records, cve_services, cves
from app.web.auth import roles_required

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_SIZE = 100
FILTERS = ("actor", "action", "target", "since", "until")


@bp.context_processor
def _helpers():
    return {"utc": timefmt.minute, "utc_iso": timefmt.zulu}


@bp.app_template_filter("pretty_details")
def pretty_details(text: str) -> str:
    """An event's JSON details indented for reading; nothing for none; as stored if not JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) if value else ""


class AuditFilterForm(Form):
    """A GET form: filters are part of the address, so a filtered view can be shared."""

    actor = StringField(
        "Actor (email, or a label such as cli:root)",
        validators=[Optional(), Length(max=254)],
        filters=[lambda v: v.strip() if v else v],
    )
    action = SelectField("Action", choices=[], default="")
    target = StringField(
        "Target (exactly as recorded)",
        validators=[Optional(), Length(max=255)],
        filters=[lambda v: v.strip() if v else v],
    )
    since = DateField("From (UTC date)", validators=[Optional()])
    until = DateField("To (UTC date, inclusive)", validators=[Optional()])

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date comes before the start date.")

    def filters(self) -> dict:
        """The keyword arguments of audit.events(): whole UTC days, the last one included."""
        return {
            "actor": self.actor.data or None,
            "action": self.action.data or None,
            "target": self.target.data or None,
            "since": _day_start(self.since.data) if self.since.data else None,
            "until": _day_start(self.until.data + timedelta(days=1)) if self.until.data else None,
        }


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.action.choices = [("", "Any action")] + [(a, a) for a in audit.actions()]
    return form


def _filter_args() -> dict[str, str]:
    """The filters as they came in, to carry into the next page's and the CSV's address."""
    return {name: request.args[name] for name in FILTERS if request.args.get(name)}


@bp.route("/audit")
@roles_required("admin")
def audit_log():
    form = _filter_form()
    if not form.validate():
        return _audit_page(form, events=[], older_url=None), 400
    before = request.args.get("before", type=int)
    found = list(audit.events(**form.filters(), before=before, limit=PAGE_SIZE + 1))
    older_url = None
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        older_url = url_for("admin.audit_log", before=found[-1].id, **_filter_args())
    return _audit_page(form, events=found, older_url=older_url, paged=before is not None)


def _audit_page(form, events, older_url, paged=False):
    return render_template(
        "admin/audit.html",
        form=form,
        events=events,
        older_url=older_url,
        newest_url=url_for("admin.audit_log", **_filter_args()) if paged else None,
        csv_url=url_for("admin.audit_csv", **_filter_args()),
        filtered=bool(_filter_args()),
        page_size=PAGE_SIZE,
    )


@bp.route("/audit.csv")
@roles_required("admin")
def audit_csv():
    form = _filter_form()
    if not form.validate():
        return _audit_page(form, events=[], older_url=None), 400
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    rows = -1  # the header is not an event
    for row in audit.csv_rows(audit.events(**form.filters())):
        writer.writerow(row)
        rows += 1
    now = clock.now()
    # Who took a copy of the log, and of which part, is itself part of the log.
    audit.record(
        current_user.user, "audit.export", now, details={"filters": _filter_args(), "rows": rows}
    )
    filename = f"forewarn-audit-{timefmt.compact(now)}.csv"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- CVE ids ---------------------------------------------------------------------------------

CVE_ROWS = 500  # the table shows this many ids at most; `forewarn cve list` prints them all


def _strip(value):
    return value.strip() if value else value


class ImportForm(FlaskForm):
    id_range = StringField(
        "Range, e.g. CVE-2026-1000..CVE-2026-1099",
        validators=[DataRequired(), Length(max=100)],
        filters=[_strip],
    )


class RetireForm(FlaskForm):
    cve_id = StringField("CVE id", validators=[DataRequired(), Length(max=40)], filters=[_strip])
    reason = StringField(
        "Reason (kept with the id)", validators=[DataRequired(), Length(max=500)], filters=[_strip]
    )


@bp.route("/cves")
@roles_required("admin")
def cve_ids():
    services, services_error, quota = None, None, None
    try:
        services = cve_services.ServicesConfig.from_environ()
        quota = cve_services.quota(services)
    except ForewarnError as exc:  # a bad setting or an unreachable service: say so, go on
        services_error = str(exc)
    rows = cve_records.inventory()
    counts = {state: 0 for state in ("available", "assigned", "published", "rejected")}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    shown = [_with_instant(row) for row in reversed(rows[-CVE_ROWS:])]  # newest ids first
    return render_template(
        "admin/cves.html",
        import_form=ImportForm(prefix="import"),
        retire_form=RetireForm(prefix="retire"),
        available=cves.remaining(),
        counts=counts,
        low_water=cves.LOW_WATER,
        services=services,
        services_error=services_error,
        quota=quota,
        rows=shown,
        total=len(rows),
    )


def _with_instant(row: dict) -> dict:
    at = row["assigned_at"]
    return {**row, "assigned_at": datetime.fromisoformat(at) if at else None}


@bp.route("/cves/import", methods=["POST"])
@roles_required("admin")
def cve_import():
    form = ImportForm(prefix="import")
    if not form.validate_on_submit():
        flash(f"No ids were imported: {_form_errors(form)}", "error")
        return redirect(url_for("admin.cve_ids"))
    try:
        done = cves.import_block(
            form.id_range.data, current_user.user, current_user.email, clock.now()
        )
    except ForewarnError as exc:
        flash(f"No ids were imported: {exc}", "error")
        return redirect(url_for("admin.cve_ids"))
    left = cves.remaining()
    flash(
        f"Added {_ids(done.added)} ({done.known} already known). "
        f"{left} {'is' if left == 1 else 'are'} available now.",
        "success",
    )
    return redirect(url_for("admin.cve_ids"))


@bp.route("/cves/retire", methods=["POST"])
@roles_required("admin")
def cve_retire():
    form = RetireForm(prefix="retire")
    if not form.validate_on_submit():
        flash(f"No id was retired: {_form_errors(form)}", "error")
        return redirect(url_for("admin.cve_ids"))
    try:
        services = cve_services.ServicesConfig.from_environ()
        holder = _holder(form.cve_id.data)
        row = cve_records.retire(
            form.cve_id.data,
            form.reason.data,
            current_user.user,
            current_user.email,
            clock.now(),
            services,
        )
    except ForewarnError as exc:
        flash(f"No id was retired: {exc}", "error")
        return redirect(url_for("admin.cve_ids"))
    where = " here and at CVE Services" if services and row.source == cves.SERVICES else ""
    next_step = (
        f"{holder} has no CVE id now; give it a new one from its page."
        if holder
        else "It will not be given to any vulnerability."
    )
    flash(f"{row.cve_id} is rejected{where} ({row.reason}). {next_step}", "success")
    return redirect(url_for("admin.cve_ids"))


def _holder(cve_id: str) -> str | None:
    """The tracking id of the vulnerability that holds this id now, if any."""
    year, number = cves.parse_id(cve_id)
    vuln = (
        Vulnerability.select(Vulnerability.tracking_id)
        .join(CveId, on=(Vulnerability.cve == CveId.id))
        .where(CveId.cve_id == cves.format_id(year, number))
        .first()
    )
    return vuln.tracking_id if vuln else None


def _ids(n: int) -> str:
    return f"{n} id" if n == 1 else f"{n} ids"


def _form_errors(form: FlaskForm) -> str:
    return "; ".join(
        f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items()
    )
