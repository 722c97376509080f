"""Phases, executors, resume, the ledger and progress."""
