"""The harness itself: mail cannot escape, the clock freezes and moves."""

import smtplib
from datetime import UTC, datetime

import pytest

from app.core import clock as app_clock


def test_smtp_to_an_outside_relay_fails_the_test():
    with pytest.raises(pytest.fail.Exception, match="only local sinks"):
        smtplib.SMTP("smtp.example.org", 25, timeout=1)


def test_the_frozen_clock_moves_only_when_told(clock):
    start = app_clock.now()
    assert start == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert app_clock.now() == start
    clock.move(days=90)
    assert app_clock.now() == datetime(2027, 2, 23, 12, 0, tzinfo=UTC)


def test_the_clock_refuses_naive_times():
    with pytest.raises(ValueError):
        app_clock.freeze(datetime(2026, 1, 1))


def test_a_run_that_selects_no_test_fails():
    """CI must not pass quietly when a marker or a path selects nothing (pytest's exit 5)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_harness.py",
            "-k",
            "no_test_has_this_name",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stdout
