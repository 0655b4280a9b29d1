"""Golden mail: every kind of mail Forewarn composes, rendered and compared with stored text.

Each case below builds the rows a real run would have (the migrated database, the frozen clock,
fixed names, ids and dates), asks `app.outbox.letters.text_for` for the mail, and compares what it
gives (subject, outer subject, the key it is encrypted to, whether it is signed, the attachments and
the body) with tests/golden/mail/<kind>[-variant].txt. What differs from run to run is replaced by a
placeholder before comparing, nothing else: the service key's fingerprint and key id, and the signed
tokens in links. Any change of wording fails with a unified diff.

To accept an intended change of wording, rewrite the files and review them with `git diff`:

    FOREWARN_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/test_golden_mail.py

(tests/golden/README.md says more.) The update also deletes golden files no case produces.

The test also fails when app/ can queue or compose a kind of delivery that no case renders (the
kinds are read from the code: see `kinds_in_code`), and when a body has a line over 72 columns
that is not a URL, a fingerprint or quoted text and is not one of KNOWN_OVERLONG.
"""

import ast
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.core.config import load_settings
from app.disclosure import preflight
from app.models import (
    Advisory,
    AdvisoryBundle,
    Answer,
    Correspondence,
    CveId,
    Delivery,
    Finding,
    FollowUpLink,
    Patch,
    PublicKey,
    ReceivedFile,
    Registrant,
    User,
    Vulnerability,
)
from app.outbox import deliveries, letters
from app.registry import alerts
from app.reports import followup

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "mail"
UPDATE = os.environ.get("FOREWARN_GOLDEN_UPDATE") == "1"
BASE_URL = "https://security.example.org"
WIDTH = 72

# Lines of today's mail longer than 72 columns that are neither a URL, a fingerprint nor
# quoted text: (case, how the line starts). Listed so that no new one slips in; remove an entry
# when its template is fixed (the test says when one no longer occurs).
KNOWN_OVERLONG: set[tuple[str, str]] = {
    # The team's text goes out as written, never wrapped: the advisory's title line and the
    # description (alerts.draft, templates/email/alert.txt and announcement.txt).
    ("alert-with-key", "SEC-2026-0001 / CVE-2026-41234: Heap overflow"),
    ("alert-with-key", "A crafted packet with a length field"),
    ("alert-with-key", "An attacker on the network can crash"),
    ("alert-v2-with-key", "SEC-2026-0001 / CVE-2026-41234: Heap overflow"),
    ("alert-v2-with-key", "A crafted packet with a length field"),
    ("alert-v2-with-key", "An attacker on the network can crash"),
    ("alert-bundle-with-key", "SEC-2026-0001 / CVE-2026-41234: Heap overflow"),
    ("alert-bundle-with-key", "A crafted packet with a length field"),
    ("alert-bundle-with-key", "An attacker on the network can crash"),
    ("announcement", "CVE-2026-41235 (SEC-2026-0003): Signature check"),
    ("announcement", "A crafted packet with a length field"),
    ("announcement", "An attacker on the network can crash"),
    ("announcement-minimal", "A crafted packet with a length field"),
    ("announcement-minimal", "An attacker on the network can crash"),
    # Template lines that pass 72 columns once an id or a date is filled in.
    ("alert-missed", "You missed a pre-disclosure advisory (SEC-2026-0001 v1)"),
    ("alert-key-unusable-since-queued", "You missed a pre-disclosure advisory (SEC-2026-0001"),
    ("alert-embargo-extend-without-key", "has moved. It now ends "),
    ("alert-embargo-early-lift-without-key", "has moved. It now ends "),
    ("embargo-lifted", "The embargo of CVE-2026-41235 (SEC-2026-0003) ended "),
    ("registry-admin-key-expiring", "The encryption key of a registrant expires in 14 days: "),
}


# -- the instance: fixed settings, so links and names never vary -----------------------------


@pytest.fixture
def settings(env):
    """This test's instance with fixed names (overrides the harness's fixture of that name,
    which the `db` and `keyring` fixtures then use)."""
    return load_settings(
        {
            **env,
            "FOREWARN_BASE_URL": BASE_URL,
            "FOREWARN_SECURITY_ADDRESS": "security@example.org",
            "FOREWARN_ANNOUNCE_ADDRESS": "announce@lists.example.org",
            "FOREWARN_PRODUCT": "Frobnicator",
            "FOREWARN_TRACKING_PREFIX": "SEC",
            "FOREWARN_SECRET_KEY": "golden-mail-test-secret-not-used-anywhere-else",
        }
    )


def fpr(char: str) -> str:
    """A fixed 40-digit fingerprint: certificates held in the database are rows to the
    composer, which reads their fingerprint and whether they are usable."""
    return (char * 40).upper()


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    return timedelta(days=n)


