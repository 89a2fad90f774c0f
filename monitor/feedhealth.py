"""Tell operators once when a source breaks, and once when it works again.

A feed is *down* after ``max_failures`` consecutive failures, when it answered
410 Gone, or when it has failed and not worked for ``max_silence``. The store
remembers that the operators were told (``FeedState.down_since``), so a
restart neither repeats the notice nor forgets to send the recovery.

Notices go to ``SLACK_OPS_CHANNEL`` when a bot token is configured, and
always to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError, DeliveryError
from monitor.notify import Notifier, SlackBotNotifier
from monitor.store import FeedState, Store

log = logging.getLogger("monitor.feedhealth")


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When a failing feed counts as down."""

    max_failures: int = 5
    max_silence: timedelta = timedelta(hours=24)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HealthPolicy:
        """``MONITOR_FEED_MAX_FAILURES`` and ``MONITOR_FEED_MAX_SILENCE`` (e.g. ``24h``)."""
        failures = env.get("MONITOR_FEED_MAX_FAILURES") or "5"
        silence = env.get("MONITOR_FEED_MAX_SILENCE") or "24h"
        try:
            count = int(failures)
        except ValueError as exc:
            raise ConfigError(f"MONITOR_FEED_MAX_FAILURES={failures!r} is not a number") from exc
        if count < 1:
            raise ConfigError("MONITOR_FEED_MAX_FAILURES must be at least 1")
        try:
            quiet = parse_duration(silence)
        except ValueError as exc:
            raise ConfigError(f"MONITOR_FEED_MAX_SILENCE: {exc}") from exc
        return cls(max_failures=count, max_silence=quiet)


@dataclass(frozen=True, slots=True)
class FeedNotice:
    """One message for the operators about one feed."""

    feed: str
    kind: Literal["down", "recovered"]
    text: str


def assess(state: FeedState, policy: HealthPolicy, now: datetime) -> FeedNotice | None:
    """The notice ``state`` calls for, if any (pure)."""
    failing = state.consecutive_failures > 0 or state.gone
    if state.down_since is None:
        if not failing:
            return None
        silent_for = now - state.last_success_at if state.last_success_at else None
        if (
            state.gone
            or state.consecutive_failures >= policy.max_failures
            or (silent_for is not None and silent_for >= policy.max_silence)
        ):
            since = (
                f"last worked {state.last_success_at:%Y-%m-%d %H:%M} UTC"
                if state.last_success_at
                else "has never worked"
            )
            return FeedNotice(
                state.name,
                "down",
                f"Feed '{state.name}' is failing ({state.consecutive_failures} polls in a row; "
                f"{since}): {state.last_error or 'unknown error'}. Check its url in "
                "feeds.yaml; `monitor feeds` shows every feed's status.",
            )
        return None
    if not failing:
        down_for = format_duration(max(now - state.down_since, timedelta(seconds=1)))
        return FeedNotice(
            state.name,
            "recovered",
            f"Feed '{state.name}' works again (it was reported down {down_for} ago).",
        )
    return None


class FeedHealthReporter:
    """Applies :func:`assess` after polls, records it, and publishes notices."""

    def __init__(
        self,
        store: Store,
        policy: HealthPolicy,
        *,
        notifier: Notifier | None = None,
        ops_channel: str | None = None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._slack = notifier if isinstance(notifier, SlackBotNotifier) else None
        self._channel = ops_channel if self._slack is not None else None

    async def check(self, state: FeedState, now: datetime) -> FeedNotice | None:
        """Assess one feed's fresh state; record and publish a notice when one is due."""
        notice = assess(state, self._policy, now)
        if notice is None:
            return None
        down_since = now if notice.kind == "down" else None
        self._store.save_feed_state(replace(state, down_since=down_since))
        level = logging.WARNING if notice.kind == "down" else logging.INFO
        log.log(level, "%s", notice.text, extra={"feed": notice.feed, "notice": notice.kind})
        await self.post_ops(notice.text)
        return notice

    async def post_ops(self, text: str) -> bool:
        """Post ``text`` to the operations channel when one is configured (best effort)."""
        if self._slack is None or not self._channel:
            return False
        try:
            await asyncio.to_thread(self._slack.post_text, self._channel, text)
        except DeliveryError as exc:
            log.warning("could not post to the operations channel %s: %s", self._channel, exc)
            return False
        return True
