"""The finding map of a case: the reporter's labels (NCC-ZEP-031) to the vulnerabilities that
carry them and back, the labels the report mentions that no vulnerability carries yet, and the
one mail that tells the reporter the map (kind "case-map", composed in app/vulns/letters.py
when it is sent, so several changes within a minute give one mail).

Labels are compared without case, as app.vulns.cases.labelled searches them.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from app.core.db import serialise, write_transaction
from app.models import Correspondence, CveId, Delivery, Finding, Vulnerability
from app.outbox import deliveries
from app.reports import attachments
from app.vulns import cases

# How long the mail waits for further changes of the case before it is composed and sent.
BATCH = timedelta(seconds=60)
KIND = "case-map"

_NUMBERED = re.compile(r"^(.*?)([0-9]+)$")
# Around a token: not inside a longer word, path, version or id ("zephyr-2.7.0", "a/b-1").
_BEFORE = r"(?<![A-Za-z0-9_./:-])"
_AFTER = r"(?![A-Za-z0-9_-]|\.[A-Za-z0-9])"
# The common audit shape, when the team has set no label yet: groups of letters and digits
# joined by '-', each before the number holding a letter, at least two of them, ending in a
# number (NCC-ZEP-031, TOB-ZEPH-12).
# (The lookahead keeps it linear: no nested quantifiers to backtrack through on a long word.)
_AUDIT = re.compile(_BEFORE + r"((?:(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]+-){2,}[0-9]{1,6})" + _AFTER)
# Ids that are never a reporter's finding: CVE and CWE ids, GitHub advisories, and the
# algorithm and standard names that take the audit shape (HMAC-SHA-256).
_NOT_A_FINDING = re.compile(r"^(CVE|CWE|GHSA|OSV|PYSEC|RUSTSEC|GO|CAPEC)-", re.IGNORECASE)
_NAMES = re.compile(
    r"^(sha[0-9]*|hmac|aes|des|rsa|e?c?dsa|eddsa|ed|ecdh|dh|utf|iso|iec|rfc|ieee|d?tls|gcm|cbc"
    r"|ctr|ecb|ccm|ofb|cfb|x|crc|md|pkcs|fips|nist|sp)$"
)


def natural_key(label: str) -> tuple:
    """Sorts NCC-ZEP-2 before NCC-ZEP-10: digit runs compare as numbers, the rest without
    case."""
    parts = re.split(r"([0-9]+)", label)
    return tuple(int(p) if n % 2 else p.lower() for n, p in enumerate(parts))


def _same(label: str) -> tuple:
    """What makes two spellings one label: without case, and NCC-ZEP-31 is NCC-ZEP-031."""
    found = _NUMBERED.match(label)
    if found and found.group(1):
        return (found.group(1).lower(), int(found.group(2)))
    return (label.lower(), None)


@dataclass(frozen=True)
class Member:
    """One vulnerability of the case as the map shows it."""

    id: int
    tracking_id: str
    title: str
    status: str
    cve_id: str | None
    embargo_until: datetime | None
    duplicate_of: str | None  # the tracking id it duplicates
    labels: tuple[str, ...]

    @property
    def open(self) -> bool:
        """Still under embargo as a vulnerability of its own (not ended, not published)."""
        return self.status not in ("rejected", "published") and self.duplicate_of is None


@dataclass(frozen=True)
class FindingMap:
    case_id: str
    members: tuple[Member, ...]  # the root first, then in the order they were made
    by_label: tuple[tuple[str, tuple[Member, ...]], ...]  # natural order of the labels
    unlabelled: tuple[Member, ...]

    @property
    def labelled(self) -> bool:
        return bool(self.by_label)

    def embargo_ends(self) -> list[datetime | None]:
        """The distinct embargo ends of the vulnerabilities still under embargo, soonest first
        (None, not set yet, last)."""
        ends = {m.embargo_until for m in self.members if m.open}
        return sorted(ends, key=lambda end: (end is None, end or datetime.min))


def finding_map(v: Vulnerability) -> FindingMap:
    """v's case as the reporter's labels see it: label → vulnerabilities, each vulnerability
    with its labels, and the vulnerabilities without any (three queries)."""
    root = cases.root(v)
    original = Vulnerability.alias()
    rows = list(
        cases.members(v)
        .select(
            Vulnerability.id,
            Vulnerability.tracking_id,
            Vulnerability.title,
            Vulnerability.status,
            Vulnerability.embargo_until,
            CveId.cve_id,
            original.tracking_id.alias("original"),
        )
        .join(CveId, peewee.JOIN.LEFT_OUTER, on=(Vulnerability.cve == CveId.id))
        .switch(Vulnerability)
        .join(original, peewee.JOIN.LEFT_OUTER, on=(Vulnerability.duplicate_of == original.id))
        .dicts()
    )
    labels: dict[int, list[str]] = {}
    query = (
        Finding.select(Finding.vulnerability, Finding.label)
        .where(Finding.vulnerability.in_([row["id"] for row in rows]))
        .order_by(Finding.id)
    )
    for finding in query:
        labels.setdefault(finding.vulnerability_id, []).append(finding.label)
    members = tuple(
        Member(
            id=row["id"],
            tracking_id=row["tracking_id"],
            title=row["title"],
            status=row["status"],
            cve_id=row["cve_id"],
            embargo_until=row["embargo_until"],
            duplicate_of=row["original"],
            labels=tuple(sorted(labels.get(row["id"], []), key=natural_key)),
        )
        for row in rows
    )
    spelled: dict[tuple, str] = {}
    carriers: dict[tuple, list[Member]] = {}
    for member in members:
        for label in member.labels:
            key = _same(label)
            spelled.setdefault(key, label)
            if member not in carriers.setdefault(key, []):
                carriers[key].append(member)
    by_label = tuple(
        (spelled[key], tuple(carriers[key]))
        for key in sorted(spelled, key=lambda k: natural_key(spelled[k]))
    )
    return FindingMap(
        case_id=root.tracking_id,
        members=members,
        by_label=by_label,
        unlabelled=tuple(m for m in members if not m.labels),
    )


def _prefixes(carried: list[str]) -> list[str]:
    """The prefixes of the labels the team has set that end in a number and start with a
    letter somewhere before it (NCC-ZEP- of NCC-ZEP-001); longest first."""
    found = set()
    for label in carried:
        shaped = _NUMBERED.match(label)
        if shaped and re.search(r"[A-Za-z]", shaped.group(1)):
            found.add(shaped.group(1).lower())
    return sorted(found, key=lambda prefix: (-len(prefix), prefix))


def _any(token: str) -> bool:
    return True


def _audit_shaped(token: str) -> bool:
    groups = token.lower().split("-")[:-1]
    return not any(_NAMES.match(group) for group in groups)


def _tracking_shape(tracking_ids: list[str]) -> re.Pattern:
    """The desk's own ids (SEC-2026-0001, of this case or another): never a finding."""
    prefixes = {tid.rsplit("-", 2)[0] for tid in tracking_ids if tid.count("-") >= 2}
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes)) or r"(?!)"
    return re.compile(rf"^(?:{alternatives})-[0-9]{{4}}-[0-9]+$", re.IGNORECASE)


