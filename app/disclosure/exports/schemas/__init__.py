"""JSON Schemas the exports are validated against (package data; see README.md here)."""
