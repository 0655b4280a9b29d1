"""What the desk writes about an account: the password-reset link."""

from app.accounts import password_reset
from app.core.instance import secret_key
from app.models import Delivery
from app.outbox import mailtext
from app.outbox.text import Composer, Text, account_key


def reset_link(delivery: Delivery, payload: dict, common: dict, settings, at) -> Text:
    """The link, encrypted to the account's key when there is one."""
    user = delivery.user
    token = password_reset.reset_token(secret_key(settings), user, at)
    body = mailtext.render(
        "password-reset",
        link=f"{settings.base_url}/login/reset/{token}",
        until=at + password_reset.TOKEN_LIFETIME,
        project=settings.product or "project",
        **common,
    )
    subject = "Reset your password"
    return Text(subject, subject, body, account_key(user))


LETTERS: dict[str, Composer] = {"password-reset": reset_link}
