"""The CVE record's content (#18): plain-text descriptions in full with the rich text beside them,
the CWE, semver where the versions are semver, typed credits; every variant validated with
cvelib. After a revision, the record published at CVE Services is updated by the lift's own
publication step. And no link on a public page answers 404."""

import dataclasses
import json
import threading
from collections import deque
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import hypothesis
import pytest
from hypothesis import strategies as st
from werkzeug.serving import make_server

from app.core import markdown, timefmt
from app.disclosure import exports, lift
from app.disclosure.exports import cve_record
from app.models import AuditEvent, Publication, Vulnerability
from app.vulns import affected, cve_services, cves, lifecycle, revisions
from app.workers import reconcile, scheduling
from tests.conftest import run_jobs
from tests.cve_services_standin import CveServicesStandIn
from tests.test_exports import ACTOR, ORG_ID, env, make  # noqa: F401 (env: the CNA's settings)
from tests.test_leaks import links_in

pytestmark = pytest.mark.db

MARKDOWN = """# Impact

A crafted **L2CAP** frame overflows `l2cap_chan_recv()` <script>alert(1)</script>; see
[the fix](https://github.com/zephyrproject-rtos/zephyr/pull/1) or <https://example.org/a>.

## Affected

- boards with `CONFIG_BT_L2CAP_DYNAMIC_CHANNEL=y`
- every release before 4.2

1. Update.
2. Rebuild.

```c
len = buf->len; /* <b>no check</b> */
```

&lt;img src=x onerror=alert(2)&gt; and <scr<script>ipt>alert(3)</script>
"""

PLAIN = """Impact

A crafted L2CAP frame overflows l2cap_chan_recv() alert(1); see the fix \
(https://github.com/zephyrproject-rtos/zephyr/pull/1) or https://example.org/a.

Affected

- boards with CONFIG_BT_L2CAP_DYNAMIC_CHANNEL=y
- every release before 4.2

1. Update.
2. Rebuild.

len = buf->len; /* no check */

and script>alert(3)"""


def cna_of(v, at, settings) -> dict:
    record = exports.document("cve", v, at, settings)
    exports.validate("cve", record)  # the schema, then cvelib's CveRecord.validate
    return record["containers"]["cna"]


# -- Markdown as plain text ----------------------------------------------------------------------


def test_markdown_becomes_its_words_without_markup():
    assert markdown.to_text(MARKDOWN) == PLAIN


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("`Vec<u8>`, `<stdint.h>`: 1 < 2 > 0", "Vec<u8>, <stdint.h>: 1 < 2 > 0"),
        ("<IMG SRC=x OnError=alert(1)>text", "text"),
        ("a <svg/onload=alert(1)> b", "a b"),
        ("<!-- hidden --> c <!DOCTYPE html>", "c"),
        ("<<script>script>alert(1)<</script>/script>", "alert(1)"),
        ("Mail <security@example.org>.", "Mail security@example.org."),
        ("3. three\n4. four", "3. three\n4. four"),
        ("> quoted *words*", "quoted words"),
        ("***", ""),
        ("<x onclick=alert(1)>hover", "hover"),  # any tag with attributes
        ("<foo.bar onclick=alert(1)>hover", "hover"),
        ("a <svg onload=alert(1)", "a svg onload=alert(1)"),  # left open: its "<" alone
        ("a <!-- open", "a !-- open"),
        ("</ b>", "/ b>"),
    ],
)  # fmt: skip
def test_plain_text_keeps_words_and_drops_every_tag(text, plain):
    assert markdown.to_text(text) == plain


class Markup(HTMLParser):
    """What an HTML parser finds in a text that could act: an element, an attribute with a
    value or an event handler, a comment, a declaration."""

    def __init__(self, text: str):
        super().__init__()
        self.found = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag in ELEMENTS or any(v is not None or n.startswith("on") for n, v in attrs):
            self.found.append((tag, attrs))

    def handle_endtag(self, tag):
        if tag in ELEMENTS:
            self.found.append(f"/{tag}")

    def handle_comment(self, data):
        self.found.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.found.append(f"<!{decl}>")

    def handle_pi(self, data):
        self.found.append(f"<?{data}>")


