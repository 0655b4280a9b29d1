"""Public text made from vulnerabilities: release-note lines, embargoed CVEs by id alone, and
the machine-readable records (CVE JSON 5.1, OSV, CSAF 2.0) with their schema validation.

Release notes are public: of a vulnerability still under embargo they carry its CVE id and the
date its embargo ends, nothing else (as every public page, feed and export).
"""

import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from cvelib.cve_api import CveRecord, CveRecordValidationError
from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app.core import timefmt
from app.core.errors import ForewarnError, NotFound, Refused
from app.disclosure import redaction
from app.models import PUBLIC_STATES, CveId, Vulnerability

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str) -> date:
    """A YYYY-MM-DD date, or ValueError with a message fit to show."""
    value = text.strip()
    if _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a date like 2026-01-31 (YYYY-MM-DD)")


@dataclass(frozen=True)
class ReleaseNote:
    cve_id: str
    embargoed: bool
    line: str
    day: date | None  # the day it was published, or the day its embargo ends (UTC)


def release_notes(at: datetime, since: date | None = None, *, base_url: str) -> list[str]:
    """One line per validated vulnerability with a CVE id, by CVE year and number.

    `since` keeps only those published, or whose embargo ends, on or after that day (UTC).
    """
    return [note.line for note in release_note_entries(at, since, base_url=base_url)]


def release_note_entries(
    at: datetime, since: date | None = None, *, base_url: str
) -> list[ReleaseNote]:
    # new and triage are unvalidated, rejected is withdrawn: none of them is ever public.
    # A CVE id that was itself rejected names nothing any more.
    rows = (
        Vulnerability.select(Vulnerability, CveId)
        .join(CveId)
        .where(Vulnerability.status.in_(PUBLIC_STATES), CveId.state != "rejected")
        .order_by(CveId.year, CveId.number, CveId.cve_id)
    )
    notes = [_note(v, at, base_url) for v in rows]
    if since is not None:
        notes = [n for n in notes if n.day is None or n.day >= since]
    return notes


def _note(v: Vulnerability, at: datetime, base_url: str) -> ReleaseNote:
    view = redaction.public_view(v, at)
    cve_id = v.cve.cve_id
    if isinstance(view, redaction.Published):
        title = " ".join(view.title.split()) or "(no title)"  # one line, whatever it held
        link = f"{base_url.rstrip('/')}/vulnerabilities/{view.tracking_id}"
        return ReleaseNote(
            cve_id, False, f"{cve_id}: {title} ({link})", _utc_day(view.published_at)
        )
    # Built from the id and the embargo end alone, so nothing else can leak into the line.
    day = _utc_day(view.embargo_until)
    until = f" until {day.isoformat()}" if day else ""
    return ReleaseNote(cve_id, True, f"{cve_id}: Under embargo{until}", day)


def _utc_day(instant: datetime | None) -> date | None:
    return instant.astimezone(UTC).date() if instant else None


KINDS = ("cve", "osv", "csaf")


def document(kind: str, v: Vulnerability, at: datetime, settings) -> dict:
    """The CVE JSON 5.1 record, OSV record or CSAF 2.0 advisory of a published vulnerability;
    Refused while it is embargoed. Built from app.disclosure.redaction's public view alone."""
    _check_kind(kind)
    view = redaction.public_view(v, at)
    if view is None:
        raise NotFound(f"no public vulnerability {v.tracking_id}")
    if not isinstance(view, redaction.Published):
        until = view.embargo_until
        when = f" until {timefmt.minute(until)}" if until else ""
        raise Refused(f"{view.id} is under embargo{when}; its records are published at the lift")
    return _build(kind, view, settings)


def document_under_embargo(kind: str, v: Vulnerability, at: datetime, settings) -> dict:
    """The record of a vulnerability still under embargo, from its PRIVATE fields, for an
    operator who asked for it (`forewarn export ... --embargoed`, audited by the caller).
    Nothing public may call this: public pages and downloads use `document`."""
    _check_kind(kind)
    if v.status == "rejected":
        raise Refused(f"{v.tracking_id} was rejected; it has no records")
    view = _private_view_for_operator(v, at)
    return _build(kind, view, settings, draft=True)


