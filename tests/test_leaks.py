"""Leak tests: nothing of an embargoed vulnerability but its id and embargo end reaches anything
public: not a page, feed, export, log, error page or outer mail header.

Vulnerabilities in every state get a distinct canary in every private or not-yet-public field.
Then every public page is crawled as an anonymous visitor: each "anyone" route of the url_map
with every id substituted, every same-site link found on the pages, the feed, every export,
/.well-known/, the service key, 404, 503 and 500 pages, the release notes (as text and from the
command line), and every log record written meanwhile. No canary may appear in any body,
header or log line. After the real lift, the public fields of the lifted ones appear, the
private ones still never do, and nothing of the unvalidated or rejected ones ever does. Each
one still tracked has a second reporter's duplicate marked against it (credited): nothing of
the duplicate but that reporter's name in the lifted one's credits ever becomes public. Each
one alerted has two product makers' answers (#17): one given with consent to publish it, whose
statement appears after the lift on that vulnerability's page alone, and one without, of which
nothing (not the statement, not the organisation) is ever public.
"""

import hashlib
import json
import logging
import re
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import peewee
import pytest

from app.core import instance
from app.disclosure import (
    announcements,
    embargo_change,
    exports,
    lift,
    provider,
    redaction,
    wellknown,
)
from app.disclosure.exports import fields as export_fields
from app.disclosure.exports import osv
from app.models import Correspondence, Delivery, Vulnerability
from app.outbox import letters
from app.registry import alerts, answers, vetting
from app.reports import attachments, followup
from app.vulns import cves, duplicates, lifecycle, patches, split
from mail.parse import Attachment
from tests import mailcorpus
from tests.conftest import PASSWORD, Auth
from tests.test_routes import AUDIENCES

pytestmark = pytest.mark.db

ACTOR = lifecycle.Actor(None, "cli:test")
CANARY = re.compile(r"canary-[a-z]+-\d+", re.IGNORECASE)
CRAWL_CAP = 600
CSAF_METADATA = "/.well-known/csaf/provider-metadata.json"
BOOM = "/_leak-test/boom"


@dataclass
class Case:
    """One vulnerability and what it must never (or only after its lift) show."""

    n: int
    status: str  # its state before the lift
    cve: bool
    credit_reporter: bool = True
    credits: bool = True
    severity: str = ""
    cwe: str = ""
    v: Vulnerability | None = None
    cve_id: str | None = None
    split_ids: list[str] = field(default_factory=list)  # split from it: state new, never public
    duplicate_ids: list[str] = field(default_factory=list)  # marked duplicate of it: never public
    canaries: dict[str, str] = field(default_factory=dict)

    def canary(self, name: str) -> str:
        return self.canaries.setdefault(name, f"CANARY-{name}-{self.n}")

    @property
    def lifted(self) -> bool:
        return self.status in lift.LIFTABLE

    def public_after_lift(self) -> dict[str, str]:
        """Canaries the lift reveals (for the liftable ones)."""
        names = ["title", "description", "affected", "fixrefs", "mitigation"]
        names += ["credits"] if self.credits else []
        names += ["dupreporter"] if self.duplicate_ids else []  # credited on it
        names += ["statement"] if "statement" in self.canaries else []  # given with consent
        names += ["introduced"]  # the introducing commit: in the OSV record's GIT range
        if not self.credits and self.credit_reporter:
            names.append("reportername")  # credited by the name they gave
        return {name: self.canaries[name] for name in names}

    def never_public(self) -> dict[str, str]:
        """Canaries that must never appear, before or after the lift."""
        if not self.lifted:
            return dict(self.canaries)
        revealed = self.public_after_lift()
        # The file names of patches are not promised private after the lift; their bytes are.
        return {k: c for k, c in self.canaries.items() if k not in revealed and k != "patchname"}


VECTORS = [
    "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:L",
    "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:C/C:N/I:L/A:L",
    "CVSS:3.1/AV:A/AC:H/PR:H/UI:R/S:C/C:L/I:L/A:N",
    "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:L/SC:N/SI:L/SA:N",
    "CVSS:3.1/AV:P/AC:H/PR:L/UI:R/S:C/C:L/I:N/A:L",
    "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:L",
    "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:C/C:L/I:N/A:N",
    "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:L",
]
CWES = ["CWE-1339", "CWE-1335", "CWE-1325", "CWE-1281", "CWE-1298", "CWE-1332", "CWE-1247"]
CWES.append("CWE-1260")


def plan() -> list[Case]:
    cases = [
        Case(1, "accepted", cve=True),
        Case(2, "fixed", cve=False, credit_reporter=False, credits=False),
        Case(3, "accepted", cve=False, credits=False),  # the reporter's name is the credit
        Case(4, "fixed", cve=True),
        Case(5, "new", cve=True),
        Case(6, "triage", cve=True),
        Case(7, "rejected", cve=True),  # from triage, after it got an id
        Case(8, "rejected", cve=False),  # accepted first, then rejected
    ]
    for case, vector, cwe in zip(cases, VECTORS, CWES, strict=True):
        case.severity, case.cwe = vector, cwe
    return cases


