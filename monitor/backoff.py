"""When to poll a feed next, after a success or a run of failures. Pure: ``now`` is a parameter.

The rule, in order:

1. No failures: ``now + interval``.
2. ``n`` consecutive failures: ``interval * 2**(n-1)`` — so the first failure
   waits one interval, the second two, the third four — never less than
   ``interval`` and never more than ``max(cap, interval)``.
3. A server's Retry-After (seconds) wins when it asks for longer than that,
   but is itself held to ``max(retry_after_cap, interval)`` so a hostile or
   broken server cannot park a feed for ever. A shorter Retry-After never
   makes us poll sooner than rule 1 or 2 says.

There is no randomness here: the scheduler adds its own jitter, and tests
stay exact.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

__all__ = ["DEFAULT_CAP", "RETRY_AFTER_CAP", "next_poll_after"]

DEFAULT_CAP = timedelta(hours=6)
RETRY_AFTER_CAP = timedelta(hours=24)


def next_poll_after(
    now: datetime,
    interval: timedelta,
    consecutive_failures: int,
    retry_after: float | None,
    *,
    cap: timedelta = DEFAULT_CAP,
    retry_after_cap: timedelta = RETRY_AFTER_CAP,
) -> datetime:
    """The time of the next poll. See the module docstring for the rule.

    ``retry_after`` is in seconds (as :func:`monitor.fetch.parse_retry_after`
    gives it); negative or NaN values are ignored, infinity means "as long as
    allowed". Raises ``ValueError`` for a non-positive interval or cap, or a
    negative failure count.
    """
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, got {interval}")
    if cap <= timedelta(0) or retry_after_cap <= timedelta(0):
        raise ValueError("cap and retry_after_cap must be positive")
    if consecutive_failures < 0:
        raise ValueError(f"consecutive_failures must be 0 or more, got {consecutive_failures}")

    delay = interval
    ceiling = max(cap, interval)
    # Double once per failure after the first, stopping at the ceiling (no overflow).
    for _ in range(consecutive_failures - 1):
        if delay >= ceiling:
            break
        delay *= 2
    delay = min(delay, ceiling)

    if retry_after is not None and not math.isnan(retry_after) and retry_after > 0:
        limit = max(retry_after_cap, interval)
        asked = limit if retry_after >= limit.total_seconds() else timedelta(seconds=retry_after)
        delay = max(delay, asked)
    return now + delay
