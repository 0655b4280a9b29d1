"""Every message the intake answered 250 is stored exactly once, however often it is killed:
several SMTP clients send at once while the intake is killed with -9 again and again (and
started again after each kill). Each message carries a unique Message-ID; the clients record
which got 250 and which were cut off after DATA began (those are never retried here, and may be
stored at most once).

Full size only (FOREWARN_FAULTS_FULL=1, `make faults`): the short version is
tests/test_intake_durability.py (150 messages, one client, 3 kills), which `make test` runs.
"""

import os
import re
import smtplib
import threading
import time
from collections import Counter

import pytest

from app.models import InboundMessage
from tests.conftest import wait_for
from tests.faults.helpers_mail import Intake

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        os.environ.get("FOREWARN_FAULTS_FULL", "") != "1",
        reason="full size only (FOREWARN_FAULTS_FULL=1); tests/test_intake_durability.py is the "
        "short version",
    ),
]

MESSAGES = 1000
CLIENTS = 8
KILLS = 6
MARKER = re.compile(rb"^Message-ID: <(fault-intake-\d{5})@example\.net>", re.MULTILINE)


def raw_message(token: str) -> bytes:
    return (
        f"From: ada@example.net\r\nTo: security@localhost\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@example.net>\r\n\r\n{token}\r\n" + "x" * 2000 + "\r\n"
    ).encode()


def test_every_message_that_got_250_is_stored_once_through_repeated_kill_minus_9(
    env, forewarn, db, tmp_path
):
    assert forewarn("init").returncode == 0
    intake = Intake(env, tmp_path)
    accepted: list[str] = []  # got 250
    cut_off: list[str] = []  # DATA begun, no 250 (a kill): not retried
    refused: list[str] = []  # a 4xx/5xx answer (the intake could not commit)
    lock = threading.Lock()
    stopping = threading.Event()

    def client(numbers: range) -> None:
        for n in numbers:
            token = f"fault-intake-{n:05d}"
            raw = raw_message(token)
            smtp = None
            while smtp is None and not stopping.is_set():  # connecting again is safe
                try:
                    smtp = smtplib.SMTP(intake.host, intake.port, timeout=10)
                except (OSError, smtplib.SMTPException):
                    stopping.wait(0.02)
            if smtp is None:
                return
            try:
                smtp.sendmail("ada@example.net", ["security@localhost"], raw)
                outcome = accepted
            except smtplib.SMTPResponseException:
                outcome = refused
            except (OSError, smtplib.SMTPException):
                outcome = cut_off
            finally:
                smtp.close()
            with lock:
                outcome.append(token)

    intake.start()
    kills = 0
    started = time.monotonic()
    threads = [
        threading.Thread(target=client, args=(range(i, MESSAGES, CLIENTS),)) for i in range(CLIENTS)
    ]
    try:
        wait_for(intake.answers, what="the intake")
        for thread in threads:
            thread.start()
        for kill in range(KILLS):
            wait_for(
                lambda k=kill: len(accepted) >= (k + 1) * MESSAGES // (KILLS + 1),
                timeout=120,
                interval=0.001,
                what=f"messages to flow\n{intake.logs()}",
            )
            intake.kill()
            kills += 1
            intake.start()
            wait_for(intake.answers, timeout=30, what="the restarted intake")
        for thread in threads:
            thread.join(300)
        assert not any(thread.is_alive() for thread in threads), "a client is stuck"
        seconds = time.monotonic() - started
    finally:
        stopping.set()
        intake.stop()

    stored = Counter()
    for row in InboundMessage.select(InboundMessage.raw):
        found = MARKER.search(bytes(row.raw))
        stored[found.group(1).decode() if found else None] += 1
    lost = [token for token in accepted if stored[token] == 0]
    duplicated = {token: n for token, n in stored.items() if n > 1}
    print(
        f"\nintake kills: {MESSAGES} messages from {CLIENTS} clients, {kills} kills, "
        f"{len(accepted)} got 250, {len(cut_off)} cut off by a kill "
        f"({sum(stored[t] for t in cut_off)} of them stored), {len(refused)} refused, "
        f"{len(lost)} lost, {len(duplicated)} duplicated, {seconds:.1f} s"
    )
    assert kills == KILLS
    assert len(accepted) + len(cut_off) + len(refused) == MESSAGES
    assert len(accepted) >= MESSAGES - KILLS * CLIENTS  # at most one cut off per client per kill
    assert None not in stored, "a stored message that no client sent"
    assert lost == []
    assert duplicated == {}
    assert set(stored) <= set(accepted) | set(cut_off)