# The product maker who answers without consent: its name is a canary too (never public).
QUIET_ORG = "CANARY-quietorg-0 GmbH"


def build(case: Case, settings, at, until, makers=()) -> None:
    n = case.n
    title, description = case.canary("title"), case.canary("description")
    v = lifecycle.create(
        f"{title} heap overflow",
        f"{description} A **crafted** frame overflows the buffer.\n\n"
        f"Second paragraph {description}.",
        ACTOR,
        at,
        settings,
        embargo_until=until,
    )
    fields = {
        "affected": f"{case.canary('affected')} <4.2; {case.canary('affected')} =5.0.1",
        "fix_refs": f"https://fixes.example.org/{case.canary('fixrefs')}/pull/{n}",
        "mitigation": f"{case.canary('mitigation')}: disable the parser.",
        "severity": case.severity,
        "cwe": case.cwe,
        # A full commit hash (no canary fits one): forbidden like the canaries until the lift.
        "introduced_commit": case.canaries.setdefault(
            "introduced", hashlib.sha256(f"introduced-{n}".encode()).hexdigest()[:40]
        ),
    }
    if case.credits:
        fields["credits"] = f"{case.canary('credits')} and friends"
    for name, value in fields.items():
        v = lifecycle.set_field(v, name, value, ACTOR, at)
    Vulnerability.update(
        reporter_name=f"{case.canary('reportername')} Reporter",
        reporter_email=f"{case.canary('reporteremail').lower()}@finder.example",
        credit_reporter=case.credit_reporter,
    ).where(Vulnerability.id == v.id).execute()
    for direction in ("in", "out"):
        Correspondence.create(
            vulnerability=v,
            direction=direction,
            at=at,
            subject=f"{case.canary('corrsubject' + direction)} report",
            text=f"Hello, {case.canary('corrtext' + direction)} is how it crashes.",
        )
    # The reporter's files, as the intake keeps them: a decrypted report shown as text in the
    # team's thread, and a binary one.
    report = f"{case.canary('attachtext')}: the length field is trusted.\n".encode()
    dump = b"\x00\xff" + case.canary("attachbinary").encode() + b"\x00" * 64
    attachments.keep(
        Correspondence.get(vulnerability=v, direction="in"),
        [
            _received(f"{case.canary('attachname')}-report.txt", "text/plain", report),
            _received(f"{case.canary('attachdump')}.core", "application/octet-stream", dump),
        ],
        at,
    )
    patches.attach(
        v,
        f"{case.canary('patchname')}.patch",
        f"--- a/x.c\n+++ b/x.c\n+/* {case.canary('patchcontent')} */\n".encode(),
        None,
        "test",
        at,
    )
    if case.cve:
        case.cve_id = cves.allocate(v, None, "test", at).cve.cve_id
    v = Vulnerability.get_by_id(v.id)
    steps = {
        "new": [],
        "triage": ["triage"],
        "accepted": ["accepted"],
        "fixed": ["accepted", "fixed"],
        "rejected": ["triage", "rejected"] if case.cve else ["accepted", "rejected"],
    }[case.status]
    for step in steps:
        reason = case.canary("rejection") if step == "rejected" else ""
        if step == "rejected" and v.status == "accepted":
            # An alert went out before it was found not to be one.
            alerts.send(v, None, "test", at, settings, text=case.canary("advisory"))
        v = lifecycle.set_status(v, step, ACTOR, at, reason=reason)
    if v.status in alerts.SENDABLE:
        alerts.send(v, None, "test", at, settings, text=f"{case.canary('advisory')} advisory")
    if makers and alerts.alerted(v).exists():
        # Product makers' answers (#17): one to publish after the lift, one never public.
        consented, quiet = makers
        said = answers.check(
            "not_affected", "component_not_present", f"{case.canary('statement')} not built", True
        )
        answers.record(consented, v, said, via="web", at=at)
        withheld = answers.check("affected", None, f"{case.canary('withheld')} until 4.2")
        answers.record(quiet, v, withheld, via="mail", at=at)
    # A case (#15): the reporter's finding label on it, and a vulnerability split from it
    # (state new: its title, its label and its id never public, before or after the lift).
    lifecycle.set_field(v, "findings", case.canary("finding"), ACTOR, at)
    (part,) = split.split(v, [f"{case.canary('splittitle')} in the parser"], ACTOR, at, settings)
    lifecycle.set_field(part, "findings", case.canary("splitfinding"), ACTOR, at)
    case.split_ids.append(part.tracking_id)
    if v.status != "rejected":
        # A second reporter's report of the same thing, marked a duplicate of it (credited):
        # its title, text, the team's reason and its reporter's address never public; their
        # name only in the credits of the one it duplicates, once that is lifted.
        second = lifecycle.create(
            f"{case.canary('duptitle')} crash",
            f"{case.canary('dupdescription')} again.",
            ACTOR,
            at,
            settings,
            embargo_until=until,
        )
        Vulnerability.update(
            reporter_name=f"{case.canary('dupreporter')} Second",
            reporter_email=f"{case.canary('dupemail').lower()}@other.example",
            status="triage",
        ).where(Vulnerability.id == second.id).execute()
        reason = f"{case.canary('dupreason')}: same root cause."
        duplicates.mark(second, v, reason, True, ACTOR, at, settings)
        case.duplicate_ids.append(second.tracking_id)
    case.v = Vulnerability.get_by_id(v.id)
    assert case.v.status == case.status


