"""A real OSV consumer reading Forewarn's records: osv.dev's own library (the `osv` package, as
its importer and workers use it), run in its own environment (.venv/osv-consumer, made by
.ci/setup) because it pins its own protobuf and Google Cloud stack.

    scan.py RECORD.json MIRROR_PATH

parses the record as osv.dev's importer does (`osv.sources.parse_vulnerability_from_dict`,
strict: its own copy of the OSV schema, which still lacks the team's prefix, so the id
check is reported, not fatal), then analyses every GIT range as osv.dev's worker does
(`osv.impact.analyze`), cloning the range's repository through the library's own mirror table
(`osv.repos._GIT_MIRRORS`, which osv.dev uses for its mirrors) pointed at MIRROR_PATH, a local
git repository: no network. Prints one JSON object: what the consumer made of the record.
"""

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
from osv import impact, repos, sources, vulnerability_pb2  # noqa: E402


def main(record_path: str, mirror: str) -> None:
    with open(record_path, encoding="utf-8") as handle:
        data = json.load(handle)
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
            consider_all_branches=True,
        )
    print(
        json.dumps(
            {
                "library": osv.__name__,
                "schema_errors": schema_errors,
                "id": vulnerability.id,
                "aliases": list(vulnerability.aliases),
                "affected": [
                    {
                        "ecosystem": a.package.ecosystem,
                        "name": a.package.name,
                        "ranges": [
                            {
                                "type": vulnerability_pb2.Range.Type.Name(r.type),
                                "repo": r.repo,
                                "events": [
                                    {k.name: v for k, v in e.ListFields()} for e in r.events
                                ],
                            }
                            for r in a.ranges
                        ],
                        "versions": list(a.versions),
                    }
                    for a in vulnerability.affected
                ],
                "affected_commits": sorted(result.commits),
                "credits": [
                    [c.name, vulnerability_pb2.Credit.Type.Name(c.type)]
                    for c in vulnerability.credits
                ],
                "references": [
                    [vulnerability_pb2.Reference.Type.Name(r.type), r.url]
                    for r in vulnerability.references
                ],
                "severity": [
                    [vulnerability_pb2.Severity.Type.Name(s.type), s.score]
                    for s in vulnerability.severity
                ],
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
