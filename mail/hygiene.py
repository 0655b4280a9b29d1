"""Which inbound messages must never be answered automatically (RFC 3834): bounces and
delivery reports, automatic replies, bulk and list mail."""

from mail.parse import ParsedMessage


def automatic(parsed: ParsedMessage, envelope_from: str) -> str | None:
    """Why this message must not be answered, or None."""
    if not envelope_from or parsed.is_bounce:
        return "a bounce or delivery report"
    if parsed.auto_submitted and parsed.auto_submitted.strip().lower() != "no":
        return f"an automatic message (Auto-Submitted: {parsed.auto_submitted})"
    if parsed.precedence and parsed.precedence.strip().lower() in ("bulk", "list", "junk"):
        return f"bulk mail (Precedence: {parsed.precedence})"
    if parsed.list_id:
        return "mailing-list mail"
    return None