class World:
    """The rows shared by the cases, made once per test."""

    def __init__(self, at: datetime, settings):
        self.at = at
        self.settings = settings
        self.admin = self.user("admin@example.org", "admin")
        self.mira = self.user("mira@example.org", "team")  # a team member with a key
        self.tom = self.user("tom@example.org", "team")  # a team member without one
        self.key(fpr("d"), owner=self.mira)
        self.maker = self.registrant("psirt@maker.example", "Maker Ltd", fpr("a"))
        self.keyless_maker = self.registrant(
            "security@nokey.example", "Nokey GmbH", fpr("b"), usable=False
        )
        cve = CveId.create(
            cve_id="CVE-2026-41234",
            block="2026",
            year=2026,
            number=41234,
            state="assigned",
            assigned_at=at - days(20),
        )
        self.keyed = self.vulnerability(
            "SEC-2026-0001",
            "Heap overflow in the frobnicator's packet parser",
            reporter_key=self.key(fpr("c")),
            status="accepted",
            cve=cve,
            assignee=self.mira,
        )
        self.keyless = self.vulnerability(
            "SEC-2026-0002",
            "Path traversal in the export command",
            reporter_email="bob@example.net",
            reporter_name="Bob Builder",
            status="triage",
            severity="",
            cvss_score=None,
            affected="",
            cwe="",
            fix_refs="",
            mitigation="",
            description="",
        )
        self.published = self.vulnerability(
            "SEC-2026-0003",
            "Signature check skipped for detached signatures",
            reporter_key=self.key(fpr("e")),
            status="published",
            published_at=at - hours(1),
            embargo_until=at - hours(1),
            cve=CveId.create(
                cve_id="CVE-2026-41235",
                block="2026",
                year=2026,
                number=41235,
                state="published",
                assigned_at=at - days(40),
            ),
        )
        self.published_plain = self.vulnerability(
            "SEC-2026-0004",
            "Crash on an empty configuration file",
            reporter_email="carol@example.net",
            reporter_name="Carol",
            credit_reporter=False,
            status="published",
            published_at=at - hours(2),
            embargo_until=at - hours(2),
            severity="",
            cvss_score=None,
            affected="",
            cwe="",
            fix_refs="",
            mitigation="",
        )
        self.published_uncredited = self.vulnerability(
            "SEC-2026-0005",
            "Timing side channel in token comparison",
            reporter_email="anon@example.net",
            reporter_name="",
            status="published",
            published_at=at - hours(3),
            embargo_until=at - hours(3),
        )

    # -- row builders --------------------------------------------------------------------

    def user(self, email: str, role: str) -> User:
        return User.create(
            email=email,
            password_hash="golden-test-not-a-real-hash",
            role=role,
            session_token=f"session-{email}",
            created_at=self.at - days(400),
        )

    def key(self, fingerprint: str, owner: User | None = None, usable=True, expires=None):
        return PublicKey.create(
            fingerprint=fingerprint,
            armored="-----BEGIN PGP PUBLIC KEY BLOCK-----\n(golden test)\n",
            owner=owner,
            expires=expires,
            usable=usable,
            created_at=self.at - days(300),
        )

    def registrant(self, email, organisation, fingerprint, usable=True, status="approved"):
        user = self.user(email, "registrant")
        expires = self.at + days(500)
        key = self.key(fingerprint, owner=user, usable=usable, expires=expires)
        return Registrant.create(
            user=user,
            organisation=organisation,
            products="Frobnicator appliances",
            status=status,
            key=key,
            pinned_fingerprint=fingerprint,
            encryption_expires=expires,
            last_confirmed_at=self.at - days(100),
            created_at=self.at - days(400),
            updated_at=self.at - days(100),
        )

    def vulnerability(self, tracking_id: str, title: str, **fields) -> Vulnerability:
        values = {
            "tracking_id": tracking_id,
            "title": title,
            "description": (
                "A crafted packet with a length field larger than the buffer makes the parser "
                "write past the end of its heap buffer.\n\nAn attacker on the network can crash "
                "the daemon, and may run code as its user."
            ),
            "severity": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "cvss_score": 9.8,
            "affected": "frobnicator >=2.0,<2.4.1",
            "cwe": "CWE-787",
            "status": "accepted",
            "reporter_email": "ada@example.net",
            "reporter_name": "Ada Lovelace",
            "fix_refs": (
                "https://git.example.org/frobnicator/commit/4f2a9c1 "
                "https://frobnicator.example.org/releases/2.4.1"
            ),
            "mitigation": "Block port 4711 at the firewall until the fix is deployed.",
            "reported_at": self.at - days(30),
            "fix_due": self.at + days(14),
            "embargo_until": self.at + days(60),
            "created_at": self.at - days(30),
            "updated_at": self.at - days(1),
        }
        values.update(fields)
        return Vulnerability.create(**values)

    def follow_up(self, v: Vulnerability) -> FollowUpLink:
        """The case's live follow-up link with a fixed nonce: with the fixed secret key, its
        token (and so the link in the mail) is the same on every run."""
        link = FollowUpLink(tracking_id=v.tracking_id, nonce=f"golden-{v.tracking_id}")
        link.token_hash = hashlib.sha256(
            followup.token_of(link, self.settings.secret_key_env).encode()
        ).hexdigest()
        link.created_at = self.at - days(1)
        link.save(force_insert=True)
        return link

    def deliver(self, kind: str, recipient: str, payload: dict | None = None, **rows) -> Delivery:
        return Delivery.create(
            kind=kind,
            recipient=recipient,
            payload=json.dumps(payload or {}, sort_keys=True),
            next_attempt_at=self.at,
            created_at=self.at,
            **rows,
        )

    def entry(self, v: Vulnerability, **fields) -> Correspondence:
        values = {
            "vulnerability": v,
            "direction": "in",
            "at": self.at - hours(2),
            "subject": "Heap overflow in the packet parser",
            "text": (
                "Hello,\n\nsending a packet whose length field is larger than the buffer "
                "overflows the heap in parse_packet(); a proof of concept is attached.\n\n"
                "> quoted from the daemon's log, a line that is longer than seventy-two columns\n"
                "\nAda"
            ),
            "signature_status": "good",
            "signer_fingerprint": fpr("c"),
            "encrypted": True,
            "unencrypted_parts": "[]",
        }
        values.update(fields)
        return Correspondence.create(**values)


def received(entry: Correspondence, name: str, content: bytes | None, **fields) -> ReceivedFile:
    values = {
        "correspondence": entry,
        "name": name,
        "content_type": "text/plain",
        "size": len(content) if content is not None else 50_000_000,
        "sha256": hashlib.sha256(content or name.encode()).hexdigest(),
        "content": content,
        "encrypted": True,
        "dropped": "",
    }
    values.update(fields)
    return ReceivedFile.create(**values)


# -- the cases: one per kind and variant that matters ------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str  # the golden file's name: <kind>[-variant]
    kind: str
    build: Callable[[World], Delivery]


CASES: list[Case] = []


def case(name: str, kind: str):
    def register(build):
        CASES.append(Case(name, kind, build))
        return build

    return register


# Mail to reporters


@case("unreadable", "unreadable")
def _(w):
    return w.deliver("unreadable", "someone@example.net", {"message": 1})


for _encrypted in (True, False):

    @case(f"receipt-{'encrypted' if _encrypted else 'plain'}", "receipt")
    def _(w, encrypted=_encrypted):
        return w.deliver("receipt", "stranger@example.net", {"message": 1, "encrypted": encrypted})


for _kind in ("ack", "reply-ack"):

    @case(f"{_kind}-with-key-encrypted", _kind)
    def _(w, kind=_kind):
        w.follow_up(w.keyed)  # the ack carries the link; later mail ends with it
        entry = w.entry(w.keyed)
        return w.deliver(
            kind,
            "ada@example.net",
            {"correspondence": entry.id, "encrypted": True},
            vulnerability=w.keyed,
        )

    @case(f"{_kind}-without-key-unencrypted", _kind)
    def _(w, kind=_kind):
        w.follow_up(w.keyless)  # in the signed notice: the way in without OpenPGP
        entry = w.entry(w.keyless, encrypted=False, signature_status="unsigned")
        return w.deliver(
            kind,
            "bob@example.net",
            {"correspondence": entry.id, "encrypted": False},
            vulnerability=w.keyless,
        )


for _key in (True, False):

    @case(f"follow-up-link-{'with' if _key else 'without'}-key", "follow-up-link")
    def _(w, key=_key):
        v = w.keyed if key else w.keyless
        w.follow_up(v)
        return w.deliver("follow-up-link", v.reporter_email, vulnerability=v)


