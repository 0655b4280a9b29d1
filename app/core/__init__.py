"""Settings, the clock, errors, the database and the small services every feature uses."""
