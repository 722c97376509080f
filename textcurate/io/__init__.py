"""Readers, writers, rejects and attribute tables. Imports no stage."""
