"""What becomes of a CVE id after it is given: retired (rejected, at CVE Services too), its
record published at CVE Services, and the inventory of every id the CNA holds. The ids
themselves (blocks, reservations, allocation) are app/vulns/cves.py."""

from datetime import datetime

import peewee
import requests
from cvelib.cve_api import CveRecordValidationError

from app.core import audit
from app.core.db import write_transaction
from app.core.errors import NotFound, Refused
from app.models import CveId, User, Vulnerability
from app.vulns import cve_services
from app.vulns.cves import SERVICES, format_id, parse_id

RETIRABLE = ("available", "assigned")

# -- retiring and publishing ---------------------------------------------------------------


def retire(
    cve_id: str,
    reason: str,
    by: User | None,
    by_label: str,
    at: datetime,
    services: cve_services.ServicesConfig | None = None,
) -> CveId:
    """An unused or assigned-but-unpublished id becomes rejected (unlinked from its
    vulnerability); one reserved at CVE Services is moved to REJECTED there first."""
    reason = " ".join(reason.split())
    if not reason:
        raise Refused("say why the id is retired (--reason)")
    year, number = parse_id(cve_id)
    row = CveId.get_or_none(CveId.cve_id == format_id(year, number))
    if row is None:
        raise NotFound(f"{format_id(year, number)} is not one of our CVE ids")
    _refuse_retire(row)
    if services is not None and row.source == SERVICES:
        with cve_services.session(services, f"reject {row.cve_id}") as api:
            api.move_to_rejected(row.cve_id)
    with write_transaction():
        row = CveId.get_by_id(row.id)
        _refuse_retire(row)
        holder = Vulnerability.get_or_none(Vulnerability.cve == row.id)
        if holder is not None:
            Vulnerability.update(cve=None, updated_at=at).where(
                Vulnerability.id == holder.id
            ).execute()
        CveId.update(state="rejected", reason=reason).where(CveId.id == row.id).execute()
        audit.record(
            by,
            "cve.retire",
            at,
            target=row.cve_id,
            details={
                "reason": reason,
                "source": row.source,
                "before": {
                    "state": row.state,
                    "vulnerability": holder.tracking_id if holder else None,
                },
                "after": {"state": "rejected", "vulnerability": None},
            },
            actor_label=by_label,
        )
    return CveId.get_by_id(row.id)


def _refuse_retire(row: CveId) -> None:
    if row.state == "published":
        raise Refused(
            f"{row.cve_id} is published; a published record is rejected by updating it at "
            "CVE Services, not by retiring the id"
        )
    if row.state not in RETIRABLE:
        raise Refused(f"{row.cve_id} is already {row.state}")


def publish_record(
    cve_id: str,
    record: dict,
    services: cve_services.ServicesConfig,
    at: datetime,
    by: User | None = None,
    by_label: str = "system",
) -> dict:
    """Publish the CVE record at CVE Services, or update it once it is published (after a
    revision of its vulnerability); the id becomes published here too. Returns the service's
    answer. Safe to repeat after a crash: a record the service already holds is updated, one
    it lacks is published."""
    year, number = parse_id(cve_id)
    row = CveId.get_or_none(CveId.cve_id == format_id(year, number))
    if row is None:
        raise NotFound(f"{format_id(year, number)} is not one of our CVE ids")
    if row.state not in ("assigned", "published"):
        raise Refused(f"{row.cve_id} is {row.state}; only an assigned id can be published")
    updating = row.state == "published"
    # Publishing first a record that exists, or updating one that does not, tells why.
    answer = _send(
        row,
        services,
        "update" if updating else "publish",
        (lambda api: api.update_published, lambda api: api.publish, "CVE_RECORD_DNE")
        if updating
        else (lambda api: api.publish, lambda api: api.update_published, "CVE_RECORD_EXISTS"),
        record,
        "the record",
    )
    with write_transaction():
        CveId.update(state="published").where(CveId.id == row.id).execute()
        audit.record(
            by,
            "cve.update" if updating else "cve.publish",
            at,
            target=row.cve_id,
            details={"before": {"state": row.state}, "after": {"state": "published"}},
            actor_label=by_label,
        )
    return answer


def reject_record(
    cve_id: str,
    record: dict,
    services: cve_services.ServicesConfig,
    at: datetime,
    by: User | None = None,
    by_label: str = "system",
) -> dict:
    """Turn the published record at CVE Services into the REJECTED `record` (a withdrawn
    vulnerability's, app.vulns.withdrawal), or update the rejected one. Safe to repeat: a
    record already rejected there is updated; an id never published there is rejected with
    this record. The id is rejected here already (the withdrawal did that)."""
    year, number = parse_id(cve_id)
    row = CveId.get_or_none(CveId.cve_id == format_id(year, number))
    if row is None:
        raise NotFound(f"{format_id(year, number)} is not one of our CVE ids")
    # PUT /cve/ID/reject turns a PUBLISHED (or REJECTED) record REJECTED; POST rejects a
    # reserved id that has no record yet.
    answer = _send(
        row,
        services,
        "reject",
        (lambda api: api.update_rejected, lambda api: api.reject, "CVE_RECORD_DNE"),
        record,
        "the rejected record",
    )
    with write_transaction():
        CveId.update(state="rejected").where(CveId.id == row.id).execute()
        audit.record(
            by,
            "cve.reject_record",
            at,
            target=row.cve_id,
            details={"before": {"state": row.state}, "after": {"state": "rejected"}},
            actor_label=by_label,
        )
    return answer


# -- listing -------------------------------------------------------------------------------


def inventory() -> list[dict]:
    """Every id we hold, lowest first, with its state and its vulnerability's tracking id."""
    query = (
        CveId.select(CveId, Vulnerability.tracking_id)
        .join(Vulnerability, on=(Vulnerability.cve == CveId.id), join_type=peewee.JOIN.LEFT_OUTER)
        .order_by(CveId.year, CveId.number)
        .objects()
    )
    return [
        {
            "cve_id": row.cve_id,
            "state": row.state,
            "source": row.source,
            "vulnerability": row.tracking_id,
            "assigned_at": row.assigned_at.isoformat() if row.assigned_at else None,
            "reason": row.reason,
        }
        for row in query
    ]


def _send(row: CveId, services, action: str, calls, record: dict, what: str) -> dict:
    """One exchange with CVE Services about row's record: calls is (first, then, because),
    each of the first two picking the client's method; `then` is tried when `first` fails
    with the error `because` (so a repeat after a crash lands either way)."""
    first, then, because = calls
    try:
        with cve_services.session(services, f"{action} {row.cve_id}") as api:
            try:
                return first(api)(row.cve_id, record)
            except requests.HTTPError as exc:
                if cve_services.error_of(exc) != because:
                    raise
                return then(api)(row.cve_id, record)
    except CveRecordValidationError as exc:
        lines = str(exc).splitlines()
        first_line = lines[1] if len(lines) > 1 else str(exc)
        raise Refused(f"{what} for {row.cve_id} is not valid CVE JSON 5: {first_line}") from None