ELEMENTS = {"script", "img", "svg", "b", "iframe", "a", "style", "p"}
PIECES = ["<", ">", "/", " ", "\n", "\n\n", "`", "```", "*", "# ", "- ", "[a](http://x)", "<!--",
          "-->", "&lt;", "&gt;", "script", "img", "svg", "onerror=", '"', "<b>", "</b>", "    ",
          "<u8>", "<x.y ", "!", "?", "=", "word"]  # fmt: skip


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)), max_size=60).map("".join)
)
def test_no_markup_survives_whatever_the_markdown(text):
    plain = markdown.to_text(text)
    assert Markup(plain).found == []
    for description in cve_record.descriptions(text):
        assert 1 <= len(description["value"]) <= 4096


def test_blocks_carry_their_text_and_their_sanitised_html():
    blocks = markdown.blocks(MARKDOWN)
    assert [b.text for b in blocks][:2] == ["Impact", PLAIN.split("\n\n")[1]]
    html = "\n".join(b.html for b in blocks)
    assert "<h1>Impact</h1>" in html and "<code>l2cap_chan_recv()</code>" in html
    assert "&lt;script&gt;" in html and "<script" not in html and "<img" not in html
    assert html.count("<li>") == 4


# -- the record ----------------------------------------------------------------------------------


def test_the_description_is_plain_text_with_the_rich_text_as_supporting_media(db, clock, settings):
    v = make(settings, clock.at, description=MARKDOWN, mitigation="Set `CONFIG_X=n` **now**.")
    cna = cna_of(v, clock.at, settings)

    (description,) = cna["descriptions"]
    assert description["lang"] == "en"
    assert description["value"] == PLAIN
    for markup in ("#", "`", "**", "<", "&lt;", "]("):
        assert markup not in description["value"], markup
    (media,) = description["supportingMedia"]
    assert (media["type"], media["base64"]) == ("text/html", False)
    assert media["value"] == "\n".join(b.html for b in markdown.blocks(MARKDOWN))
    assert "<h2>Affected</h2>" in media["value"] and "<script" not in media["value"]
    assert cna["workarounds"][0]["value"] == "Set CONFIG_X=n now."
    assert "<code>CONFIG_X=n</code>" in cna["workarounds"][0]["supportingMedia"][0]["value"]


def test_a_long_description_is_kept_whole_in_descriptions_of_at_most_4096_characters(
    db, clock, settings
):
    paragraphs = [f"Paragraph {n}: " + " ".join(["overflow"] * 200) for n in range(6)]
    giant = " ".join(f"word{n}" for n in range(2500))  # one paragraph of ~21,000 characters
    long = "\n\n".join([*paragraphs, giant, "The last words."])
    v = make(settings, clock.at, description=long)
    cna = cna_of(v, clock.at, settings)

    parts = cna["descriptions"]
    values = [part["value"] for part in parts]
    assert len(long) > 7 * 4096
    assert all(len(value) <= cve_record_limit() for value in values)
    assert " ".join(" ".join(values).split()) == " ".join(long.split())  # every word, in order
    assert not any(value.endswith("…") for value in values)  # nothing clipped any more
    # Paragraphs are not cut: a part holds whole ones (two fit) with their HTML...
    assert values[:3] == ["\n\n".join(paragraphs[n : n + 2]) for n in (0, 2, 4)]
    for part, n in zip(parts[:3], (0, 2, 4), strict=True):
        (media,) = part["supportingMedia"]
        assert media["value"] == f"<p>{paragraphs[n]}</p>\n<p>{paragraphs[n + 1]}</p>"
    # ... but one longer than a description is, between words, without HTML.
    cut = [p["value"] for p in parts[3:-1]]
    assert len(cut) == 6 and " ".join(cut) == giant
    assert not any("supportingMedia" in p for p in parts[3:-1])
    assert parts[-1]["value"] == "The last words."
    assert parts[-1]["supportingMedia"][0]["value"] == "<p>The last words.</p>"