def mentioned(text: str, carried: list[str], tracking_ids: list[str]) -> list[str]:
    """The finding labels a text mentions, first spelling kept, in natural order: tokens
    with the prefix of a label the team has set, or, when none is set, of the audit shape;
    never a CVE, CWE or GHSA id nor one of the desk's tracking ids."""
    prefixes = _prefixes(carried)
    if prefixes:
        pattern = re.compile(
            _BEFORE + "((?:" + "|".join(re.escape(p) for p in prefixes) + r")[0-9]{1,6})" + _AFTER,
            re.IGNORECASE,
        )
        shaped = _any  # the team's own shape
    else:
        pattern, shaped = _AUDIT, _audit_shaped
    ours = _tracking_shape(tracking_ids)
    found: dict[tuple, str] = {}
    for match in pattern.finditer(text):
        token = match.group(1)
        if _NOT_A_FINDING.match(token) or ours.match(token) or not shaped(token):
            continue
        found.setdefault(_same(token), token)
    return sorted(found.values(), key=natural_key)


def report_texts(v: Vulnerability) -> list[str]:
    """What the reporter wrote to the case: every inbound entry's text and the attached files
    shown as the report (app.reports.attachments.report_text: decrypted text files, cut where
    the thread cuts them)."""
    ids = cases.member_ids(v)
    entries = list(
        Correspondence.select(Correspondence.id, Correspondence.text)
        .where(Correspondence.vulnerability.in_(ids), Correspondence.direction == "in")
        .order_by(Correspondence.id)
    )
    files = attachments.of_vulnerabilities(ids)
    texts = []
    for entry in entries:
        texts.append(entry.text or "")
        if files.get(entry.id):
            texts.extend(shown.text for shown in attachments.report_text(entry, files[entry.id]))
    return texts


