"""Everything SMTP and MIME."""
