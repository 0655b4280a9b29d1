"""kill -9 the intake in the middle of a stream: every message that got 250 is stored once."""

import os
import signal
import smtplib
import subprocess
import sys
import threading

import pytest

from app.models import InboundMessage
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow
MESSAGES = 150
KILLS = 3


def start_intake(env):
    return subprocess.Popen(
        [sys.executable, "-m", "app", "intake"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def answers(host, port):
    try:
        with smtplib.SMTP(host, port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def test_every_message_that_got_250_survives_kill_minus_9_exactly_once(env, forewarn, db):
    assert forewarn("init").returncode == 0
    host, port = env["FOREWARN_INTAKE_LISTEN"].split(":")
    port = int(port)
    accepted, in_flight = [], []
    done, stopped = threading.Event(), threading.Event()

    def sender():
        for n in range(MESSAGES):
            token = f"durability-token-{n:04d}"
            raw = (
                f"From: ada@example.net\r\nTo: security@localhost\r\nSubject: {token}\r\n"
                f"Message-ID: <{token}@example.net>\r\n\r\n{token}\r\n" + "x" * 2000 + "\r\n"
            ).encode()
            smtp = None
            while smtp is None:  # connecting again is safe: nothing was sent yet
                try:
                    smtp = smtplib.SMTP(host, port, timeout=5)
                except (OSError, smtplib.SMTPException):
                    stopped.wait(0.05)
            try:
                smtp.sendmail("ada@example.net", ["security@localhost"], raw)
                accepted.append(token)
            except (OSError, smtplib.SMTPException):
                in_flight.append(token)  # sent, but no 250: not retried, may be stored once
            finally:
                smtp.close()
        done.set()

    process = start_intake(env)
    try:
        wait_for(lambda: answers(host, port), what="the intake")
        thread = threading.Thread(target=sender)
        thread.start()
        for kill in range(KILLS):
            wait_for(
                lambda k=kill: len(accepted) >= (k + 1) * MESSAGES // (KILLS + 1),
                timeout=60,
                interval=0.001,
                what="messages to flow",
            )
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process = start_intake(env)
            wait_for(lambda: answers(host, port), what="the restarted intake")
        thread.join(120)
        assert done.is_set()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    stored = [bytes(m.raw) for m in InboundMessage.select()]
    counts = {token: sum(token.encode() in raw for raw in stored) for token in accepted}
    lost = [t for t, c in counts.items() if c == 0]
    doubled = [t for t, c in counts.items() if c > 1]
    print(
        f"\nintake durability: {MESSAGES} messages, {KILLS} kills, {len(accepted)} got 250, "
        f"{len(in_flight)} in flight at a kill, {len(lost)} lost, {len(doubled)} duplicated"
    )
    assert len(accepted) >= MESSAGES - KILLS
    assert all(sum(t.encode() in raw for raw in stored) <= 1 for t in in_flight)
    assert lost == []
    assert doubled == []
