"""Each rule the code relies on is written once, in one place, and used from there (#14)."""

import ast
import re
from datetime import UTC, datetime, timedelta, timezone

from app.core import retry, steps, timefmt
from app.core.config import load_settings
from app.reports import inbound
from mail import addresses
from tests.conftest import ROOT


def _functions(relative: str) -> set[str]:
    tree = ast.parse((ROOT / relative).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_nearest_warning_step_reached_is_due_and_a_missed_one_is_skipped():
    ladder = (("past", timedelta(0)), ("1 day", timedelta(days=1)), ("7 days", timedelta(days=7)))
    deadline = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    assert steps.due(ladder, deadline, deadline - timedelta(days=8)) is None
    assert steps.due(ladder, deadline, deadline - timedelta(days=7)) == "7 days"
    assert steps.due(ladder, deadline, deadline - timedelta(hours=23)) == "1 day"
    assert steps.due(ladder, deadline, deadline + timedelta(days=30)) == "past"


def test_reminders_renewal_and_service_key_expiry_share_one_step_rule():
    for module in ("app/vulns/reminders.py", "app/registry/renewal.py", "app/servicekey/expiry.py"):
        assert "_step" not in _functions(module), module
        assert "steps.due(" in (ROOT / module).read_text(), module


def test_what_was_sent_already_is_looked_up_one_way():
    """Renewal, the service key's expiry and rotation, and the lift's hold notice ask the
    audit log through app.core.audit.already, never by reading details JSON themselves."""
    for module in (
        "app/registry/renewal.py",
        "app/servicekey/expiry.py",
        "app/servicekey/rotation.py",
        "app/disclosure/lift.py",
    ):
        text = (ROOT / module).read_text()
        assert "AuditEvent.select" not in text, module
        assert "audit.already(" in text, module


def test_a_failed_delivery_waits_longer_each_time_up_to_six_hours():
    waits = [retry.backoff(n, retry.DELIVERY_BACKOFF) for n in range(1, 9)]
    assert waits == [timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 360, 360)]
    publication = [retry.backoff(n, retry.PUBLICATION_BACKOFF) for n in range(1, 6)]
    assert publication == [timedelta(minutes=m) for m in (1, 5, 15, 60, 60)]


def test_the_lease_is_five_minutes_for_deliveries_and_inbound_mail_alike():
    assert retry.LEASE == timedelta(minutes=5) == inbound.LEASE
    assert load_settings({}).delivery_lease_seconds == 300


def test_backoff_tables_and_the_lease_are_written_once():
    for path in (ROOT / "app").rglob("*.py"):
        text = path.read_text()
        if path.name != "retry.py":
            assert "_BACKOFF = " not in text, path
            assert "LEASE = timedelta" not in text, path
            assert '"300"' not in text and "int = 300" not in text, path


def test_every_job_function_is_queued_by_name_somewhere():
    """A job function nothing queues is dead code that still looks like a way in."""
    others = "\n".join(
        path.read_text()
        for path in (ROOT / "app").rglob("*.py")
        if path.relative_to(ROOT).as_posix() not in ("app/workers/jobs.py", "app/jobs.py")
    )
    for name in _functions("app/workers/jobs.py"):
        if not name.startswith("_"):
            assert re.search(rf"\b{name}\b", others), name


def test_no_module_imports_another_modules_private_names():
    """What modules share is public (app/cli/context.py gives commands their settings and
    operator); a leading underscore means "this module's own"."""
    offenders = []
    for package in ("app", "mail", "keys"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    if private and node.module != "__future__":
                        offenders.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert offenders == []


def test_a_case_address_and_a_bounce_address_read_back_what_they_were_built_with():
    security = "security@vendor.example"
    case = addresses.case_address(security, "SEC-2026-0001")
    assert case == "security+SEC-2026-0001@vendor.example"
    assert addresses.plus_detail(case) == "SEC-2026-0001"
    assert addresses.plus_detail(security) is None
    bounce = addresses.bounce_address(security, "42-abcdefghijklmnop")
    assert bounce == "security-bounces+42-abcdefghijklmnop@vendor.example"
    assert addresses.bounce_detail(f"<{bounce}>", security) == "42-abcdefghijklmnop"
    assert addresses.bounce_detail("Security-Bounces+42@VENDOR.example", security) == "42"
    assert addresses.bounce_detail("security-bounces@vendor.example", security) == ""
    assert addresses.bounce_detail(case, security) is None
    assert all(addresses.accepts(a, security) for a in (security, case, bounce))
    assert not addresses.accepts("security-bounces+42@elsewhere.example", security)


def test_plus_addresses_are_built_and_read_in_mail_addresses_alone():
    building = re.compile(r"\+\{[^}]*\}@\{|-bounces\(\?:|split\(\"\+\", 1\)")
    for package in ("app", "mail"):
        for path in (ROOT / package).rglob("*.py"):
            if path.relative_to(ROOT).as_posix() != "mail/addresses.py":
                assert not building.search(path.read_text()), path


def test_an_instant_is_written_in_utc_the_same_way_everywhere():
    at = datetime(2027, 2, 23, 16, 5, 9, tzinfo=timezone(timedelta(hours=2)))
    assert timefmt.minute(at) == "2027-02-23 14:05 UTC"
    assert timefmt.minute(None) == "not set"
    assert timefmt.minute(None, "never") == "never"
    assert timefmt.day(at) == "2027-02-23"
    assert timefmt.zulu(at) == "2027-02-23T14:05:09Z"
    assert timefmt.zulu_minute(at) == "2027-02-23T14:05Z"
    assert timefmt.compact(at) == "20270223T140509Z"
    assert timefmt.minute(datetime(2027, 2, 23, 14, 5)) == "2027-02-23 14:05 UTC"  # naive: UTC


def test_time_formats_are_written_in_app_core_timefmt_alone():
    formats = re.compile(r"%Y|%m-%d|%H:%M")
    for path in (ROOT / "app").rglob("*.py"):
        if path.relative_to(ROOT).as_posix() not in ("app/core/timefmt.py", "app/web/timeline.py"):
            assert not formats.search(path.read_text()), path


def test_comments_state_facts_instead_of_pointing_outside_the_repository():
    """The project's design notes live outside the repository: a comment that sends a reader
    there leaves them with nothing."""
    outside = re.compile(r"(CONTRACT|PITFALLS|DESIGN|STYLE)\.md|\.\./shared/")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("app", "mail", "keys", "bench", "tests")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "test_one_place.py" and outside.search(path.read_text())
    ]
    assert offenders == []