def _received(name: str, content_type: str, data: bytes) -> Attachment:
    digest = hashlib.sha256(data).hexdigest()
    return Attachment(name, content_type, len(data), digest, data, decrypted=True)


# -- the crawl -----------------------------------------------------------------------------------


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.found.append(value)


def links_in(body: str) -> list[str]:
    parser = Links()
    parser.feed(body)
    return parser.found


@dataclass
class Crawl:
    pages: dict[str, tuple[int, dict[str, str], str]] = field(default_factory=dict)

    def add(self, url, response) -> str:
        body = response.get_data().decode("utf-8", "replace")  # the WKD key is binary
        self.pages[url] = (response.status_code, dict(response.headers), body)
        return body

    def everything(self) -> list[tuple[str, str]]:
        """(where, text) of every body and header seen."""
        found = []
        for url, (_, headers, body) in self.pages.items():
            found.append((f"{url} (body)", body))
            found += [(f"{url} (header {k})", f"{k}: {v}") for k, v in headers.items()]
        return found


def seeds(app, settings, cases) -> list[str]:
    """Every GET route anyone may open, with every id (and sample values) substituted."""
    ids = ["SEC-2026-9999", "CVE-2026-99999"]
    for case in cases:
        ids.append(case.v.tracking_id)
        ids.append(case.v.tracking_id.lower())
        ids += case.split_ids + case.duplicate_ids
        if case.cve_id:
            ids.append(case.cve_id)
    wkd_name, domain = wellknown.wkd_names(settings)
    values = {
        "ident": ids,
        "tracking_id": ids,
        "kind": list(exports.KINDS),
        "name": [wkd_name, "y" * 32],
        "domain": [domain, "elsewhere.example"],
        "filename": ["forewarn.css"],
        "token": ["not-a-token"],
        "advisory_id": ["1"],
        "relative": ["", "white/", "white/index.txt", "white/changes.csv", "openpgp/"],
    }
    urls = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        if AUDIENCES.get(blueprint) != "anyone" or "GET" not in rule.methods:
            continue
        combos = [{}]
        for argument in sorted(rule.arguments):
            combos = [{**c, argument: v} for c in combos for v in values.get(argument, ["1"])]
        for combo in combos:
            urls.append(rule.build(combo)[1])
    # The OSV source's ids: the team's own (from a tracking id) and the former ones (x_).
    prefix = osv.home_prefix(settings)
    for ident in ids:
        if ident.startswith(f"{settings.tracking_prefix}-"):
            stem = ident.removeprefix(f"{settings.tracking_prefix}-")
            urls += [f"/osv/{prefix}-{stem}.json", f"/osv/x_{ident}.json"]
    urls += [
        "/vulnerabilities.atom",
        "/.well-known/security.txt",
        "/key.asc",
        "/no/such/page",
        f"/.well-known/openpgpkey/hu/{wkd_name}?l=security",
        # The CSAF provider (#18): its metadata, and from its listings every file it holds.
        CSAF_METADATA,
        "/.well-known/csaf/white/index.txt",
        "/.well-known/csaf/white/changes.csv",
    ]
    return list(dict.fromkeys(urls))


def crawl(app, settings, cases, start: list[str] | None = None) -> Crawl:
    """A breadth-first walk from the seeds (or `start`) over every same-site link, as an
    anonymous visitor."""
    client = app.test_client()
    seen = Crawl()
    queue = deque(start if start is not None else seeds(app, settings, cases))
    queued = set(queue)
    while queue:
        url = queue.popleft()
        assert len(seen.pages) < CRAWL_CAP, "the crawl found more pages than expected"
        response = client.get(url)
        body = seen.add(url, response)
        found = links_in(body) if "html" in response.mimetype else []
        if "Location" in response.headers:
            found.append(response.headers["Location"])
        for link in found:
            absolute = urljoin(f"http://localhost{url}", link)
            parts = urlsplit(absolute)
            base = urlsplit(settings.base_url)
            if parts.netloc not in ("localhost", base.netloc) or parts.scheme not in ("http", ""):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if target not in queued:
                queued.add(target)
                queue.append(target)
    return seen


