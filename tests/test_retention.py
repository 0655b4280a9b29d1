"""Retention: raw mail and decrypted correspondence purged FOREWARN_RETENTION_DAYS after a
vulnerability's publication or rejection; quarantined and junk mail after its receipt."""

import json
from datetime import timedelta

import pytest

from app.core import audit
from app.core.config import load_settings
from app.core.errors import ConfigError
from app.models import AuditEvent, Correspondence, InboundMessage, Vulnerability
from app.privacy import retention

pytestmark = pytest.mark.db

DAYS = 365


def message(at, sender="rita@example.org", state="processed") -> InboundMessage:
    return InboundMessage.create(
        raw=b"From: " + sender.encode() + b"\r\n\r\nsecret details\r\n",
        sha256="0" * 64,
        envelope_from=sender,
        received_at=at,
        state=state,
    )


def vulnerability(number, at, status="published", **fields) -> Vulnerability:
    v = Vulnerability.create(
        tracking_id=f"SEC-{number}",
        title="overflow",
        status=status,
        reporter_email="rita@example.org",
        reported_at=at,
        created_at=at,
        updated_at=at,
        published_at=at if status == "published" else None,
        **fields,
    )
    for direction in ("in", "out"):
        Correspondence.create(
            vulnerability=v,
            direction=direction,
            message=message(at) if direction == "in" else None,
            at=at,
            subject=f"Re: overflow {direction}",
            text=f"decrypted {direction} text",
        )
    return v


def state_of(v: Vulnerability):
    rows = list(Correspondence.select().where(Correspondence.vulnerability == v.id))
    return (
        [(c.subject, c.text) for c in rows],
        [bytes(c.message.raw) for c in rows if c.message is not None],
    )


def reject(v: Vulnerability, at) -> None:
    audit.record(
        None,
        "vuln.status",
        at,
        target=v.tracking_id,
        details={"before": "triage", "after": "rejected"},
    )


def test_published_long_enough_ago_is_purged_and_newer_data_is_left(db, clock):
    old = vulnerability(1, clock.at - timedelta(days=DAYS, minutes=1))
    new = vulnerability(2, clock.at - timedelta(days=DAYS - 1))
    open_ = vulnerability(3, clock.at - timedelta(days=DAYS * 3), status="accepted")
    purged = retention.purge_due(clock.at, DAYS)
    assert (purged.vulnerabilities, purged.correspondence, purged.messages) == (1, 2, 1)
    mark = "[purged 2026-11-25]"
    assert state_of(old) == ([(mark, mark), (mark, mark)], [b""])
    for kept in (new, open_):
        texts, raws = state_of(kept)
        assert texts == [
            ("Re: overflow in", "decrypted in text"),
            ("Re: overflow out", "decrypted out text"),
        ]
        assert raws and raws[0].startswith(b"From: ")
    # The rows stay: ids and threading survive.
    assert Correspondence.select().count() == 6 and InboundMessage.select().count() == 3


def test_rejection_counts_from_the_rejection_not_the_report(db, clock):
    long_ago = clock.at - timedelta(days=DAYS * 2)
    early = vulnerability(1, long_ago, status="rejected")
    reject(early, clock.at - timedelta(days=DAYS + 1))
    late = vulnerability(2, long_ago, status="rejected")
    reject(late, clock.at - timedelta(days=10))
    purged = retention.purge_due(clock.at, DAYS)
    assert purged.vulnerabilities == 1
    assert state_of(early)[1] == [b""]
    assert state_of(late)[1] != [b""]


def test_quarantined_and_junk_mail_and_answers_are_purged_after_receipt(db, clock):
    old = clock.at - timedelta(days=DAYS + 1)
    junk = message(old, state="junk")
    quarantined = message(old, state="quarantined")
    answer = message(old, state="answer")  # a product maker's answer to an alert
    recent = message(clock.at - timedelta(days=5), state="junk")
    processed = message(old, state="processed")  # not junk: left alone
    purged = retention.purge_due(clock.at, DAYS)
    assert purged.unlinked == 3
    raws = {m.id: bytes(m.raw) for m in InboundMessage.select()}
    assert raws[junk.id] == raws[quarantined.id] == raws[answer.id] == b""
    assert raws[recent.id] and raws[processed.id]


def test_one_audit_event_per_run_with_counts_and_a_second_run_does_nothing(db, clock):
    vulnerability(1, clock.at - timedelta(days=DAYS + 30))
    message(clock.at - timedelta(days=DAYS + 30), state="junk")
    retention.purge_due(clock.at, DAYS)
    again = retention.purge_due(clock.at + timedelta(days=1), DAYS)
    assert again.total == 0
    events = list(AuditEvent.select().where(AuditEvent.action == retention.ACTION))
    assert len(events) == 1
    assert json.loads(events[0].details) == {
        "vulnerabilities": 1,
        "correspondence": 2,
        "messages": 1,
        "unlinked_messages": 1,
        "retention_days": DAYS,
    }
    assert "secret" not in events[0].details and "rita" not in events[0].details


def test_a_shorter_retention_purges_sooner(db, clock):
    v = vulnerability(1, clock.at - timedelta(days=31))
    assert retention.purge_due(clock.at, 90).total == 0
    assert retention.purge_due(clock.at, 30).vulnerabilities == 1
    assert state_of(v)[1] == [b""]


def test_the_reconcilers_tick_runs_once_a_day(db, clock, monkeypatch, env):
    monkeypatch.setattr(retention, "_last_run", None)
    settings = load_settings({**env, "FOREWARN_RETENTION_DAYS": "30"})
    vulnerability(1, clock.at - timedelta(days=31))
    assert retention.tick(clock.at, settings).vulnerabilities == 1
    vulnerability(2, clock.at - timedelta(days=31))
    assert retention.tick(clock.at, settings) is None  # not yet a day since the last run


def test_retention_days_setting(env):
    assert load_settings(env).retention_days == 365
    assert load_settings({**env, "FOREWARN_RETENTION_DAYS": "30"}).retention_days == 30
    for bad in ("0", "-5", "a year", "1.5"):
        with pytest.raises(ConfigError, match="FOREWARN_RETENTION_DAYS"):
            load_settings({**env, "FOREWARN_RETENTION_DAYS": bad})


def test_purge_due_command_prints_counts(forewarn, db, clock):
    vulnerability(1, clock.at - timedelta(days=400))
    done = forewarn("purge-due", extra_env={"FOREWARN_RETENTION_DAYS": "365"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "purged 2 correspondence and 1 raw messages of 1 vulnerabilities, and 0 unlinked "
        "messages (retention 365 days)"
    ]
    bad = forewarn("purge-due", extra_env={"FOREWARN_RETENTION_DAYS": "soon"})
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "FOREWARN_RETENTION_DAYS" in bad.stderr
