"""Jobs for the queue tests, importable by dotted path like real ones (RQ's habit)."""

from app import audit, clock
from app.models import User


def record_sign_in_reminder(user_id: int) -> str:
    user = User.get_by_id(user_id)
    audit.record(None, "test.reminder", clock.now(), target=user.email)
    return user.email