def document_at_lift(kind: str, v: Vulnerability, settings) -> dict:
    """The record the lift will publish, built before it from the PRIVATE fields as the lift
    reveals them at the embargo's end, for the pre-flight (app.disclosure.preflight), which
    shows it to the team alone. Nothing public may call this."""
    _check_kind(kind)
    if v.embargo_until is None:
        raise Refused(f"{v.tracking_id} has no embargo end, so no lift to prepare")
    return _build(kind, redaction.revealed(v, v.embargo_until), settings)


def _private_view_for_operator(v: Vulnerability, at: datetime) -> redaction.Published:
    """The fields the lift will reveal, read before it: the embargo's end stands in for the
    publication instant."""
    return redaction.revealed(v, v.published_at or v.embargo_until or at)


def _build(kind: str, view: redaction.Published, settings, draft: bool = False) -> dict:
    # The formats import this package's fields module, so they are imported once it exists.
    from app.disclosure.exports import csaf, cve_record, osv

    if kind == "cve":
        return cve_record.record(view, settings)
    if kind == "osv":
        return osv.record(view, settings)
    return csaf.advisory(view, settings, draft=draft)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise Refused(f"{kind!r} is not an export; use one of {', '.join(KINDS)}")


# -- validation ----------------------------------------------------------------------------


class InvalidDocument(ForewarnError):
    """An export does not validate against its format's JSON Schema."""

    def __init__(self, kind: str, message: str, path: str):
        self.kind, self.message, self.path = kind, message, path
        super().__init__(f"the {kind} export is not valid: {message} (at {path})")


def validate(kind: str, document: dict, settings=None) -> None:
    """InvalidDocument naming the most relevant error and its JSON path, if `document` does not
    validate against its schema: CVE JSON 5.1.1 (cvelib's), OSV, or CSAF 2.0 (the schemas folder
    beside this module).

    OSV's schema lists the id prefixes of the databases registered with it; with `settings`,
    the team's own (app.disclosure.exports.osv.home_prefix) counts as one of them, as it will
    once registered (README: "OSV source")."""
    _check_kind(kind)
    validator = _validator(kind)
    if kind == "osv" and settings is not None:
        from app.disclosure.exports import osv

        validator = _osv_validator(osv.home_prefix(settings))
    error = best_match(validator.iter_errors(document))
    if error is not None:
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        raise InvalidDocument(kind, message, error.json_path)
    if kind == "cve":
        # And the CNA container as CVE Services gets it, with cvelib's own check.
        schema = (
            CveRecord.Schemas.CNA_REJECTED
            if document["cveMetadata"]["state"] == "REJECTED"  # a withdrawn vulnerability's
            else CveRecord.Schemas.CNA_PUBLISHED
        )
        try:
            CveRecord.validate(document["containers"]["cna"], schema)
        except CveRecordValidationError as exc:
            first = exc.errors[0] if exc.errors else None
            where = "$.containers.cna" + (first.json_path[1:] if first else "")
            raise InvalidDocument(kind, first.message if first else str(exc), where) from None


@functools.cache
def _osv_validator(prefix: str):
    schemas = resources.files("app.disclosure.exports.schemas")
    schema = json.loads(schemas.joinpath("osv-schema.json").read_text(encoding="utf-8"))
    registered = schema["$defs"]["prefix"]["pattern"]
    schema["$defs"]["prefix"]["pattern"] = f"^({re.escape(prefix)}-|{registered[1:]})"
    return Draft202012Validator(schema, format_checker=FormatChecker())


@functools.cache
def _validator(kind: str):
    if kind == "cve":
        schema = json.loads(Path(CveRecord.Schemas.V5_SCHEMA).read_text(encoding="utf-8"))
        return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
    schemas = resources.files("app.disclosure.exports.schemas")
    if kind == "osv":
        schema = json.loads(schemas.joinpath("osv-schema.json").read_text(encoding="utf-8"))
        return Draft202012Validator(schema, format_checker=FormatChecker())
    csaf_dir = schemas.joinpath("csaf-2.0")
    schema = json.loads(csaf_dir.joinpath("csaf_json_schema.json").read_text(encoding="utf-8"))
    registry = Registry()
    for version in ("2.0", "3.0", "3.1"):
        contents = json.loads(csaf_dir.joinpath(f"cvss-v{version}.json").read_text("utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT7)
        # Under the URL the CSAF schema refers to, and under its own $id (3.1's has a query).
        registry = registry.with_resource(
            f"https://www.first.org/cvss/cvss-v{version}.json", resource
        )
        if resource.id():
            registry = registry.with_resource(resource.id(), resource)
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
