"""What describes the CSAF provider's directory (app.disclosure.provider builds it): the
addresses, provider-metadata.json (CSAF 2.0, 7.1.7 and 7.1.20) checked against the provider
schema, changes.csv (7.1.13) and the ROLIE feed (7.1.15)."""

import csv
import functools
import io
import json
from datetime import datetime
from importlib import resources

from app.core import timefmt
from app.core.config import Settings

TLP = "white"  # the one distribution: TLP:WHITE (CSAF 2.0, 7.1.4)
METADATA = "provider-metadata.json"
INDEX = "index.txt"
CHANGES = "changes.csv"
FEED = "csaf-feed-tlp-white.json"  # the ROLIE feed (CSAF 2.0, 7.1.15)
CSAF_SCHEMA = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json"
HASHES = ("sha256", "sha512")


def metadata_url(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}/.well-known/csaf/{METADATA}"


def directory_url(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}/.well-known/csaf/{TLP}/"


def feed_url(settings: Settings) -> str:
    return directory_url(settings) + FEED


def key_url(settings: Settings, fingerprint: str) -> str:
    return f"{settings.base_url.rstrip('/')}/.well-known/csaf/openpgp/{fingerprint}.asc"


def changes(documents: dict[str, dict]) -> str:
    """CSAF 2.0, 7.1.13: the path and current_release_date of each document, no heading, the
    latest first."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    newest_first = sorted(
        documents.items(), key=lambda item: (item[1]["current_release_date"], item[0]), reverse=True
    )
    for path, entry in newest_first:
        writer.writerow([path, entry["current_release_date"]])
    return out.getvalue()


def metadata(settings, fingerprint: str, publisher: dict, before: dict, at: datetime) -> dict:
    provider = {
        "canonical_url": metadata_url(settings),
        "distributions": [
            {
                "directory_url": directory_url(settings),
                "rolie": {
                    "feeds": [
                        {
                            "summary": "Every published advisory (TLP:WHITE).",
                            "tlp_label": "WHITE",
                            "url": feed_url(settings),
                        }
                    ]
                },
            }
        ],
        "last_updated": timefmt.zulu(at),
        "list_on_CSAF_aggregators": True,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": True,
        # CSAF 2.0's name for it (7.1.20); the schema's copy still says pgp_keys.
        "public_openpgp_keys": [
            {"fingerprint": fingerprint, "url": key_url(settings, fingerprint)}
        ],
        "publisher": publisher,
        "role": "csaf_trusted_provider",
    }
    # last_updated moves only when the metadata itself changes, not with every build.
    previous = before.get("metadata")
    if previous and {**previous, "last_updated": None} == {**provider, "last_updated": None}:
        provider["last_updated"] = previous["last_updated"]
    return provider


def feed(settings: Settings, documents: dict[str, dict], last_updated: str) -> dict:
    """The ROLIE feed of the distribution (CSAF 2.0, 7.1.15; RFC 8322 in JSON), the latest
    change first: each entry links its document, hashes and signature."""
    entries = []
    newest_first = sorted(
        documents.items(), key=lambda item: (item[1]["current_release_date"], item[0]), reverse=True
    )
    for path, entry in newest_first:
        url = directory_url(settings) + path
        entries.append(
            {
                "id": entry["tracking_id"],
                "title": entry["title"],
                "link": [
                    {"rel": "self", "href": url},
                    *({"rel": "hash", "href": f"{url}.{name}"} for name in HASHES),
                    {"rel": "signature", "href": f"{url}.asc"},
                ],
                "published": entry["initial_release_date"],
                "updated": entry["current_release_date"],
                "summary": {"content": entry["title"]},
                "content": {"type": "application/json", "src": url},
                "format": {"schema": CSAF_SCHEMA, "version": "2.0"},
            }
        )
    publisher = settings.cna_short_name or settings.base_url
    return {
        "feed": {
            "id": f"{publisher}-csaf-feed-tlp-white",
            "title": f"{publisher} CSAF feed (TLP:WHITE)",
            "link": [{"rel": "self", "href": feed_url(settings)}],
            "category": [
                {"scheme": "urn:ietf:params:rolie:category:information-type", "term": "csaf"}
            ],
            "updated": entries[0]["updated"] if entries else last_updated,
            "entry": entries,
        }
    }


def validate(provider: dict) -> None:
    """InvalidDocument unless `provider` validates against CSAF 2.0's provider metadata schema."""
    from jsonschema.exceptions import best_match

    from app.disclosure import exports

    error = best_match(_validator().iter_errors(provider))
    if error is not None:
        raise exports.InvalidDocument("CSAF provider metadata", error.message, error.json_path)


@functools.cache
def _validator():
    """The schema beside the advisory's (app/disclosure/exports/schemas/csaf-2.0), whose
    publisher it refers to by that schema's $id."""
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource

    folder = resources.files("app.disclosure.exports.schemas").joinpath("csaf-2.0")
    registry = Registry()
    for name in ("csaf_json_schema.json", "provider_json_schema.json"):
        resource = Resource.from_contents(json.loads(folder.joinpath(name).read_text("utf-8")))
        registry = registry.with_resource(resource.id(), resource)
    schema = json.loads(folder.joinpath("provider_json_schema.json").read_text("utf-8"))
    return Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