def failures(app, settings) -> Crawl:
    """A real 500 from a public route (a bug while it holds every vulnerability), a 500 from a
    route that fails on its own, and a 503 when the database breaks for one request."""
    from app.web import public

    seen = Crawl()
    client = app.test_client()
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error page answers
    original = public.by_year

    def broken(views):
        raise RuntimeError("the list could not be grouped")

    public.by_year = broken
    app.extensions.pop("forewarn.list_page", None)  # no page rendered before: it must render
    try:
        response = client.get("/vulnerabilities")
    finally:
        public.by_year = original
    assert response.status_code == 500
    assert "Something went wrong" in seen.add("/vulnerabilities (500)", response)

    response = client.get(BOOM)
    assert response.status_code == 500
    assert "Something went wrong" in seen.add(BOOM, response)

    database = app.extensions["forewarn.db"]
    original_execute = database.execute_sql

    def down(sql, *args, **kwargs):
        raise peewee.OperationalError("database is locked")

    database.execute_sql = down
    try:
        response = client.get("/vulnerabilities")
    finally:
        del database.execute_sql  # the class's own again
    assert database.execute_sql.__func__ is original_execute.__func__
    assert response.status_code == 503
    seen.add("/vulnerabilities (503)", response)
    app.config["PROPAGATE_EXCEPTIONS"] = None
    return seen


def report_answer(app) -> Crawl:
    """The report form sent by an anonymous visitor, and its answer page (a POST's answer, which
    the crawl cannot reach): it shows the visitor's own report alone."""
    seen = Crawl()
    client = app.test_client()
    page = client.get("/report").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    data = {"csrf_token": token, "title": "A crash", "description": "It crashes."}
    answer = client.post("/report", data=data, follow_redirects=True)
    shown = seen.add("/report (answer)", answer)
    assert 'id="follow-up-link"' in shown
    # Its link, followed at once (no worker has filed the report yet): received, nothing more.
    link = re.search(r'id="follow-up-link"[^>]*><a href="[^"]*(/follow-up/[^"]+)"', shown).group(1)
    pending = client.get(link)
    assert "<td>received</td>" in seen.add("/follow-up (report not filed yet)", pending)
    return seen


def release_notes_text(settings, at) -> str:
    return "\n".join(exports.release_notes(at, base_url=settings.base_url))


def assert_absent(sources: list[tuple[str, str]], forbidden: dict[str, str]) -> None:
    """Every forbidden string (case-insensitive) absent from every source; all leaks listed."""
    leaks = []
    for where, text in sources:
        lowered = text.lower()
        for what, needle in forbidden.items():
            if needle.lower() in lowered:
                leaks.append(f"{what} ({needle}) in {where}")
    assert not leaks, "leaked:\n" + "\n".join(sorted(set(leaks))[:60])


def canaries_in(sources: list[tuple[str, str]]) -> set[str]:
    return {m.group(0) for _, text in sources for m in CANARY.finditer(text)}


# -- the fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def env(env):
    """With the CNA's settings, so that the CVE record is served after the lift too."""
    return {
        **env,
        "FOREWARN_CNA_ORG_ID": "3d5b4a6e-0a1b-4c2d-8e9f-0123456789ab",
        "FOREWARN_CNA_SHORT_NAME": "leaktest",
        "FOREWARN_REPO_URL": "https://git.example.org/zephyr",  # the OSV records' GIT ranges
    }


@pytest.fixture
def desk(app, settings, clock, keyring, admin_user):
    """Every case built, one approved registrant alerted; a route that fails on purpose."""

    @app.route(BOOM)
    def _boom():
        raise RuntimeError("a bug in a route")

    maker = mailcorpus.make_reporter("psirt@maker.example", "Maker PSIRT")
    consented = vetting.add_by_admin(
        maker.address, "Maker", maker.cert, None, "test", clock.at, approve=True
    )
    other = mailcorpus.make_reporter("psirt@quiet.example", "Quiet PSIRT")
    quiet = vetting.add_by_admin(
        other.address, QUIET_ORG, other.cert, None, "test", clock.at, approve=True
    )
    cves.import_block("CVE-2026-4100..CVE-2026-4119", None, "test", clock.at)
    until = clock.at + timedelta(days=30)
    cases = plan()
    for case in cases:
        build(case, settings, clock.at, until, makers=(consented, quiet))
    return cases, until


def forbidden_before(cases) -> dict[str, str]:
    """Every field of every case, while all are embargoed or not public."""
    found = {}
    for case in cases:
        found.update({f"{k} of #{case.n}": c for k, c in case.canaries.items()})
        found[f"severity of #{case.n}"] = case.severity.split("/", 1)[1]
        found[f"cwe of #{case.n}"] = case.cwe
    return found