@case("follow-up-link-revoked-since", "follow-up-link")
def _(w):
    return w.deliver("follow-up-link", "bob@example.net", vulnerability=w.keyless)


@case("reply-without-key-with-follow-up", "reply")
def _(w):
    w.follow_up(w.keyless)
    entry = w.entry(w.keyless, direction="out", text="Which version did you test?")
    return w.deliver(
        "reply", "bob@example.net", {"correspondence": entry.id}, vulnerability=w.keyless
    )


@case("rejected-with-key", "rejected")
def _(w):
    return w.deliver(
        "rejected",
        "ada@example.net",
        {
            "reason": "The parser only runs behind the authenticated admin interface, so an "
            "attacker would already need the admin's password to reach it."
        },
        vulnerability=w.keyed,
    )


@case("rejected-without-key", "rejected")
def _(w):
    return w.deliver(
        "rejected",
        "bob@example.net",
        {"reason": "A reason the reporter must not get unencrypted."},
        vulnerability=w.keyless,
    )


def _duplicate_of(w, original: Vulnerability, key: bool) -> Vulnerability:
    """A second reporter's report of what `original` is, marked a duplicate of it."""
    return w.vulnerability(
        "SEC-2026-0009",
        "Parser overflow (second report)",
        reporter_email="dan@example.com",
        reporter_name="Dan Finder",
        reporter_key=w.key(fpr("f")) if key else None,
        status="rejected",
        rejection_reason=f"Duplicate of {original.tracking_id}.",
        duplicate_of=original,
    )


for _key in (True, False):
    for _original in ("embargoed", "published"):

        @case(f"duplicate-{_original}-original-{'with' if _key else 'without'}-key", "duplicate")
        def _(w, key=_key, original=_original):
            first = w.keyed if original == "embargoed" else w.published
            v = _duplicate_of(w, first, key)
            payload = {"original": first.tracking_id, "credited": "Dan Finder" if key else ""}
            return w.deliver("duplicate", "dan@example.com", payload, vulnerability=v)


@case("duplicate-undone", "duplicate")
def _(w):
    v = _duplicate_of(w, w.keyed, True)
    Vulnerability.update(status="triage", duplicate_of=None, rejection_reason="").where(
        Vulnerability.id == v.id
    ).execute()
    payload = {"original": w.keyed.tracking_id, "undone": True}
    return w.deliver("duplicate", "dan@example.com", payload, vulnerability=v)


@case("reply-with-key", "reply")
def _(w):
    entry = Correspondence.create(
        vulnerability=w.keyed,
        direction="out",
        author=w.mira,
        at=w.at,
        subject=f"Re: {w.keyed.title}",
        text=(
            "Thank you, Ada. We reproduced the overflow and a fix is planned for 2.4.1; we "
            "suggest an embargo until the 20th of January.\n\n> Can I publish in January?\n\n"
            "Yes, from the embargo's end."
        ),
        signature_status="signed",
        encrypted=True,
    )
    return w.deliver(
        "reply", "ada@example.net", {"correspondence": entry.id}, vulnerability=w.keyed
    )


@case("reply-without-key", "reply")
def _(w):
    entry = Correspondence.create(
        vulnerability=w.keyless,
        direction="out",
        author=w.mira,
        at=w.at,
        subject=f"Re: {w.keyless.title}",
        text="A reply the reporter must not get unencrypted.",
        signature_status="signed",
        encrypted=False,
    )
    return w.deliver(
        "reply", "bob@example.net", {"correspondence": entry.id}, vulnerability=w.keyless
    )


def _embargo_payload(w, kind: str, reason: str = "") -> dict:
    before = w.keyed.embargo_until
    after = before + days(14) if kind == "extend" else w.at + days(2)
    return {
        "before": before.isoformat(),
        "after": after.isoformat(),
        "kind": kind,
        "reason": reason
        or (
            "The fix needs a change to the wire format, and two product makers asked for two "
            "more weeks to deploy it."
            if kind == "extend"
            else "The issue was disclosed on a public mailing list this morning."
        ),
    }


for _change in ("extend", "early-lift"):

    @case(f"embargo-changed-{_change}-reporter-with-key", "embargo-changed")
    def _(w, change=_change):
        payload = _embargo_payload(w, change)
        return w.deliver("embargo-changed", "ada@example.net", payload, vulnerability=w.keyed)

    @case(f"embargo-changed-{_change}-team-with-key", "embargo-changed")
    def _(w, change=_change):
        payload = _embargo_payload(w, change)
        return w.deliver(
            "embargo-changed", w.mira.email, payload, vulnerability=w.keyed, user=w.mira
        )

    @case(f"embargo-changed-{_change}-team-without-key", "embargo-changed")
    def _(w, change=_change):
        payload = _embargo_payload(w, change)
        return w.deliver("embargo-changed", w.tom.email, payload, vulnerability=w.keyed, user=w.tom)


@case("embargo-changed-extend-reporter-without-key", "embargo-changed")
def _(w):
    payload = _embargo_payload(w, "extend")
    return w.deliver("embargo-changed", "bob@example.net", payload, vulnerability=w.keyless)


@case("embargo-changed-extend-case-reporter-with-key", "embargo-changed")
def _(w):
    payload = {**_embargo_payload(w, "extend"), "moved": ["SEC-2026-0001", "SEC-2026-0006"]}
    return w.deliver("embargo-changed", "ada@example.net", payload, vulnerability=w.keyed)


@case("embargo-changed-extend-case-team-with-key", "embargo-changed")
def _(w):
    payload = {**_embargo_payload(w, "extend"), "moved": ["SEC-2026-0001", "SEC-2026-0006"]}
    return w.deliver("embargo-changed", w.mira.email, payload, vulnerability=w.keyed, user=w.mira)


@case("alert-embargo-extend-case-with-key", "alert-embargo")
def _(w):
    payload = _embargo_payload(w, "extend")
    del payload["reason"]
    payload["vulnerabilities"] = [w.keyed.id, w.keyless.id]
    return w.deliver(
        "alert-embargo",
        w.maker.user.email,
        {"registrant": w.maker.id, **payload},
        vulnerability=w.keyed,
        user=w.maker.user,
        fingerprint=w.maker.pinned_fingerprint,
    )


# Mail to the team


