"""The service key's expiry warnings, rotation and compromise notices."""