def forbidden_after(cases) -> dict[str, str]:
    """What the lift does not reveal, and everything of those it does not publish."""
    found = {}
    for case in cases:
        found.update({f"{k} of #{case.n}": c for k, c in case.never_public().items()})
        if not case.lifted:
            found[f"severity of #{case.n}"] = case.severity.split("/", 1)[1]
            found[f"cwe of #{case.n}"] = case.cwe
    return found


def hidden_ids(cases) -> dict[str, str]:
    """The ids of those never public. Not looked for in the logs: the visitor sent them, and
    the SQL log (peewee at DEBUG) shows them as query parameters."""
    found = {}
    for case in cases:
        for n, tracking_id in enumerate(case.split_ids):
            found[f"tracking id of split {n} of #{case.n}"] = tracking_id
        for n, tracking_id in enumerate(case.duplicate_ids):
            found[f"tracking id of duplicate {n} of #{case.n}"] = tracking_id
        if not case.lifted:
            found[f"tracking id of {case.status} #{case.n}"] = case.v.tracking_id
            if case.cve_id:
                found[f"CVE id of {case.status} #{case.n}"] = case.cve_id
    return found


@contextmanager
def every_log(caplog):
    """Every logger at DEBUG into caplog, also those that do not propagate to the root."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level) for logger in loggers]
    apart = [logger for logger in loggers if not logger.propagate]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in apart:
        logger.addHandler(caplog.handler)
    caplog.clear()
    try:
        yield
    finally:
        for logger, level in levels:
            logger.setLevel(level)
        for logger in apart:
            logger.removeHandler(caplog.handler)


def observe(app, settings, cases, clock, caplog, capsys):
    """Crawl, fail, read the release notes: (the crawl, the notes, what was served, the logs)."""
    capsys.readouterr()
    with every_log(caplog):
        seen = crawl(app, settings, cases)
        errors = failures(app, settings)
        answer = report_answer(app)
        notes = release_notes_text(settings, clock.at)
        logged = caplog.text
        records = list(caplog.records)
    output = capsys.readouterr()
    served = seen.everything() + errors.everything() + answer.everything()
    served += [("release notes", notes)]
    logs = [("logs", logged), ("stdout", output.out), ("stderr", output.err)]
    assert any(r.exc_info for r in records), "the 500 was not logged: is the crawl's log seen?"
    assert any(r.name.startswith("peewee") for r in records), "DEBUG logs were not captured"
    return seen, notes, served, logs


# -- the tests -------------------------------------------------------------------------------------


def test_nothing_embargoed_leaks_before_the_lift_and_only_the_public_fields_after(
    app, settings, clock, desk, caplog, capsys, forewarn, admin_user, keyring
):
    cases, until = desk
    # The reporters' files are there for the team (so the crawl below could find them).
    team = app.test_client()
    Auth(team).login(admin_user.email, PASSWORD)
    page = team.get(f"/team/vulnerabilities/{cases[0].v.tracking_id}").get_data(as_text=True)
    for name in ("attachtext", "attachname", "attachdump", "finding", "splittitle"):
        assert cases[0].canary(name) in page, name
    lifted = [c for c in cases if c.lifted]
    hidden = [c for c in cases if not c.lifted]

    # The CSAF provider directory as the workers build it (the reconciler, at every pass).
    with every_log(caplog):
        provider.publish(keyring, settings, clock.at)
        built_log = caplog.text
    seen, notes, served, logs = observe(app, settings, cases, clock, caplog, capsys)
    logs.append(("CSAF provider's build (logs)", built_log))
    served += csaf_files(settings)  # as a proxy serving the folder would, hidden files too

    # The crawl reached what it should.
    for url in ("/", "/vulnerabilities", "/vulnerabilities.atom", "/key.asc", "/registry/policy"):
        assert seen.pages[url][0] == 200, url
    for url in ("/report", "/report/sent"):  # the form, and its answer once shown
        assert seen.pages[url][0] == 200, url
    assert seen.pages["/.well-known/security.txt"][0] == 200
    wkd = [u for u, page in seen.pages.items() if "/openpgpkey/" in u and page[0] == 200]
    assert len(wkd) >= 3, wkd
    assert seen.pages["/no/such/page"][0] == 404
    assert seen.pages["/osv/all.json"][::2] == (200, "[]\n")  # nothing published yet
    assert seen.pages[CSAF_METADATA][0] == 200
    for empty in ("index.txt", "changes.csv"):  # nothing published yet
        assert seen.pages[f"/.well-known/csaf/white/{empty}"][::2] == (200, ""), empty
    for case in lifted:
        assert seen.pages[f"/vulnerabilities/{case.cve_id or case.v.tracking_id}"][0] == 200
        for kind in exports.KINDS:
            assert seen.pages[f"/vulnerabilities/{case.v.tracking_id}/{kind}.json"][0] == 404
    assert len(seen.pages) > 40, sorted(seen.pages)

    assert_absent(served + logs, forbidden_before(cases))
    assert_absent(served, hidden_ids(cases))
    assert canaries_in(served + logs) == set()

    # Not public: the same 404 as for an id that never existed, on every public address.
    unknown = seen.pages["/vulnerabilities/SEC-2026-9999"]
    assert unknown[0] == 404
    for case in hidden:
        for ident in filter(None, (case.v.tracking_id, case.cve_id)):
            assert seen.pages[f"/vulnerabilities/{ident}"][::2] == unknown[::2], ident
        for kind in exports.KINDS:
            page = seen.pages[f"/vulnerabilities/{case.v.tracking_id}/{kind}.json"]
            assert page[::2] == seen.pages[f"/vulnerabilities/SEC-2026-9999/{kind}.json"][::2]
    # The OSV source: every id a record has, had or could have answers as an unknown one.
    unknown_osv = seen.pages["/osv/LEAKTEST-2026-9999.json"]
    assert unknown_osv[0] == 404
    for case in cases:
        for url in osv_urls(case):
            assert seen.pages[url][::2] == unknown_osv[::2], url
    # With a CVE id, an embargoed one is public under it alone: its tracking id (which travels
    # in reporters' mail subjects) answers as an unknown id, and shows nowhere.
    for case in lifted:
        if case.cve_id:
            for ident in (case.v.tracking_id, case.v.tracking_id.lower()):
                assert seen.pages[f"/vulnerabilities/{ident}"][::2] == unknown[::2], ident
    assert_absent(served, {f"tracking id of #{c.n}": c.v.tracking_id for c in lifted if c.cve_id})
    # Placeholders: nothing but the id tells two apart (not the state, not any field).
    assert _normalised(seen, cases[0]) == _normalised(seen, cases[3])  # accepted / fixed, CVE
    assert _normalised(seen, cases[1]) == _normalised(seen, cases[2])  # fixed / accepted
    # A placeholder asked for by its CVE id does not give away the tracking id.
    for case in lifted:
        if case.cve_id:
            assert case.v.tracking_id not in seen.pages[f"/vulnerabilities/{case.cve_id}"][2]
            assert case.v.tracking_id not in seen.pages["/vulnerabilities"][2]

    # The release notes name the embargoed CVEs by id and date alone, the others not at all,
    # and so does the command line; refused exports say nothing more either.
    day = until.date().isoformat()
    assert sorted(notes.splitlines()) == sorted(
        f"{c.cve_id}: Under embargo until {day}" for c in lifted if c.cve_id
    )
    cli = forewarn("release-notes")
    assert cli.returncode == 0, cli.stderr
    assert sorted(cli.stdout.splitlines()) == sorted(notes.splitlines())
    refused = forewarn("export", "osv", cases[0].v.tracking_id)
    assert refused.returncode != 0
    cli_output = [("release-notes CLI", cli.stdout + cli.stderr)]
    cli_output += [("export osv CLI (refused)", refused.stdout + refused.stderr)]
    assert_absent(cli_output, forbidden_before(cases) | hidden_ids(cases))

    # -- the lift, for real ----------------------------------------------------------------------
    clock.move(days=31)
    for case in cases:
        outcome = lift.lift(case.v.id, clock.at, settings)
        expected = {"new": "held", "triage": "held", "rejected": "not-public"}
        assert outcome == expected.get(case.status, "lifted"), (case.n, outcome)

    with every_log(caplog):
        provider.publish(keyring, settings, clock.at)
        built_log = caplog.text
    after, notes, served, logs = observe(app, settings, cases, clock, caplog, capsys)
    logs.append(("CSAF provider's build (logs)", built_log))
    served += csaf_files(settings)  # as a proxy serving the folder would, hidden files too

    assert_absent(served + logs, forbidden_after(cases))
    assert_absent(served, hidden_ids(cases))

    # What the lift reveals is where it belongs: the page and the OSV record at least.
    for case in lifted:
        tid = case.v.tracking_id
        page = after.pages[f"/vulnerabilities/{tid}"]
        osv = after.pages[f"/vulnerabilities/{tid}/osv.json"]
        assert page[0] == osv[0] == 200, tid
        source = after.pages[f"/osv/{osv_id(case)}.json"]
        assert source[::2] == osv[::2], tid  # the OSV source serves the same record
        for where, body in (("page", page[2]), ("osv", osv[2])):
            for name, canary in case.public_after_lift().items():
                if name == "statement" and where != "page":
                    continue  # a product maker's statement is on the page alone (below)
                if name == "introduced" and where != "osv":
                    continue  # the introducing commit is for scanners: in the GIT range
                assert canary in body, (tid, where, name)
            assert case.severity in body, (tid, where)
            assert case.cwe in body, (tid, where)
        for kind in ("cve", "csaf"):
            if kind == "cve" and not case.cve_id:
                continue
            assert after.pages[f"/vulnerabilities/{tid}/{kind}.json"][0] == 200, (tid, kind)
        if case.cve_id:
            assert f"{case.cve_id}: {case.canary('title')} heap overflow" in notes
        # In the CSAF provider's directory, reached from its listings, with its hashes and
        # signature beside it.
        path = csaf_path(case, clock.at)
        document = after.pages[f"/.well-known/csaf/{path}"]
        assert document[0] == 200 and case.canary("title") in document[2], path
        for suffix in (".sha256", ".sha512", ".asc"):
            assert after.pages[f"/.well-known/csaf/{path}{suffix}"][0] == 200, (path, suffix)
    index = after.pages["/.well-known/csaf/white/index.txt"][2].split()
    assert sorted(index) == sorted(csaf_path(c, clock.at).removeprefix("white/") for c in lifted)
    feed = after.pages["/vulnerabilities.atom"][2]
    assert all(case.canary("title") in feed for case in lifted)
    # The OSV source lists the lifted ones alone; their former ids send on to them; the others
    # still answer as unknown ids.
    listed = json.loads(after.pages["/osv/all.json"][2])
    assert [entry["id"] for entry in listed] == sorted(osv_id(case) for case in lifted)
    for case in lifted:
        former = after.pages[f"/osv/{case.cve_id or 'x_' + case.v.tracking_id}.json"]
        assert former[0] == 301 and former[1]["Location"].endswith(f"/osv/{osv_id(case)}.json")
    unknown_osv = after.pages["/osv/LEAKTEST-2026-9999.json"]
    for case in hidden:
        for url in osv_urls(case):
            assert after.pages[url][::2] == unknown_osv[::2], url
    # A product maker's statement given with consent: on its vulnerability's page alone, and
    # nothing of the one given without (its organisation is a canary, never allowed below).
    for case in lifted:
        statement = case.canary("statement")
        where = [w for w, text in served + logs if statement.lower() in text.lower()]
        assert where == [f"/vulnerabilities/{case.v.tracking_id} (body)"], (case.n, where)
        assert "<strong>Not affected</strong>" in after.pages[where[0].split(" ")[0]][2]
    assert_absent(served + logs, {"the organisation that did not consent": QUIET_ORG})
    # Only the fields the lift reveals, of the lifted ones, appear anywhere.
    allowed = {c for case in lifted for c in case.public_after_lift().values()}
    allowed |= {case.canary("patchname") for case in lifted}
    assert canaries_in(served + logs) <= allowed, canaries_in(served + logs) - allowed


def osv_id(case: Case) -> str:
    return "LEAKTEST-" + case.v.tracking_id.removeprefix("SEC-")


def osv_urls(case: Case) -> list[str]:
    """Every id the OSV source could know it by: its own, x_ and the tracking id, its CVE id."""
    urls = [f"/osv/{osv_id(case)}.json", f"/osv/x_{case.v.tracking_id}.json"]
    return urls + ([f"/osv/{case.cve_id}.json"] if case.cve_id else [])


def csaf_files(settings) -> list[tuple[str, str]]:
    """Every file of the CSAF provider's current tree, by its path in the public folder."""
    tree = provider.current(settings)
    assert tree is not None, "the CSAF provider directory was not built"
    return [
        (f"public/csaf/{path.relative_to(tree)}", path.read_text("utf-8"))
        for path in sorted(tree.rglob("*"))
        if path.is_file()
    ]