def _report_with_files(w) -> Correspondence:
    entry = w.entry(
        w.keyed,
        text="",
        subject="Report: heap overflow",
        unencrypted_parts=json.dumps(["the cover note"]),
    )
    received(
        entry,
        "report.txt",
        b"The length field of a packet is trusted by parse_packet().\r\nSee poc.py.\r\n",
    )
    received(
        entry,
        "poc.py",
        b"import socket\nsocket.create_connection(('target', 4711)).send(b'\\xff' * 9000)\n",
        content_type="text/x-python",
    )
    received(
        entry,
        "capture.pcap",
        None,
        content_type="application/vnd.tcpdump.pcap",
        dropped="larger than the 25 MB the intake keeps",
    )
    return entry


@case("team-forward-new-report-with-key", "team-forward")
def _(w):
    entry = _report_with_files(w)
    return w.deliver(
        "team-forward",
        w.mira.email,
        {"correspondence": entry.id},
        vulnerability=w.keyed,
        user=w.mira,
    )


@case("team-forward-reply-with-key", "team-forward")
def _(w):
    w.entry(w.keyed)  # the report, first
    reply = w.entry(
        w.keyed,
        at=w.at - hours(1),
        subject="Re: Heap overflow in the packet parser",
        text=(
            "One more detail: version 1.9 is affected too, as this log line from a 1.9 "
            "installation shows when the same packet arrives.\n\n"
            "> frobnicatord[812]: parse_packet: length 9000 exceeds buffer, continuing anyway\n"
        ),
        encrypted=False,
        signature_status="unsigned",
        signer_fingerprint=None,
    )
    return w.deliver(
        "team-forward",
        w.mira.email,
        {"correspondence": reply.id},
        vulnerability=w.keyed,
        user=w.mira,
    )


@case("team-forward-new-report-without-key", "team-forward")
def _(w):
    entry = _report_with_files(w)
    return w.deliver(
        "team-forward", w.tom.email, {"correspondence": entry.id}, vulnerability=w.keyed, user=w.tom
    )


@case("lift-held", "lift-held")
def _(w):
    v = w.keyless
    return w.deliver(
        "lift-held",
        w.mira.email,
        {"status": "triage", "embargo_until": (w.at - hours(1)).isoformat()},
        vulnerability=v,
        user=w.mira,
    )


@case("preflight", "preflight")
def _(w):
    """What the pre-flight itself finds: no CVE id, no description, a vector the OSV schema
    refuses (stored before the form checked vectors)."""
    v = w.keyless
    Vulnerability.update(cve=None, description="", severity="CVSS:3.1/AV:Q", cvss_score=11.0).where(
        Vulnerability.id == v.id
    ).execute()
    v = Vulnerability.get_by_id(v.id)
    found = preflight.check(v, w.at, w.settings)
    payload = {"window": "24 hours", "embargo_until": v.embargo_until.isoformat()}
    payload["findings"] = [finding.for_mail(v) for finding in found]
    return w.deliver("preflight", w.mira.email, payload, vulnerability=v, user=w.mira)


@case("preflight-all-clear", "preflight")
def _(w):
    v = w.keyless
    payload = {"window": "1 hour", "embargo_until": v.embargo_until.isoformat(), "findings": []}
    return w.deliver("preflight", w.mira.email, payload, vulnerability=v, user=w.mira)


def _audit_case(w, later_end=None):
    """An auditor's report split into several: SEC-2026-0001 (with its CVE id) and three
    split from it, findings many-to-many, one rejected, one a duplicate."""
    root = w.keyed
    arc = w.vulnerability(
        "SEC-2026-0006",
        "Stack overflow in the ARC port's system call entry",
        case_root=root,
        status="triage",
        embargo_until=later_end or root.embargo_until,
    )
    shell = w.vulnerability(
        "SEC-2026-0007", "Shell history readable", case_root=root, status="rejected"
    )
    again = w.vulnerability(
        "SEC-2026-0008", "Heap overflow, second path", case_root=root, duplicate_of=root
    )
    w.vulnerability("SEC-2026-0009", "Timer race, not yet mapped", case_root=root)
    for v, labels in (
        (root, ["NCC-ZEP-001", "NCC-ZEP-024", "NCC-ZEP-025"]),
        (arc, ["NCC-ZEP-001", "NCC-ZEP-10"]),
        (shell, ["NCC-ZEP-2"]),
        (again, ["NCC-ZEP-026"]),
    ):
        for label in labels:
            Finding.create(vulnerability=v, label=label)
    return w.deliver("case-map", "ada@example.net", vulnerability=root)


@case("case-map-with-key", "case-map")
def _(w):
    return _audit_case(w)


@case("case-map-embargo-ends-differ-with-key", "case-map")
def _(w):
    return _audit_case(w, later_end=w.at + days(75))


@case("case-map-without-key", "case-map")
def _(w):
    root = w.keyless
    split = w.vulnerability("SEC-2026-0006", "A second finding", case_root=root, status="triage")
    Finding.create(vulnerability=split, label="NCC-ZEP-031")
    return w.deliver("case-map", "bob@example.net", vulnerability=root)


@case("reminder-lead-time", "reminder")
def _(w):
    return w.deliver(
        "reminder",
        w.mira.email,
        {"field": "lead_time", "step": "alert", "deadline": (w.at + days(20)).isoformat()},
        vulnerability=w.keyed,
        user=w.mira,
    )


for _field in ("fix_due", "embargo_until"):
    for _step, _offset in (("7 days", days(7)), ("1 day", days(1)), ("past", -hours(1))):

        @case(f"reminder-{_field.replace('_', '-')}-{_step.replace(' ', '-')}", "reminder")
        def _(w, field=_field, step=_step, offset=_offset):
            return w.deliver(
                "reminder",
                w.mira.email,
                {"field": field, "step": step, "deadline": (w.at + offset).isoformat()},
                vulnerability=w.keyed,
                user=w.mira,
            )


# Pre-disclosure alerts and what follows them


def _advisory(w, version: int = 1) -> Advisory:
    v = w.keyed
    if version == 1:
        content = (
            b"--- a/src/parser.c\n+++ b/src/parser.c\n@@ -40,3 +40,5 @@\n"
            b"+    if (length > sizeof buffer)\n+        return -1;\n"
        )
        Patch.create(
            vulnerability=v,
            filename="0001-parser-check-the-length-field.patch",
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            uploaded_by=w.mira,
            uploaded_at=w.at - days(2),
        )
    patches = [p.id for p in Patch.select().where(Patch.vulnerability == v).order_by(Patch.id)]
    return Advisory.create(
        vulnerability=v,
        version=version,
        subject=f"{v.tracking_id} v{version}: {v.title}",
        text=alerts.draft(v, w.settings, version),  # the text the desk fills in
        created_by=w.mira,
        created_at=w.at,
        attachments=json.dumps(patches),
    )


