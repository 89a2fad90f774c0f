"""Durations as people write them in config and on the command line: ``90s``, ``10m``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """Parse ``"10m"``, ``"1h30m"``, ``"7d"`` or ``"2w"``; raise ValueError with advice."""
    cleaned = str(text).strip().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned) != "":
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit, e.g. 90s, 10m, 1h30m, 7d, 2w"
        )
    total = timedelta()
    for amount, unit in _PART.findall(cleaned):
        total += timedelta(**{_UNITS[unit.lower()]: int(amount)})
    if total <= timedelta():
        raise ValueError(f"'{text}' is zero; a duration must be positive")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest ``parse_duration`` text for ``value`` (whole seconds)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
