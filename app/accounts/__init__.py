"""Team accounts, TOTP and password reset."""