@case("alert-with-key", "alert")
def _(w):
    advisory = _advisory(w)
    return w.deliver(
        "alert",
        w.maker.user.email,
        {"registrant": w.maker.id},
        advisory=advisory,
        vulnerability=w.keyed,
        user=w.maker.user,
        fingerprint=w.maker.pinned_fingerprint,
    )


@case("alert-v2-with-key", "alert")
def _(w):
    _advisory(w, 1)
    advisory = _advisory(w, 2)
    return w.deliver(
        "alert",
        w.maker.user.email,
        {"registrant": w.maker.id},
        advisory=advisory,
        vulnerability=w.keyed,
        user=w.maker.user,
        fingerprint=w.maker.pinned_fingerprint,
    )


@case("alert-key-unusable-since-queued", "alert")
def _(w):
    advisory = _advisory(w)
    return w.deliver(
        "alert",
        w.keyless_maker.user.email,
        {"registrant": w.keyless_maker.id},
        advisory=advisory,
        vulnerability=w.keyed,
        user=w.keyless_maker.user,
        fingerprint=w.keyless_maker.pinned_fingerprint,
    )


@case("alert-missed", "alert-missed")
def _(w):
    advisory = _advisory(w)
    return w.deliver(
        "alert-missed",
        w.keyless_maker.user.email,
        {"registrant": w.keyless_maker.id},
        advisory=advisory,
        vulnerability=w.keyed,
        user=w.keyless_maker.user,
        fingerprint=w.keyless_maker.pinned_fingerprint,
    )


# The one reminder to answer an alert (#17, app.registry.nudges), 14 days before the lift: to a
# registrant who read the alert (encrypted, the ids and a link to the alert's page), and to one
# who missed it (signed, the tracking id alone).
for _who, _name in (("maker", "with-key"), ("keyless_maker", "without-key")):

    @case(f"answer-nudge-{_name}", "answer-nudge")
    def _(w, who=_who):
        registrant = getattr(w, who)
        advisory = _advisory(w)
        Vulnerability.update(embargo_until=w.at + days(14)).where(
            Vulnerability.id == w.keyed.id
        ).execute()
        w.deliver(
            "alert" if registrant.key.usable else "alert-missed",
            registrant.user.email,
            {"registrant": registrant.id},
            advisory=advisory,
            vulnerability=w.keyed,
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
        )
        return w.deliver(
            "answer-nudge",
            registrant.user.email,
            {"registrant": registrant.id},
            vulnerability=Vulnerability.get_by_id(w.keyed.id),
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
        )


def _bundle(w) -> Advisory:
    """One advisory for two vulnerabilities (alerts.send_many): SEC-2026-0001 v2 and the bare
    SEC-2026-0002 v1; the deliveries carry the first."""
    _advisory(w, 1)
    bundle = AdvisoryBundle.create(subject="", text="", created_by=w.mira, created_at=w.at)
    versions = []
    for v, version in ((w.keyed, 2), (w.keyless, 1)):
        versions.append(
            Advisory.create(
                vulnerability=v,
                version=version,
                subject=f"{v.tracking_id} v{version}: {v.title}",
                text=alerts.draft(v, w.settings, version, bundled=True),
                created_by=w.mira,
                created_at=w.at,
                attachments=json.dumps(
                    [p.id for p in Patch.select().where(Patch.vulnerability == v)]
                ),
                bundle=bundle,
            )
        )
    bundle.subject = alerts.bundle_subject(versions)
    bundle.text = alerts.bundle_text(versions, "Both are fixed in Frobnicator 2.4.1.")
    bundle.save()
    return versions[0]


for _name, _kind, _who in (
    ("alert-bundle-with-key", "alert", "maker"),
    ("alert-missed-bundle", "alert-missed", "keyless_maker"),
):

    @case(_name, _kind)
    def _(w, kind=_kind, who=_who):
        registrant = getattr(w, who)
        return w.deliver(
            kind,
            registrant.user.email,
            {"registrant": registrant.id},
            advisory=_bundle(w),
            vulnerability=w.keyed,
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
        )


for _change in ("extend", "early-lift"):
    for _variant, _who in (("with-key", "maker"), ("without-key", "keyless_maker")):

        @case(f"alert-embargo-{_change}-{_variant}", "alert-embargo")
        def _(w, change=_change, who=_who):
            registrant = getattr(w, who)
            payload = _embargo_payload(w, change)
            del payload["reason"]
            return w.deliver(
                "alert-embargo",
                registrant.user.email,
                {"registrant": registrant.id, **payload},
                vulnerability=w.keyed,
                user=registrant.user,
                fingerprint=registrant.pinned_fingerprint,
            )


# Answers to alerts by mail (app/registry/mail_answers.py)


def _answers(w, advisories: list[Advisory], **fields) -> list[Answer]:
    values = {
        "status": "not_affected",
        "justification": "vulnerable_code_not_present",
        "statement": "Our appliances build the frobnicator without the packet parser.",
        "public_consent": True,
    }
    values.update(fields)
    return [
        Answer.create(
            registrant=w.maker,
            vulnerability=a.vulnerability,
            advisory=a,
            via="mail",
            at=w.at,
            **values,
        )
        for a in advisories
    ]


for _variant, _who in (("with-key", "maker"), ("without-key", "keyless_maker")):

    @case(f"answer-recorded-{_variant}", "answer-recorded")
    def _(w, who=_who):
        registrant = getattr(w, who)
        advisory = _advisory(w)
        rows = _answers(w, [advisory])
        return w.deliver(
            "answer-recorded",
            registrant.user.email,
            {"registrant": registrant.id, "advisory": advisory.id, "answers": [r.id for r in rows]},
            user=registrant.user,
            fingerprint=registrant.pinned_fingerprint,
        )


@case("answer-recorded-bundle", "answer-recorded")
def _(w):
    first = _bundle(w)
    rows = _answers(w, alerts.carried(first), statement="", public_consent=False)
    rows[1].status, rows[1].justification = "affected", None
    rows[1].save()
    return w.deliver(
        "answer-recorded",
        w.maker.user.email,
        {"registrant": w.maker.id, "advisory": first.id, "answers": [r.id for r in rows]},
        user=w.maker.user,
        fingerprint=w.maker.pinned_fingerprint,
    )


@case("answer-refused", "answer-refused")
def _(w):
    advisory = _advisory(w)
    reason = (
        "Unknown status 'maybe': write one of affected, not_affected, fixed, under_investigation."
    )
    return w.deliver(
        "answer-refused",
        w.maker.user.email,
        {"message": 1, "reason": reason, "advisory": advisory.id},
    )


@case("answer-refused-stranger", "answer-refused")
def _(w):
    return w.deliver(
        "answer-refused", "someone@example.net", {"message": 1, "reason": "", "advisory": None}
    )


