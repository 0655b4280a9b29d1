"""A real OSV consumer reading Forewarn's records: osv.dev's own library (the `osv` package, as
its importer and workers use it), run in its own environment (.venv/osv-consumer, made by
.ci/setup) because it pins its own protobuf and Google Cloud stack.

    scan.py RECORD.json MIRROR_PATH
    scan.py --source LINK LAST_UPDATE MIRROR_PATH

The first parses the record as osv.dev's importer does (`osv.sources.parse_vulnerability_from_dict`,
strict: its own copy of the OSV schema, which still lacks the team's prefix, so the id
check is reported, not fatal), then analyses every GIT range as osv.dev's worker does
(`osv.impact.analyze`), cloning the range's repository through the library's own mirror table
(`osv.repos._GIT_MIRRORS`, which osv.dev uses for its mirrors) pointed at MIRROR_PATH, a local
git repository: no network. Prints one JSON object: what the consumer made of the record.

The second reads an OSV source as osv.dev's importer reads a REST source (its
`_process_updates_rest`: HEAD LINK/all.json, nothing to do unless its Last-Modified is after
LAST_UPDATE, an RFC 3339 instant; else the list parsed with the library's
`parse_vulnerabilities_from_data`, and each record modified after LAST_UPDATE fetched from
LINK + id + ".json" and parsed), then analyses each record fetched as above. Prints what it
fetched, what it made of each, and the Last-Modified it would remember.
"""

import datetime
import json
import sys
import tempfile
import warnings

import typing_extensions

# osv 0.1.0 imports warnings.deprecated (Python 3.13); the same decorator from
# typing_extensions lets it run on the project's Python (3.11).
if not hasattr(warnings, "deprecated"):
    warnings.deprecated = typing_extensions.deprecated

import jsonschema  # noqa: E402
import osv  # noqa: E402
import requests  # noqa: E402
from osv import impact, repos, sources, vulnerability_pb2  # noqa: E402

_HTTP_LAST_MODIFIED_FORMAT = "%a, %d %b %Y %H:%M:%S %Z"  # as osv.dev's importer parses it


def main(record_path: str, mirror: str) -> None:
    with open(record_path, encoding="utf-8") as handle:
        data = json.load(handle)
    print(json.dumps(consume(data, mirror)))


def source(link: str, last_update: str, mirror: str) -> None:
    last_update_date = datetime.datetime.fromisoformat(last_update.replace("Z", "+00:00"))
    session = requests.Session()
    head = session.head(link + "all.json", timeout=30)
    head.raise_for_status()
    last_modified = datetime.datetime.strptime(
        head.headers["Last-Modified"], _HTTP_LAST_MODIFIED_FORMAT
    ).replace(tzinfo=datetime.UTC)
    out = {"last_modified": last_modified.isoformat(), "listed": [], "fetched": []}
    if last_modified <= last_update_date:
        print(json.dumps(out))  # "No changes since last update."
        return
    listing = session.get(link + "all.json", timeout=30)
    listing.raise_for_status()
    for vuln in osv.parse_vulnerabilities_from_data(listing.text, ".json"):
        out["listed"].append(vuln.id)
        if vuln.modified.ToDatetime(datetime.UTC) <= last_update_date:
            continue
        single = session.get(link + vuln.id + ".json", timeout=30)
        single.raise_for_status()
        out["fetched"].append(consume(single.json(), mirror))
    print(json.dumps(out))


def consume(data: dict, mirror: str) -> dict:
    schema_errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:80]}"
        for e in jsonschema.Draft202012Validator(sources.load_schema()).iter_errors(data)
    ]
    vulnerability = sources.parse_vulnerability_from_dict(data)
    for affected in vulnerability.affected:
        for affected_range in affected.ranges:
            if affected_range.type == vulnerability_pb2.Range.GIT:
                repos._GIT_MIRRORS[affected_range.repo.rstrip("/")] = mirror
    with tempfile.TemporaryDirectory() as checkouts:
        result = impact.analyze(
            vulnerability,
            checkout_path=checkouts,
            detect_cherrypicks=False,
            consider_all_branches=False,  # osv.dev's default for a source
        )
    return {
        "library": osv.__name__,
        "schema_errors": schema_errors,
        "id": vulnerability.id,
        "aliases": list(vulnerability.aliases),
        "modified": vulnerability.modified.ToJsonString(),
        # A withdrawn record (#18): when, as the library reads it; None when it is not.
        "withdrawn": vulnerability.withdrawn.ToJsonString()
        if vulnerability.HasField("withdrawn")
        else None,
        "affected": [
            {
                "ecosystem": a.package.ecosystem,
                "name": a.package.name,
                "ranges": [
                    {
                        "type": vulnerability_pb2.Range.Type.Name(r.type),
                        "repo": r.repo,
                        "events": [{k.name: v for k, v in e.ListFields()} for e in r.events],
                    }
                    for r in a.ranges
                ],
                "versions": list(a.versions),
            }
            for a in vulnerability.affected
        ],
        "affected_commits": sorted(result.commits),
        "credits": [
            [c.name, vulnerability_pb2.Credit.Type.Name(c.type)] for c in vulnerability.credits
        ],
        "references": [
            [vulnerability_pb2.Reference.Type.Name(r.type), r.url] for r in vulnerability.references
        ],
        "severity": [
            [vulnerability_pb2.Severity.Type.Name(s.type), s.score] for s in vulnerability.severity
        ],
    }


if __name__ == "__main__":
    if sys.argv[1] == "--source":
        source(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
