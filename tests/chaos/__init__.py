"""Crash-loop tests: the fast variant of ``bench/chaos.py`` (see docs/scorecard.md)."""