# At the lift


@case("announcement", "announcement")
def _(w):
    return w.deliver("announcement", "announce@lists.example.org", vulnerability=w.published)


@case("announcement-minimal", "announcement")
def _(w):
    return w.deliver("announcement", "announce@lists.example.org", vulnerability=w.published_plain)


@case("embargo-lifted", "embargo-lifted")
def _(w):
    return w.deliver(
        "embargo-lifted",
        w.maker.user.email,
        {"registrant": w.maker.id},
        vulnerability=w.published,
        user=w.maker.user,
    )


@case("embargo-lifted-without-cve", "embargo-lifted")
def _(w):
    return w.deliver(
        "embargo-lifted",
        w.maker.user.email,
        {"registrant": w.maker.id},
        vulnerability=w.published_plain,
        user=w.maker.user,
    )


@case("publication-credited-with-key", "publication")
def _(w):
    return w.deliver("publication", "ada@example.net", vulnerability=w.published)


@case("publication-opted-out-without-key", "publication")
def _(w):
    return w.deliver("publication", "carol@example.net", vulnerability=w.published_plain)


@case("publication-uncredited-without-key", "publication")
def _(w):
    return w.deliver("publication", "anon@example.net", vulnerability=w.published_uncredited)


# A case's members published together (one publication), and a duplicate's reporter


def _lifted_together(w) -> dict:
    return {"vulnerabilities": [w.published.id, w.published_uncredited.id]}


@case("announcement-case", "announcement")
def _(w):
    return w.deliver(
        "announcement", "announce@lists.example.org", _lifted_together(w), vulnerability=w.published
    )


@case("embargo-lifted-case", "embargo-lifted")
def _(w):
    return w.deliver(
        "embargo-lifted",
        w.maker.user.email,
        {"registrant": w.maker.id, **_lifted_together(w)},
        vulnerability=w.published,
        user=w.maker.user,
    )


@case("publication-case-with-key", "publication")
def _(w):
    return w.deliver(
        "publication", "ada@example.net", _lifted_together(w), vulnerability=w.published
    )


@case("publication-duplicate-without-key", "publication")
def _(w):
    duplicate = w.vulnerability(
        "SEC-2026-0009",
        "Signature bypass with a detached signature",
        reporter_email="dan@example.net",
        reporter_name="Dan",
        status="rejected",
        duplicate_of=w.published,
    )
    return w.deliver(
        "publication", "dan@example.net", {"duplicate": duplicate.id}, vulnerability=w.published
    )


# The registry


def _applicant(w, email: str, proven: bool) -> tuple[Registrant, PublicKey]:
    user = w.user(email, "registrant")
    key = w.key(fpr("f") if proven else fpr("9"), owner=user, usable=proven)
    registrant = Registrant.create(
        user=user,
        organisation="Vendor AG",
        status="pending_review" if proven else "unverified",
        key=key if proven else None,
        pinned_fingerprint=key.fingerprint if proven else None,
        created_at=w.at - hours(3),
        updated_at=w.at - hours(3),
    )
    return registrant, key


@case("verify-key", "verify-key")
def _(w):
    registrant, key = _applicant(w, "new@vendor.example", proven=False)
    return w.deliver(
        "verify-key",
        registrant.user.email,
        {"registrant": registrant.id, "key": key.id},
        user=registrant.user,
        fingerprint=key.fingerprint,
    )


_REJECTION = (
    "We could not confirm that Vendor AG ships products built on the Frobnicator: the "
    "website you gave lists none, and the justification names no product."
)


@case("registrant-rejected-with-key", "registrant-rejected")
def _(w):
    registrant, _key = _applicant(w, "proven@vendor.example", proven=True)
    return w.deliver(
        "registrant-rejected",
        registrant.user.email,
        {"reason": _REJECTION},
        user=registrant.user,
    )


@case("registrant-rejected-without-key", "registrant-rejected")
def _(w):
    registrant, _key = _applicant(w, "unproven@vendor.example", proven=False)
    return w.deliver(
        "registrant-rejected",
        registrant.user.email,
        {"reason": _REJECTION},
        user=registrant.user,
    )


for _step in ("30 days", "14 days", "3 days"):

    @case(f"key-expiry-{_step.replace(' ', '-')}", "key-expiry")
    def _(w, step=_step):
        expires = w.at + days(int(step.split()[0]))
        Registrant.update(encryption_expires=expires).where(Registrant.id == w.maker.id).execute()
        return w.deliver(
            "key-expiry",
            w.maker.user.email,
            {"registrant": w.maker.id, "expires": expires.isoformat(), "step": step},
            user=w.maker.user,
            fingerprint=w.maker.pinned_fingerprint,
        )


@case("reconfirm", "reconfirm")
def _(w):
    since = w.at - days(366)
    return w.deliver(
        "reconfirm",
        w.maker.user.email,
        {
            "registrant": w.maker.id,
            "since": since.isoformat(),
            "deadline": (w.at + days(30)).isoformat(),
        },
        user=w.maker.user,
        fingerprint=w.maker.pinned_fingerprint,
    )


@case("reconfirm-without-key", "reconfirm")
def _(w):
    since = w.at - days(366)
    return w.deliver(
        "reconfirm",
        w.keyless_maker.user.email,
        {
            "registrant": w.keyless_maker.id,
            "since": since.isoformat(),
            "deadline": (w.at + days(30)).isoformat(),
        },
        user=w.keyless_maker.user,
        fingerprint=w.keyless_maker.pinned_fingerprint,
    )


for _event in ("key-expiring", "key-expired", "suspended"):

    @case(f"registry-admin-{_event}", "registry-admin")
    def _(w, event=_event):
        extra = (
            {"reason": "not re-confirmed within 30 days"}
            if event == "suspended"
            else {
                "expires": (w.at + (days(14) if event == "key-expiring" else -hours(1))).isoformat()
            }
        )
        return w.deliver(
            "registry-admin",
            w.admin.email,
            {
                "event": event,
                "registrant": w.maker.id,
                "email": w.maker.user.email,
                "organisation": w.maker.organisation,
                **extra,
            },
            user=w.admin,
        )


# Accounts


@case("password-reset-registrant-with-key", "password-reset")
def _(w):
    return w.deliver("password-reset", w.maker.user.email, user=w.maker.user)


@case("password-reset-team-without-key", "password-reset")
def _(w):
    return w.deliver("password-reset", w.tom.email, user=w.tom)


@case("password-reset-team-with-key", "password-reset")
def _(w):
    return w.deliver("password-reset", w.mira.email, user=w.mira)


