"""Forewarn: a coordinated vulnerability disclosure desk for a CNA."""