def csaf_path(case: Case, at) -> str:
    """Where the CSAF provider keeps a lifted one's advisory (below /.well-known/csaf/)."""
    view = redaction.public_view(Vulnerability.get_by_id(case.v.id), at)
    return export_fields.csaf_path(view)


def _normalised(seen: Crawl, case: Case) -> str:
    body = seen.pages[f"/vulnerabilities/{case.cve_id or case.v.tracking_id}"][2]
    for ident in filter(None, (case.v.tracking_id, case.cve_id)):
        body = body.replace(ident, "ID")
    return body


def test_a_case_member_with_a_later_end_is_named_nowhere_when_the_others_lift(
    app, settings, clock, keyring, admin_user
):
    """A case (#15) lifted in part: the members ending together are published in one
    publication; the one with a later end stays a placeholder on every public address and in
    every mail of the lift, until its own end."""
    cves.import_block("CVE-2026-4200..CVE-2026-4209", None, "test", clock.at)
    made: list[Case] = []
    root = lifecycle.create(
        "CANARY-title-91 root", "CANARY-description-91", ACTOR, clock.at, settings
    )
    Vulnerability.update(reporter_email="auditor@finder.example").where(
        Vulnerability.id == root.id
    ).execute()
    root = Vulnerability.get_by_id(root.id)
    parts = split.split(
        root, ["CANARY-title-92 x86", "CANARY-title-93 arc"], ACTOR, clock.at, settings
    )
    for n, v in zip((91, 92, 93), [root, *parts], strict=True):
        v = lifecycle.set_field(v, "description", f"CANARY-description-{n}", ACTOR, clock.at)
        v = lifecycle.set_status(v, "accepted", ACTOR, clock.at)
        case = Case(n, "accepted", cve=True, v=v)
        case.cve_id = cves.allocate(v, None, "test", clock.at).cve.cve_id
        case.canary("title"), case.canary("description")
        made.append(case)
    later = made[2]
    end = made[0].v.embargo_until
    embargo_change.change_embargo(
        later.v, end + timedelta(days=7), "ARC later", ACTOR, clock.at, settings, only=True
    )
    clock.move(seconds=(end - clock.at).total_seconds())
    announcing = replace(settings, announce_address="announce@lists.example")
    assert lift.lift(made[0].v.id, clock.at, announcing) == "lifted"
    for case in made:
        case.v = Vulnerability.get_by_id(case.v.id)
    assert [c.v.status for c in made] == ["published", "published", "accepted"]

    seen = crawl(app, settings, made)
    notes = release_notes_text(settings, clock.at)
    mails = [
        (f"{d.kind} to {d.recipient}", letters.text_for(d, keyring, settings, clock.at).body)
        for d in Delivery.select().where(Delivery.kind.in_(announcements.KINDS))
    ]
    assert [kind.split()[0] for kind, _ in sorted(mails)] == ["announcement", "publication"]
    served = seen.everything() + [("release notes", notes)]
    assert_absent(served + mails, {k: c for k, c in later.canaries.items()})
    assert_absent(mails, {"tracking id of the later one": later.v.tracking_id})
    assert_absent(mails, {"CVE id of the later one": later.cve_id})
    for case in made[:2]:
        page = seen.pages[f"/vulnerabilities/{case.v.tracking_id}"]
        assert page[0] == 200 and case.canary("title") in page[2]
        assert case.canary("title") in seen.pages["/vulnerabilities.atom"][2]
    assert seen.pages[f"/vulnerabilities/{later.cve_id}"][0] == 200  # its placeholder
    day = later.v.embargo_until.date().isoformat()
    assert f"{later.cve_id}: Under embargo until {day}" in notes.splitlines()