for _via, _carried in (("one-click", True), ("link", True), ("link", False), ("status", False)):

    @case(
        f"unsubscribed-{_via}{'' if _carried or _via == 'status' else '-alert-gone'}",
        "unsubscribed",
    )
    def _(w, via=_via, carried=_carried):
        carrier = None
        if via != "status" and carried:
            carrier = w.deliver(
                "alert", w.maker.user.email, {"registrant": w.maker.id}, user=w.maker.user
            ).id
        elif via != "status":
            carrier = 10**9  # an alert since deleted: no row has this id (ids are never reused
            # the same way by SQLite and PostgreSQL, so a deleted row's id would not do)
        return w.deliver(
            "unsubscribed",
            w.maker.user.email,
            {
                "registrant": w.maker.id,
                "via": via,
                "delivery": carrier,
                "at": w.at.isoformat(),
            },
            user=w.maker.user,
        )


@case("sign-up-attempt", "sign-up-attempt")
def _(w):
    return w.deliver(
        "sign-up-attempt",
        w.maker.user.email,
        {"at": (w.at - hours(1)).isoformat()},
        user=w.maker.user,
    )


# The service key


for _step in ("60 days", "30 days", "expired"):

    @case(f"service-key-expiry-{_step.replace(' ', '-')}", "service-key-expiry")
    def _(w, step=_step):
        expires = w.at - hours(1) if step == "expired" else w.at + days(int(step.split()[0]))
        return w.deliver(
            "service-key-expiry",
            w.admin.email,
            {"fingerprint": w.service_key, "expires": expires.isoformat(), "step": step},
            user=w.admin,
        )


for _certified in (True, False):

    @case(f"key-rotation-{'certified' if _certified else 'uncertified'}", "key-rotation")
    def _(w, certified=_certified):
        return w.deliver(
            "key-rotation",
            w.maker.user.email,
            {
                "registrant": w.maker.id,
                "old": fpr("7"),
                "new": w.service_key,
                "certified": certified,
            },
            user=w.maker.user,
        )


REVOCATION = (
    "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
    "mDMEZ0FPRUlXQVJOREVOVEVTVFJFVk9DQVRJT04=\n"
    "-----END PGP PUBLIC KEY BLOCK-----\n"
)


def _compromise(w) -> dict:
    return {
        "old": fpr("7"),
        "new": w.service_key,
        "since": (w.at - days(3)).isoformat(),
        "revocation": REVOCATION,
    }


@case("key-compromise", "key-compromise")
def _(w):
    return w.deliver(
        "key-compromise",
        w.maker.user.email,
        {"registrant": w.maker.id, **_compromise(w)},
        user=w.maker.user,
    )


@case("key-compromise-reporter", "key-compromise-reporter")
def _(w):
    return w.deliver(
        "key-compromise-reporter",
        "ada@example.net",
        {"reports": ["SEC-2026-0001", "SEC-2026-0007"], **_compromise(w)},
    )


# -- rendering and normalising ------------------------------------------------------------------


_TOKEN_IN_LINK = re.compile(
    re.escape(BASE_URL) + r"(/[^\s]*?/)([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-.]+)(?=[\s)>,]|$)"
)


_ANSWERS_ADDRESS = re.compile(r"security-answers\+[0-9]+-[a-z0-9]+@")
_ADVISORY_PAGE = re.compile(re.escape(BASE_URL) + r"/registry/advisories/[0-9]+")


def normalise(text: str, service_key: str) -> str:
    """Replace what differs between runs: the service key (generated per test), signed
    tokens in links (itsdangerous: dot-separated, signed with the instance's secret), and
    advisory ids (each case is rolled back, and PostgreSQL's sequences do not roll back)."""
    text = text.replace(service_key, "<SERVICE-KEY-FINGERPRINT>")
    text = text.replace(service_key[-16:], "<SERVICE-KEY-ID>")
    text = _ANSWERS_ADDRESS.sub("security-answers+<advisory>-<token>@", text)
    text = _ADVISORY_PAGE.sub(f"{BASE_URL}/registry/advisories/<advisory>", text)

    def token(match: re.Match) -> str:
        found = match.group(2)
        if len(found) < 20:  # a file name such as key.asc, not a token
            return match.group(0)
        return f"{BASE_URL}{match.group(1)}<token>"

    return _TOKEN_IN_LINK.sub(token, text)


def record(case: Case, text: letters.Text, service_key: str) -> str:
    """What the golden file holds: the headers that matter, then the body as composed."""
    lines = [
        f"kind: {case.kind}",
        f"subject: {text.subject}",
        f"outer-subject: {text.outer_subject}",
        "encrypted-to: "
        + (
            text.certificate.fingerprint
            if text.certificate is not None
            else "(none: not encrypted)"
        ),
        f"signed: {'no' if text.unsigned else 'yes'}",
    ]
    for attachment in text.attachments:
        lines.append(
            f"attachment: {attachment.filename} ({attachment.content_type}, "
            f"{len(attachment.content)} bytes, sha256 "
            f"{hashlib.sha256(attachment.content).hexdigest()})"
        )
    head = "\n".join(lines)
    body = text.body if text.body.endswith("\n") else text.body + "\n(no newline at the end)\n"
    return normalise(f"{head}\n======== body ========\n{body}", service_key)


def render_all(db, world: World, keyring, settings) -> dict[str, tuple[Case, letters.Text, dict]]:
    """Each case's rows are made, composed and rolled back, so every case starts from the
    same world (and a new report is the first of its vulnerability)."""
    rendered = {}
    for each in CASES:
        with db.atomic() as transaction:
            delivery = Delivery.get_by_id(each.build(world).id)  # read back, as a worker does
            assert delivery.kind == each.kind, each.name
            text = letters.text_for(delivery, keyring, settings, world.at)
            rendered[each.name] = (each, text, json.loads(delivery.payload or "{}"))
            transaction.rollback()
    return rendered


@pytest.fixture
def world(db, clock, settings, keyring):
    w = World(clock.at, settings)
    w.service_key = keyring.fingerprint()
    return w


@pytest.fixture
def rendered(db, world, keyring, settings):
    return render_all(db, world, keyring, settings)