def unclaimed(v: Vulnerability) -> list[str]:
    """Labels the case's report text mentions that no vulnerability of the case carries yet,
    in natural order."""
    members = list(cases.members(v).select(Vulnerability.id, Vulnerability.tracking_id))
    carried = [
        f.label
        for f in Finding.select(Finding.label).where(
            Finding.vulnerability.in_([m.id for m in members])
        )
    ]
    tracking_ids = [m.tracking_id for m in members]
    have = {_same(label) for label in carried}
    found: dict[tuple, str] = {}
    for text in report_texts(v):
        for label in mentioned(text, carried, tracking_ids):
            if _same(label) not in have:
                found.setdefault(_same(label), label)
    return sorted(found.values(), key=natural_key)


# -- the reporter's mail ------------------------------------------------------------------


def worth_telling(v: Vulnerability) -> bool:
    """Whether the reporter hears the map: a case of more than one, or one carrying labels
    (an ordinary single report gets no mail it did not get before)."""
    ids = cases.member_ids(v)
    return len(ids) > 1 or Finding.select().where(Finding.vulnerability.in_(ids)).exists()


def pending(v: Vulnerability, at: datetime) -> Delivery | None:
    """The case's mapping mail that is queued and not being sent right now (it will be
    composed from the case as it is when it goes)."""
    root = cases.root(v)
    return (
        Delivery.select()
        .where(
            Delivery.kind == KIND,
            Delivery.vulnerability == root.id,
            Delivery.state == "queued",
            Delivery.claimed_until.is_null() | (Delivery.claimed_until < at),
        )
        .order_by(Delivery.id)
        .first()
    )


def last_mail(v: Vulnerability) -> Delivery | None:
    """The case's latest mapping mail, whatever its state (for the case page)."""
    return (
        Delivery.select()
        .where(Delivery.kind == KIND, Delivery.vulnerability == cases.root(v).id)
        .order_by(Delivery.id.desc())
        .first()
    )


def last_sent(v: Vulnerability) -> Delivery | None:
    return (
        Delivery.select()
        .where(
            Delivery.kind == KIND,
            Delivery.vulnerability == cases.root(v).id,
            Delivery.state == "sent",
        )
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .first()
    )


def tell_reporter(v: Vulnerability, at: datetime) -> Delivery | None:
    """After a change of v's case (a split, labels, a state, ids): queue the mapping mail to
    the case's reporter, due a minute from `at`, unless one is queued already (it will carry
    this change too). Call it inside the transaction that makes the change. Returns the new
    delivery, or None when nothing was queued (one is pending, there is no reporter address,
    or the case is a case of one without labels)."""
    root = cases.root(v)
    if not root.reporter_email or not worth_telling(root):
        return None
    with write_transaction():
        serialise(f"casemap:{root.id}")  # two changes at once still give one mail
        if pending(root, at) is not None:
            return None
        return deliveries.queue(KIND, root.reporter_email, at + BATCH, vulnerability=root)
