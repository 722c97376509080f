"""Streaming steps that score documents (scorers write numbers; they never drop)."""
