"""Per-rule routing: channel, an optional mention, immediate or digest, quiet hours.

Configured in a rule (never taken from feed text)::

    - name: institute-partnerships
      query: ...
      channel: "#ai-safety"
      mention: "@here"               # or "subteam:S0123ABCD" (a user group)
      mode: digest                   # immediate (default) | digest
      digest: {schedule: "0 9 * * mon-fri", timezone: Europe/London}
      quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/London}

Everything here is pure: times in, times out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.errors import ConfigError

ROUTING_KEYS = {"channel", "mention", "mode", "digest", "quiet_hours"}
_SUBTEAM = re.compile(r"^subteam:(S[A-Z0-9]{2,})$")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window (local time) during which immediate alerts wait."""

    start: time
    end: time
    zone: ZoneInfo

    def until(self, now: datetime) -> datetime | None:
        """When the quiet window containing ``now`` ends (UTC), or None if not quiet."""
        local = now.astimezone(self.zone)
        today_start = datetime.combine(local.date(), self.start, self.zone)
        today_end = datetime.combine(local.date(), self.end, self.zone)
        if self.start <= self.end:  # e.g. 12:00-14:00
            inside = today_start <= local < today_end
            end = today_end
        elif local.time() >= self.start:  # e.g. 22:00-07:00, evening part
            inside, end = True, today_end + timedelta(days=1)
        else:  # morning part
            inside, end = local.time() < self.end, today_end
        return end.astimezone(UTC) if inside else None


@dataclass(frozen=True, slots=True)
class Digest:
    """A cron schedule on which a rule's alerts are sent together as one message."""

    schedule: str
    zone: ZoneInfo
    trigger: CronTrigger

    def next_after(self, now: datetime) -> datetime:
        """The next digest time strictly after ``now`` (UTC)."""
        fire: datetime | None = self.trigger.get_next_fire_time(None, now + timedelta(seconds=1))
        assert fire is not None  # a valid crontab always fires again
        return fire.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Routing:
    """Where and how a rule's alerts are delivered."""

    channel: str | None = None
    mention: str | None = None  # Slack markup: "<!here>" or "<!subteam^S…>"
    mode: Literal["immediate", "digest"] = "immediate"
    digest: Digest | None = None
    quiet: QuietHours | None = None

    def hold_until(self, now: datetime) -> datetime | None:
        """When an alert created at ``now`` may first be sent (None: right away)."""
        if self.digest is not None:
            return self.digest.next_after(now)
        return self.quiet.until(now) if self.quiet is not None else None


def parse_routing(item: Mapping[str, Any], fail: Callable[[str], ConfigError]) -> Routing:
    """Validate a rule's routing keys; raise ``fail(reason)`` on the first problem."""
    channel = item.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel.strip()):
        raise fail("channel must be a Slack channel name like '#ai-safety' or an ID")
    mode = item.get("mode", "immediate")
    if mode not in ("immediate", "digest"):
        raise fail(f"mode must be 'immediate' or 'digest', not {mode!r}")
    digest = _digest(item.get("digest"), fail)
    if mode == "digest" and digest is None:
        raise fail("mode: digest needs a digest: {schedule: '0 9 * * mon-fri', timezone: ...}")
    if mode == "immediate" and digest is not None:
        raise fail("a digest schedule is set but mode is not 'digest'; add mode: digest")
    return Routing(
        channel=channel.strip() if isinstance(channel, str) else None,
        mention=_mention(item.get("mention"), fail),
        mode=mode,
        digest=digest,
        quiet=_quiet(item.get("quiet_hours"), fail),
    )


def _zone(value: object, fail: Callable[[str], ConfigError]) -> ZoneInfo:
    name = str(value or "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown time zone {name!r}; use a name like Europe/London") from None


def _mention(value: object, fail: Callable[[str], ConfigError]) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text in ("@here", "@channel"):
        return f"<!{text[1:]}>"
    found = _SUBTEAM.match(text)
    if found:
        return f"<!subteam^{found.group(1)}>"
    raise fail(f"mention {text!r} must be '@here', '@channel' or 'subteam:S…' (a user group ID)")


def _digest(value: object, fail: Callable[[str], ConfigError]) -> Digest | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("schedule"), str):
        raise fail("digest needs a schedule, e.g. {schedule: '0 9 * * mon-fri', timezone: UTC}")
    zone = _zone(value.get("timezone"), fail)
    schedule = value["schedule"].strip()
    from apscheduler.triggers.cron import CronTrigger  # ~20 ms to import: only for digest rules

    try:
        trigger = CronTrigger.from_crontab(schedule, timezone=zone)
    except ValueError as exc:
        raise fail(
            f"digest schedule {schedule!r} is not a crontab (minute hour day month weekday): {exc}"
        ) from None
    return Digest(schedule, zone, trigger)


def _quiet(value: object, fail: Callable[[str], ConfigError]) -> QuietHours | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise fail("quiet_hours needs from and to, e.g. {from: '22:00', to: '07:00'}")
    times = []
    for key in ("from", "to"):
        found = _CLOCK.match(str(value.get(key, "")).strip())
        if not found:
            raise fail(f"quiet_hours: '{key}' must be a time like 22:00")
        times.append(time(int(found.group(1)), int(found.group(2))))
    if times[0] == times[1]:
        raise fail("quiet_hours: 'from' and 'to' are the same time")
    return QuietHours(times[0], times[1], _zone(value.get("timezone"), fail))