def cve_record_limit() -> int:
    """The schema's own limit of a description's value (CVE JSON 5.1.1)."""
    from pathlib import Path

    from cvelib.cve_api import CveRecord

    schema = json.loads(Path(CveRecord.Schemas.V5_SCHEMA).read_text(encoding="utf-8"))
    return schema["definitions"]["description"]["properties"]["value"]["maxLength"]


def test_a_description_without_words_falls_back_to_the_title(db, clock, settings):
    v = make(settings, clock.at, description="<script></script>\n\n---")
    assert cna_of(v, clock.at, settings)["descriptions"] == [{"lang": "en", "value": v.title}]


def test_the_cwe_is_a_problem_type_with_its_id(db, clock, settings):
    v = make(settings, clock.at, cwe="CWE-121")
    (problem,) = cna_of(v, clock.at, settings)["problemTypes"]
    (description,) = problem["descriptions"]
    assert (description["type"], description["cweId"], description["lang"]) == (
        "CWE",
        "CWE-121",
        "en",
    )
    # The id, then MITRE's name for it, from the table shipped with the project.
    assert description["description"] == "CWE-121 Stack-based Buffer Overflow"
    v = make(settings, clock.at, title="Without", cwe="", cve=False)
    cves.allocate(v, None, "test", clock.at)
    assert "problemTypes" not in cna_of(Vulnerability.get_by_id(v.id), clock.at, settings)


SEMVER_OR_NOT = [
    ("zephyr >=3.0.0 <4.2.0", ["semver"]),
    ("zephyr <=2.7.5", ["semver"]),  # from "0", CVE's word for the earliest version
    ("zephyr >=1.0.0-rc.1 <1.0.0+build.7", ["semver"]),
    ("zephyr =3.7.0", ["semver"]),
    ("zephyr >=3.0 <4.2", ["custom"]),
    ("zephyr >=3.0.0 <4.2", ["custom"]),  # one of the two is not
    ("zephyr <v4.2.0", ["custom"]),
    ("zephyr >=01.2.3 <4.2.0", ["custom"]),  # no leading zeros in semver
    ("zephyr =3.7", [None]),  # a single version needs no type
    ("zephyr >=3.0.0 <4.2.0; zephyr =2.7; zephyr >=2.0 <=2.5", ["semver", None, "custom"]),
]


@pytest.mark.parametrize(("written", "types"), SEMVER_OR_NOT)
def test_version_type_is_semver_when_every_version_is_semver(db, clock, settings, written, types):
    v = make(settings, clock.at, affected=written)
    (zephyr,) = cna_of(v, clock.at, settings)["affected"]
    assert [entry.get("versionType") for entry in zephyr["versions"]] == types
    first = zephyr["versions"][0]
    item = affected.parse(written)[0]
    assert first["version"] == (item.exact or item.introduced or "0")
    assert first.get("lessThan") == item.fixed
    assert first.get("lessThanOrEqual") == item.last_affected


def test_credits_carry_the_type_the_team_chose(db, clock, settings):
    credits = "\n".join(
        [
            "Zoë Ångström",
            "Jane Roe (reporter)",
            "NCC Group (coordinator)",
            "Alex Doe (remediation developer)",
            "syzkaller (tool)",
            "Jo Bloggs (ACME)",
        ]
    )
    v = make(settings, clock.at, credits=credits)
    assert [(c["value"], c["type"]) for c in cna_of(v, clock.at, settings)["credits"]] == [
        ("Zoë Ångström", "finder"),
        ("Jane Roe", "reporter"),
        ("NCC Group", "coordinator"),
        ("Alex Doe", "remediation developer"),
        ("syzkaller", "tool"),
        ("Jo Bloggs (ACME)", "finder"),
    ]


def test_an_edit_of_the_description_advances_date_updated(db, clock, settings):
    v = make(settings, clock.at)
    before = exports.document("cve", v, clock.at, settings)
    edit = clock.at + timedelta(days=3)
    v = lifecycle.set_field(v, "description", "Now *with* details.", ACTOR, edit, reason="detail")
    after = exports.document("cve", v, edit, settings)
    exports.validate("cve", after)
    assert before["containers"]["cna"]["providerMetadata"]["dateUpdated"] != timefmt.zulu(edit)
    assert after["containers"]["cna"]["providerMetadata"]["dateUpdated"] == timefmt.zulu(edit)
    assert after["cveMetadata"]["dateUpdated"] == timefmt.zulu(edit)
    assert after["containers"]["cna"]["descriptions"][0]["value"] == "Now with details."


