"""The OSV record of a published vulnerability, built from its public view alone.

Its id is the team's own: `<prefix>-<year>-<number>` from the tracking id (ZEPHYR-2026-0001 for
SEC-2026-0001), the prefix FOREWARN_OSV_PREFIX, else the CNA's short name (else the tracking
prefix) upper-cased; the CVE id is an alias (`CVE-` ids are NVD's records in OSV.dev). The
records once named by their CVE id (or `x_` and the tracking id) still answer at that name
(app/web/osv.py).

No OSV ecosystem fits an RTOS, so `affected` is what a scanner reading OSV can match without one:
for the configured repository (FOREWARN_REPO_URL) a GIT range from the introducing commit (the
team's, else "0") to each fix commit that a fix reference names in that repository
(.../commit/<sha>, .../pull/N/commits/<sha>), and the exact versions the affected products list;
the ranges as written stay in `database_specific`.
"""

import re

from app.core import timefmt
from app.disclosure.exports.fields import (
    advisory_url,
    credits,
    csaf_url,
    cve_page,
    cvss,
    modified,
    products,
    vendor,
)
from app.disclosure.redaction import Published

SCHEMA_VERSION = "1.7.0"
PRIVATE_PREFIX = "x_"
_TRACKING = re.compile(r"^[A-Z][A-Z0-9]*-(?P<year>\d{4})-(?P<number>\d+)$")
_SHA = r"(?P<sha>[0-9a-f]{40}|[0-9a-f]{64})"
_COMMIT_PATHS = (
    re.compile(rf"^/commits?/{_SHA}/?$"),  # GitHub, Gitea (…/commit/), Bitbucket (…/commits/)
    re.compile(rf"^/-/commit/{_SHA}/?$"),  # GitLab
    re.compile(rf"^/pull/\d+/commits/{_SHA}/?$"),  # a commit of a GitHub pull request
)


def home_prefix(settings) -> str:
    """The prefix of the records' ids: the team's own OSV database."""
    if settings.osv_prefix:
        return settings.osv_prefix
    name = re.sub(r"[^A-Z0-9]+", "-", (settings.cna_short_name or "").upper()).strip("-")
    return name if name and name not in ("CVE", "OSV", "GHSA") else settings.tracking_prefix


def osv_id(p: Published, settings) -> str:
    """ZEPHYR-2026-0001 for SEC-2026-0001: stable, as the tracking id never changes."""
    match = _TRACKING.match(p.tracking_id)
    if match is None:  # not the form tracking ids are made in: keep the private prefix
        return f"{PRIVATE_PREFIX}{p.tracking_id}"
    return f"{home_prefix(settings)}-{match['year']}-{match['number']}"


def former_id(p: Published) -> str:
    """The id its record had before it had the team's own: the CVE id, else `x_` and the
    tracking id. Consumers that stored it may still ask for it."""
    return p.cve_id or f"{PRIVATE_PREFIX}{p.tracking_id}"


def record(p: Published, settings) -> dict:
    document = {
        "schema_version": SCHEMA_VERSION,
        "id": osv_id(p, settings),
        "modified": timefmt.zulu(modified(p)),
        "published": timefmt.zulu(p.published_at),
    }
    if p.withdrawn_at is not None:  # it proved not to be a vulnerability (the reason below)
        document["withdrawn"] = timefmt.zulu(p.withdrawn_at)
    if p.cve_id:
        document["aliases"] = [p.cve_id]
    document["summary"] = " ".join(p.title.split())
    if p.description.strip():
        document["details"] = p.description.strip()
    score = cvss(p)
    if score is not None:
        kind = "CVSS_V4" if score.version == "4.0" else "CVSS_V3"
        document["severity"] = [{"type": kind, "score": score.vector}]
    affected = _affected(p, settings)
    if affected:
        document["affected"] = affected
    document["references"] = _references(p, settings)
    typed = [{"name": c.name, "type": c.type.upper().replace(" ", "_")} for c in credits(p)]
    if typed:
        document["credits"] = typed
    document["database_specific"] = _database_specific(p, settings)
    return document


def _repo(url: str) -> str:
    return url.strip().rstrip("/").removesuffix(".git").lower()


def fix_commits(p: Published, repo_url: str | None) -> list[str]:
    """The full commit hashes the fix references name in the configured repository, in the
    team's order (a pull request without a commit is a reference, not a range)."""
    if not repo_url:
        return []
    repo = _repo(repo_url)
    found = []
    for url in p.fix_refs:
        if not url.lower().startswith(repo + "/"):
            continue
        path = url[len(repo) :].split("?")[0].split("#")[0]
        for pattern in _COMMIT_PATHS:
            match = pattern.match(path)
            if match and match["sha"] not in found:
                found.append(match["sha"])
                break
    return found


def _git_range(p: Published, settings) -> dict | None:
    fixed = fix_commits(p, settings.repo_url)
    if not fixed and not p.introduced_commit:
        return None
    events = [{"introduced": p.introduced_commit or "0"}]
    events += [{"fixed": sha} for sha in fixed]
    return {"type": "GIT", "repo": settings.repo_url.strip().rstrip("/"), "events": events}


def _affected(p: Published, settings) -> list[dict]:
    git = _git_range(p, settings) if settings.repo_url else None
    entries = []
    for product, items in products(p):
        ranges, versions = [], []
        for item in items:
            if item.exact:
                versions.append(item.exact)
                continue
            event = {"introduced": item.introduced or "0"}
            if item.fixed:
                event["fixed"] = item.fixed
            else:
                event["last_affected"] = item.last_affected
            ranges.append(event)
        entry: dict = {}
        if git is not None:
            entry["ranges"] = [git]
        if versions:
            entry["versions"] = versions
        specific = {"vendor": vendor(settings), "product": product}
        if ranges:
            specific["version_ranges"] = ranges
        if settings.repo_url:
            specific["repo"] = settings.repo_url
        entry["database_specific"] = specific
        entries.append(entry)
    if not entries and git is not None:
        entries.append({"ranges": [git], "database_specific": {"vendor": vendor(settings)}})
    return entries


def reference_type(url: str) -> str:
    """What a fix reference is to OSV: a commit or pull request is the FIX, an issue the REPORT,
    a security advisory an ADVISORY; anything else the team gave as a fix is the FIX."""
    path = url.split("?")[0].split("#")[0].rstrip("/")
    if re.search(r"/security/advisories/GHSA-[\w-]+$", path):
        return "ADVISORY"
    if re.search(r"/issues/\d+$", path):
        return "REPORT"
    return "FIX"


def _references(p: Published, settings) -> list[dict]:
    references = [
        {"type": "ADVISORY", "url": advisory_url(p, settings)},
        {"type": "ADVISORY", "url": csaf_url(p, settings)},
    ]
    references += [{"type": reference_type(url), "url": url} for url in dict.fromkeys(p.fix_refs)]
    if p.cve_id:
        references.append({"type": "ADVISORY", "url": cve_page(p.cve_id)})
    if settings.repo_url:
        references.append({"type": "PACKAGE", "url": settings.repo_url})
    return references


def _database_specific(p: Published, settings) -> dict:
    specific = {"tracking_id": p.tracking_id, "source": advisory_url(p, settings)}
    if p.cwe:
        specific["cwe_ids"] = [p.cwe]
    if p.mitigation.strip():
        specific["mitigation"] = p.mitigation.strip()
    if p.withdrawn_at is not None:
        specific["withdrawn_reason"] = p.withdrawn_reason
    return specific