def test_every_kind_of_mail_reads_as_its_golden_file(rendered, world):
    GOLDEN.mkdir(parents=True, exist_ok=True)
    produced = {}
    failures = []
    for name, (each, text, _payload) in rendered.items():
        actual = record(each, text, world.service_key)
        produced[name] = actual
        path = GOLDEN / f"{name}.txt"
        if UPDATE:
            if not path.exists() or path.read_text(encoding="utf-8") != actual:
                path.write_text(actual, encoding="utf-8")
            continue
        if not path.exists():
            failures.append(
                f"{path.relative_to(ROOT)} is missing (FOREWARN_GOLDEN_UPDATE=1 writes it)"
            )
            continue
        expected = path.read_text(encoding="utf-8")
        if expected != actual:
            diff = difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path.relative_to(ROOT)} (golden)",
                tofile=f"{name} (as composed now)",
            )
            failures.append("".join(diff))
    stale = sorted(p for p in GOLDEN.glob("*.txt") if p.stem not in produced)
    if UPDATE:
        for path in stale:
            path.unlink()
    else:
        failures += [
            f"{p.relative_to(ROOT)} is rendered by no case (FOREWARN_GOLDEN_UPDATE=1 removes it)"
            for p in stale
        ]
    if failures:
        pytest.fail(
            f"{len(failures)} mail(s) differ from their golden text; if the change is intended, "
            "run FOREWARN_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/test_golden_mail.py "
            "and review the files with git diff\n\n" + "\n".join(failures),
            pytrace=False,
        )


# -- 72 columns -------------------------------------------------------------------------------


_EXEMPT = re.compile(r"https?://|\b[0-9A-F]{40}\b|\b[0-9A-F]{64}\b|\b[0-9a-f]{64}\b")


def overlong_lines(name: str, body: str) -> list[str]:
    """Lines over 72 columns that are not a URL, a fingerprint (or sha256) or quoted text."""
    found = []
    for line in body.splitlines():
        if len(line) <= WIDTH or _EXEMPT.search(line) or line.startswith(">"):
            continue
        found.append(line)
    return found


def test_mail_is_wrapped_at_72_columns(rendered, world):
    offenders, known_seen = [], set()
    for name, (_each, text, _payload) in rendered.items():
        for line in overlong_lines(name, text.body):
            known = {k for k in KNOWN_OVERLONG if k[0] == name and line.startswith(k[1])}
            if known:
                known_seen |= known
                continue
            shown = normalise(line, world.service_key)
            offenders.append(f"{name}: {len(line)} columns: {shown}")
    gone = sorted(KNOWN_OVERLONG - known_seen)
    if offenders:
        pytest.fail(
            "lines over 72 columns (wrap the template or the text):\n" + "\n".join(offenders),
            pytrace=False,
        )
    if gone:
        pytest.fail(f"known long lines no longer occur: remove from KNOWN_OVERLONG {gone}")


# -- every kind in the code has a case -----------------------------------------------------------


def _strings(node: ast.AST, constants: dict[str, set[str]]) -> set[str]:
    """The string constants an expression can be: a literal, a tuple/list/set of them, a
    conditional between them, or a module-level name bound to one of those."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return set().union(*(_strings(e, constants) for e in node.elts)) if node.elts else set()
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) | _strings(node.orelse, constants)
    if isinstance(node, ast.Name):
        return constants.get(node.id, set())
    return set()


def _is_kind(node: ast.AST) -> bool:
    """`<something>.kind` (delivery.kind, Delivery.kind, ...)."""
    return isinstance(node, ast.Attribute) and node.attr == "kind"


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# Calls whose first argument is a delivery's kind (app.outbox.deliveries: `queue("ack", ...)`,
# `queue_to_admins(...)`, `queue_to_team(...)`, `row(...)`; older private helpers by name).
QUEUEING = ("_queue", "_deliver", "queue", "deliver", "queue_to_admins", "queue_to_team", "row")


def kinds_in_code() -> dict[str, set[str]]:
    """Every delivery kind app/ queues or composes, with where it was seen: literals compared
    with `.kind` (`delivery.kind == "ack"`, `in (...)`, `Delivery.kind.in_(...)`), given as
    `kind=` to `Delivery.create`, or as the kind of a queueing call (`queue("ack", ...)`,
    `queue_to_team("lift-held", ...)`: QUEUEING); module-level names (KIND = "...") are
    followed."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants: dict[str, set[str]] = {}
        for statement in tree.body:
            if isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = _strings(statement.value, {})
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            kinds: set[str] = set()
            if isinstance(node, ast.Compare) and _is_kind(node.left):
                for comparator in node.comparators:
                    kinds |= _strings(comparator, constants)
            elif isinstance(node, ast.Call):
                name = _called(node)
                if name == "in_" and _is_kind(node.func.value):
                    for argument in node.args:
                        kinds |= _strings(argument, constants)
                elif name == "create" and getattr(node.func.value, "id", "") == "Delivery":
                    for keyword in node.keywords:
                        if keyword.arg == "kind":
                            kinds |= _strings(keyword.value, constants)
                elif name in QUEUEING and node.args:
                    kinds |= _strings(node.args[0], constants)
            for kind in kinds:
                found.setdefault(kind, set()).add(where)
    return found


def test_every_kind_of_delivery_in_the_code_has_a_golden_case():
    in_code = kinds_in_code()
    for kind in deliveries.KINDS:  # the kinds the outbox accepts and has a composer for
        in_code.setdefault(kind, set()).add("app/models/mail.py (DELIVERY_KINDS)")
    covered = {each.kind for each in CASES}
    missing = {kind: sorted(where) for kind, where in in_code.items() if kind not in covered}
    assert not missing, (
        "these delivery kinds are in app/ but no golden case renders them; add a case to "
        f"tests/test_golden_mail.py: {missing}"
    )
    unknown = covered - set(in_code)
    assert not unknown, f"cases for kinds app/ no longer has: {sorted(unknown)}"


def test_golden_case_names_are_unique_and_start_with_their_kind():
    names = [each.name for each in CASES]
    assert len(names) == len(set(names))
    for each in CASES:
        assert each.name == each.kind or each.name.startswith(f"{each.kind}-"), each.name


def test_every_step_of_the_reminders_and_warnings_has_a_case(rendered):
    """The steps are looked up in tables when the mail is composed: a new step in the code
    without a case would be a mail nobody has read."""
    from app.registry import renewal
    from app.servicekey import expiry as service_key
    from app.vulns import reminders

    seen = {
        (each.kind, payload.get("field"), payload.get("step"))
        for each, _t, payload in rendered.values()
    }
    wanted = {("reminder", "lead_time", "alert")}
    wanted |= {
        ("reminder", field, step)
        for field in ("fix_due", "embargo_until")
        for step, _before in reminders.STEPS
    }
    wanted |= {("service-key-expiry", None, step) for step, _before in service_key.STEPS}
    wanted |= {("key-expiry", None, step) for step, _before in renewal.REGISTRANT_STEPS}
    assert wanted - seen == set()
    events = {p.get("event") for each, _t, p in rendered.values() if each.kind == "registry-admin"}
    assert events == {"key-expiring", "key-expired", "suspended"}