# -- CVE Services: a revision updates the published record -----------------------------------------


@pytest.fixture
def standin():
    with CveServicesStandIn(org="zephyr") as service:
        service.org_uuid = ORG_ID  # the CNA's organisation, as FOREWARN_CNA_ORG_ID says
        yield service


@pytest.fixture
def worker_env(app, env, standin, monkeypatch):  # noqa: F811 (env: test_exports')
    """A worker's environment in CVE Services mode, with the real portal on a loopback port
    for the lift's page step."""
    from app.workers import jobs

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    values = {
        **env,
        "FOREWARN_BASE_URL": f"http://127.0.0.1:{server.server_port}",
        "FOREWARN_CVE_SERVICES_URL": standin.url,
        "FOREWARN_CVE_API_USER": standin.user,
        "FOREWARN_CVE_API_KEY": standin.api_key,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    jobs._settings.cache_clear()
    yield values
    jobs._settings.cache_clear()
    server.shutdown()


def test_a_revision_updates_the_record_published_at_cve_services(
    db, clock, settings, standin, worker_env, redis_conn
):
    services = cve_services.ServicesConfig.from_environ(worker_env)
    v = make(settings, clock.at, cve=False, published=False, description="First *words*.")
    cve_id = cves.allocate(v, None, "test", clock.at, services).cve.cve_id
    clock.move(seconds=(v.embargo_until - clock.at).total_seconds())

    # The lift, then its publication steps in a worker: the record is published.
    assert lift.lift(v.id, clock.at, settings) == "lifted"
    scheduling.queue_publication_steps(redis_conn, v.id)
    run_jobs(redis_conn)
    assert Publication.get().state == "complete", Publication.get().steps
    assert ("POST", f"/api/cve/{cve_id}/cna") in standin.requests
    published = standin.records[cve_id]["containers"]["cna"]
    assert published["descriptions"][0]["value"] == "First words."
    assert not any(method == "PUT" for method, _ in standin.requests)

    # A revision: the steps that carry the records out are due again, shown to the team.
    clock.move(days=2)
    v = lifecycle.set_field(
        Vulnerability.get_by_id(v.id), "description", "Second, *longer* words.", ACTOR,
        clock.at, reason="the exploit needs no pairing",
    )  # fmt: skip
    publication = Publication.get()
    assert (publication.state, publication.next_attempt_at) == ("pending", clock.at)
    steps = json.loads(publication.steps)
    assert steps["page"] == "done"
    for name in revisions.REDONE_STEPS:
        assert steps[name] == f"due: revised at {timefmt.zulu(clock.at)}"
    assert lift.status_of(v)["revised"] is True

    # The reconciler hands them to a worker, which updates the published record (PUT).
    assert reconcile.run(redis_conn, clock.at) >= 1
    run_jobs(redis_conn)
    assert ("PUT", f"/api/cve/{cve_id}/cna") in standin.requests
    updated = standin.records[cve_id]["containers"]["cna"]
    assert updated["descriptions"][0]["value"] == "Second, longer words."
    assert updated["providerMetadata"]["dateUpdated"] == timefmt.zulu(clock.at)
    assert standin.records[cve_id]["cveMetadata"]["state"] == "PUBLISHED"
    publication = Publication.get()
    assert publication.state == "complete"
    assert json.loads(publication.steps)["cve-record"] == "done"
    update = AuditEvent.get(AuditEvent.action == "cve.update")
    assert (update.target, update.actor_label) == (cve_id, "lift")


def test_a_failed_update_is_retried_like_the_lifts_steps(
    db, clock, settings, standin, worker_env, redis_conn
):
    services = cve_services.ServicesConfig.from_environ(worker_env)
    v = make(settings, clock.at, cve=False, published=False)
    cve_id = cves.allocate(v, None, "test", clock.at, services).cve.cve_id
    portal = dataclasses.replace(settings, base_url=worker_env["FOREWARN_BASE_URL"])
    at = clock.move(seconds=(v.embargo_until - clock.at).total_seconds())  # the portal's now
    lift.lift(v.id, at, settings)
    lift.complete(v.id, at, portal, services)
    assert Publication.get().state == "complete"

    revised = at + timedelta(hours=1)
    lifecycle.set_field(Vulnerability.get_by_id(v.id), "cwe", "CWE-121", ACTOR, revised)
    down = dataclasses.replace(services, url="http://127.0.0.1:9/api/")  # nothing listens
    steps = lift.complete(v.id, revised, portal, down)
    assert steps["cve-record"].startswith("failed: cannot update")
    publication = Publication.get()
    assert (publication.state, publication.attempts) == ("pending", 1)
    assert publication.next_attempt_at == revised + timedelta(minutes=1)

    steps = lift.complete(v.id, revised + timedelta(minutes=1), portal, services)
    assert steps["cve-record"] == "done"
    cna = standin.records[cve_id]["containers"]["cna"]
    assert cna["problemTypes"][0]["descriptions"][0]["cweId"] == "CWE-121"


def test_a_revision_during_a_pass_keeps_its_steps_due(
    db, clock, settings, standin, worker_env, monkeypatch
):
    """A pass that read the steps before a revision does not mark the revision's steps done."""
    services = cve_services.ServicesConfig.from_environ(worker_env)
    portal = dataclasses.replace(settings, base_url=worker_env["FOREWARN_BASE_URL"])
    v = make(settings, clock.at, cve=False, published=False)
    cves.allocate(v, None, "test", clock.at, services)
    at = clock.move(seconds=(v.embargo_until - clock.at).total_seconds())  # the portal's now
    lift.lift(v.id, at, settings)
    revised = at + timedelta(minutes=5)
    publish = lift._publish_cve_record

    def revised_meanwhile(*args):
        outcome = publish(*args)
        lifecycle.set_field(Vulnerability.get_by_id(v.id), "cwe", "CWE-122", ACTOR, revised)
        return outcome

    monkeypatch.setattr(lift, "_publish_cve_record", revised_meanwhile)
    assert lift.complete(v.id, at, portal, services)["cve-record"] == "done"
    publication = Publication.get()
    assert publication.state == "pending"
    assert json.loads(publication.steps)["cve-record"].startswith("due: revised at")
    assert [p.id for p in lift.pending(revised)] == [publication.id]
    assert not AuditEvent.select().where(AuditEvent.action == "vuln.publication_complete").exists()


def test_the_team_page_says_the_records_of_a_revision_go_out_again(
    db, clock, settings, redis_conn, admin_user
):
    from app.web import create_app
    from tests.conftest import PASSWORD, Auth

    v = make(settings, clock.at)  # published before the lift kept a publication
    lifecycle.set_field(v, "title", "Heap overflow in L2CAP", ACTOR, clock.at, reason="shorter")
    without_totp = dataclasses.replace(settings, require_2fa=False)  # the CNA's URL is https
    client = create_app(without_totp, test_config={"TESTING": True}).test_client()
    Auth(client).login(admin_user.email, PASSWORD)
    page = client.get(f"/team/vulnerabilities/{v.tracking_id}").get_data(as_text=True)
    assert "changed since: its records go out again" in page
    assert "a step has not succeeded yet" not in page
    assert f"due: revised at {timefmt.zulu(clock.at)}" in page


def test_a_revision_on_the_command_line_queues_the_records_at_once(
    db, clock, settings, forewarn, redis_conn
):
    from app.workers.queue import work_queue

    v = make(settings, clock.at - timedelta(days=1))
    changed = forewarn("vulns", "set", v.tracking_id, "cwe", "CWE-122", "--reason", "stack")
    assert changed.returncode == 0, changed.stderr
    said = "cwe set; a new revision: its public records follow"
    assert changed.stdout == f"{v.tracking_id}: {said}\n"
    assert f"publication-{v.id}" in work_queue(redis_conn).job_ids
    private = forewarn("vulns", "set", v.tracking_id, "fix_due", "2027-01-01")
    assert private.stdout == f"{v.tracking_id}: fix_due set\n"


def test_a_revision_in_the_portal_says_so_and_queues_the_records_at_once(
    db, clock, settings, redis_conn, admin_user
):
    from app.web import create_app
    from app.workers.queue import work_queue
    from tests.conftest import PASSWORD, Auth
    from tests.test_web_workspace import fields, messages, post

    v = make(settings, clock.at)
    without_totp = dataclasses.replace(settings, require_2fa=False)  # the CNA's URL is https
    client = create_app(without_totp, test_config={"TESTING": True}).test_client()
    Auth(client).login(admin_user.email, PASSWORD)

    response = post(client, v, "fields", **fields(v, cwe="CWE-122"))
    [said] = messages(response)
    assert said.startswith("Saved: cwe. The change is in the audit log. It is published, so")
    assert "the CVE record is updated there" in said
    assert f"publication-{v.id}" in work_queue(redis_conn).job_ids
    assert "changed since: its records go out again" in response.get_data(as_text=True)


# -- every link on the public pages resolves -------------------------------------------------------


def crawl_public(client, base_url: str, start: list[str]) -> dict[str, int]:
    """Every same-site page reachable from `start` as an anonymous visitor (through the pages
    and the Atom feed), with its status; a link to an anchor must find its id on the page."""
    seen: dict[str, int] = {}
    queue, queued = deque(start), set(start)
    while queue:
        url = queue.popleft()
        assert len(seen) < 200, "the crawl found more pages than expected"
        response = client.get(url)
        seen[url] = response.status_code
        readable = "html" in response.mimetype or response.mimetype == "application/atom+xml"
        body = response.get_data(as_text=True) if readable else ""
        found = links_in(body) + [response.headers.get("Location") or ""]
        for link in filter(None, found):
            if link.startswith("#"):
                assert f'id="{link[1:]}"' in body, (url, link)
            parts = urlsplit(urljoin(f"http://localhost{url}", link))
            if parts.netloc not in ("localhost", urlsplit(base_url).netloc):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.scheme in ("http", "https") and target not in queued:
                queued.add(target)
                queue.append(target)
    return seen


@pytest.mark.parametrize("cna", [True, False], ids=["cna-settings", "no-cna-org-id"])
def test_no_link_on_the_public_pages_answers_404(db, clock, settings, keyring, redis_conn, cna):
    from app.web import create_app

    settings = settings if cna else dataclasses.replace(settings, cna_org_id=None)
    with_cve = make(settings, clock.at)
    without_cve = make(settings, clock.at, title="No CVE id", cve=False)
    no_affected = make(settings, clock.at, title="Nothing stated", affected="", cve=False)
    cves.allocate(no_affected, None, "test", clock.at)
    embargoed = make(settings, clock.at, title="Still secret", cve=False, published=False)
    cves.allocate(embargoed, None, "test", clock.at)
    settings = dataclasses.replace(settings, product=None)  # no default product either
    test_config = {"TESTING": True, "FOREWARN_LIST_FRESH_FOR": 0}
    client = create_app(settings, test_config=test_config).test_client()

    pages = [f"/vulnerabilities/{v.tracking_id}" for v in (with_cve, without_cve, no_affected)]
    seen = crawl_public(client, settings.base_url, ["/", "/vulnerabilities", *pages])

    broken = {url: status for url, status in seen.items() if status == 404}
    assert broken == {}
    for page in pages:
        assert seen[page] == 200
    for kind in ("osv", "csaf"):
        assert seen[f"/vulnerabilities/{without_cve.tracking_id}/{kind}.json"] == 200
    with_record = f"/vulnerabilities/{with_cve.tracking_id}/cve.json"
    assert (with_record in seen) is cna  # linked when it can be served, and then it is
    assert f"/vulnerabilities/{without_cve.tracking_id}/cve.json" not in seen
    assert f"/vulnerabilities/{no_affected.tracking_id}/cve.json" not in seen
    assert "/key.asc" in seen and "/vulnerabilities.atom" in seen
