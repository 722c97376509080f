"""Decide what to keep, from numbers the scorers wrote. Never re-runs a scorer."""