# What a reporter's own follow-up page may show them of their case: their messages and the
# team's to them, their files, their name and the credit line. Nothing else of it (the team's
# fields, the duplicate another reporter filed), nor anything of any other case.
FOLLOW_UP_SHOWS = {"corrsubjectin", "corrsubjectout", "corrtextin", "corrtextout"}
FOLLOW_UP_SHOWS |= {"attachname", "attachdump", "attachtext", "attachbinary"}
FOLLOW_UP_SHOWS |= {"reportername", "credits"}


def test_a_reporters_follow_up_page_shows_their_case_alone(app, settings, clock, desk, caplog):
    """The crawl starts at one reporter's follow-up page (their case has a split member and a
    duplicate from another reporter, credited on it) and follows every link from there."""
    cases, _until = desk
    mine = cases[0]
    Correspondence.update(sender=mine.v.reporter_email).where(
        Correspondence.vulnerability == mine.v, Correspondence.direction == "in"
    ).execute()  # the reporter's own message (the team's thread shows it as theirs)
    _link, token = followup.issue(mine.v.tracking_id, instance.secret_key(settings), clock.at)
    start = f"/follow-up/{token}"
    with every_log(caplog):
        seen = crawl(app, settings, cases, start=[start])
    status, _headers, page = seen.pages[start]
    assert status == 200
    for shown in (mine.v.tracking_id, *mine.split_ids, mine.cve_id, mine.canary("corrtextout")):
        assert shown in page, shown
    files = [u for u in seen.pages if u.startswith(f"{start}/files/")]
    assert len(files) == 2 and all(seen.pages[u][0] == 200 for u in files)
    forbidden = {
        f"{name} of #{mine.n}": canary
        for name, canary in mine.canaries.items()
        if name not in FOLLOW_UP_SHOWS
    }
    for other in cases[1:]:
        forbidden.update({f"{k} of #{other.n}": c for k, c in other.canaries.items()})
    ids = hidden_ids(cases)
    ids = {k: i for k, i in ids.items() if i not in (mine.v.tracking_id, *mine.split_ids)}
    ids.update({f"duplicate of #{mine.n}": i for i in mine.duplicate_ids})
    served = seen.everything()
    assert_absent(served, forbidden)
    assert_absent(served, ids)
    assert_absent([("logs", caplog.text)], {"the token": token})
