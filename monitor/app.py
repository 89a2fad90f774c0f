"""Wiring shared by the commands: settings from the environment, config, one cycle.

The CLI parses arguments and prints; this module does the work, so the
service, ``monitor once`` and the demo run the very same cycle.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.clients import ClientPool
from monitor.config import FEEDS_FILE, FeedsConfig, load_feeds
from monitor.deliver import Deliverer, DeliveryReport, FollowupPolicy
from monitor.durations import parse_duration
from monitor.errors import ConfigError, ConfigErrors
from monitor.feedhealth import FeedHealthReporter, HealthPolicy
from monitor.fetch import FetchLimits
from monitor.models import Feed
from monitor.notify import Notifier
from monitor.parsepool import MAX_PROCESSES, ParsePool, auto_processes
from monitor.parties import PARTIES_FILE, Gazetteer, load_parties
from monitor.pipeline import PollReport, PollSettings, poll_all
from monitor.rules import RuleSet, load_rules
from monitor.store import Clustering, Store
from monitor.stories import ClusterSettings

log = logging.getLogger("monitor")

DEFAULT_RULES = Path("rules")
DEFAULT_STATE = Path("state/monitor.db")


def utc_now() -> datetime:
    """The real clock, injected into everything that needs one."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Settings:
    """Operational settings from the environment (``MONITOR_*``), validated."""

    concurrency: int = 10
    retention: timedelta = timedelta(days=90)
    limits: FetchLimits = field(default_factory=FetchLimits)
    shutdown_grace: float = 10.0
    reload_every: float = 5.0  # seconds between looks at rules/ in `monitor run`; 0: never
    parse_processes: int | None = None  # None: auto (see monitor.parsepool.auto_processes)

    def parse_pool(self, feed_count: int) -> ParsePool:
        """The parse pool for ``feed_count`` feeds (not started)."""
        if self.parse_processes is None:
            return ParsePool(auto_processes(feed_count))
        return ParsePool(self.parse_processes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read ``MONITOR_CONCURRENCY``, ``MONITOR_RETENTION``, ``MONITOR_MAX_FEED_BYTES``,
        ``MONITOR_FETCH_DEADLINE``, ``MONITOR_SHUTDOWN_GRACE``, ``MONITOR_RELOAD_INTERVAL`` and
        ``MONITOR_PARSE_PROCESSES``; raise ConfigError naming the bad variable."""

        def get(name: str, parse: Callable[[str], object], default: object) -> object:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}={raw!r} is invalid: {exc}") from exc

        concurrency = int(str(get("MONITOR_CONCURRENCY", int, 10)))
        if not 1 <= concurrency <= 200:
            raise ConfigError("MONITOR_CONCURRENCY must be between 1 and 200")
        retention = get("MONITOR_RETENTION", parse_duration, timedelta(days=90))
        max_bytes = get("MONITOR_MAX_FEED_BYTES", int, 10 * 1024 * 1024)
        deadline = get("MONITOR_FETCH_DEADLINE", float, 30.0)
        grace = float(str(get("MONITOR_SHUTDOWN_GRACE", float, 10.0)))
        reload_every = float(str(get("MONITOR_RELOAD_INTERVAL", float, 5.0)))
        processes = get("MONITOR_PARSE_PROCESSES", _parse_processes, None)
        if reload_every < 0:
            raise ConfigError("MONITOR_RELOAD_INTERVAL must be 0 (off) or a number of seconds")
        if not 0 <= grace <= 600:
            raise ConfigError("MONITOR_SHUTDOWN_GRACE must be between 0 and 600 seconds")
        assert isinstance(retention, timedelta)
        try:
            limits = FetchLimits(max_bytes=int(str(max_bytes)), deadline=float(str(deadline)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(
            concurrency=concurrency,
            retention=retention,
            limits=limits,
            shutdown_grace=grace,
            reload_every=reload_every,
            parse_processes=processes if isinstance(processes, int) else None,
        )


def _parse_processes(raw: str) -> int | None:
    """``auto`` or a number of worker processes, 0 meaning threads."""
    if raw.strip().lower() == "auto":
        return None
    value = int(raw)
    if not 0 <= value <= MAX_PROCESSES:
        raise ValueError(f"use auto, 0 (threads) or up to {MAX_PROCESSES} processes")
    return value


@dataclass(frozen=True, slots=True)
class Config:
    """Everything loaded from the rules directory."""

    feeds: FeedsConfig
    rules: RuleSet
    rules_dir: Path
    parties: Gazetteer = field(default_factory=Gazetteer)

    def clustering(self, env: Mapping[str, str]) -> Clustering:
        """Story clustering with this config's gazetteer and ``MONITOR_STORY_WINDOW``."""
        raw = env.get("MONITOR_STORY_WINDOW") or "7d"
        try:
            window = parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(f"MONITOR_STORY_WINDOW: {exc}") from exc
        return Clustering(self.parties, ClusterSettings(window=window))


def load_config(rules_dir: Path, *, check_examples: bool = False) -> Config:
    """Load feeds and rules, collecting every error from both before raising."""
    errors: list[ConfigError] = []
    feeds: FeedsConfig | None = None
    try:
        feeds = load_feeds(rules_dir / FEEDS_FILE)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    except ConfigError as exc:
        errors.append(exc)
    rules: RuleSet | None = None
    try:
        rules = load_rules(rules_dir, known_tags=feeds.tags if feeds else None)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    if rules is not None and check_examples:
        errors.extend(rules.check_examples())
    parties = Gazetteer()
    if (rules_dir / PARTIES_FILE).exists():
        try:
            parties = load_parties(rules_dir / PARTIES_FILE)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
        except ConfigError as exc:
            errors.append(exc)
    if errors or feeds is None or rules is None:
        raise ConfigErrors(errors)
    return Config(feeds, rules, rules_dir, parties)


def freeze_startup_objects() -> None:
    """Take everything allocated so far out of the cyclic garbage collector's sight.

    Call once, after the config is loaded and before parse workers are forked.
    Modules, the config and the compiled rules live as long as the process;
    left in the collector's generations, every full collection walks them all
    again (about 0.1 s of a 1,000-feed "not modified" cycle, ``bench/cycle.py``).
    Frozen, they are skipped, and forked parse workers keep sharing their pages
    instead of copying each one the collector touches (the pattern the ``gc``
    module documents for ``fork``). Frozen objects are still freed when their
    last reference goes; only a reference cycle among them would outlive its use.
    """
    gc.freeze()


@dataclass(frozen=True, slots=True)
class CycleReport:
    """One cycle: every feed polled once, then the outbox delivered."""

    polls: tuple[PollReport, ...]
    delivery: DeliveryReport | None

    def summary(self) -> str:
        """One line for the log."""
        counts: dict[str, int] = {}
        for p in self.polls:
            counts[p.status] = counts.get(p.status, 0) + 1
        parts = [f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())]
        alerts = sum(len(p.alerts) for p in self.polls)
        line = f"polled {len(self.polls)} feeds ({', '.join(parts)}); {alerts} new alerts"
        if self.delivery is not None:
            d = self.delivery
            line += f"; delivered {d.delivered}, retry later {d.retried}, failed {d.failed}"
        return line


async def run_cycle(
    feeds: Sequence[Feed],
    rules: RuleSet,
    store: Store,
    *,
    settings: Settings,
    poll: PollSettings,
    deliverer: Deliverer | None,
    feed_health: FeedHealthReporter | None = None,
    now: Callable[[], datetime] = utc_now,
) -> CycleReport:
    """Poll every feed once, report feeds that broke or recovered, then deliver what is
    pending. Dry runs pass neither ``deliverer`` nor ``feed_health``."""
    async with ClientPool(settings.limits, connections=settings.concurrency) as client:
        polls = await poll_all(
            feeds,
            client=client,
            store=store,
            rules=rules,
            settings=poll,
            now=now,
            concurrency=settings.concurrency,
        )
    for report in polls:
        if report.status == "skipped" and report.error:
            log.info("skipped %r: %s", report.feed, report.error, extra={"feed": report.feed})
        elif feed_health is not None and report.state is not None:
            await feed_health.check(report.state, now())
    delivery = await deliverer.deliver_pending() if deliverer is not None else None
    return CycleReport(tuple(polls), delivery)


def make_deliverer(
    store: Store,
    notifier: Notifier,
    now: Callable[[], datetime] = utc_now,
    env: Mapping[str, str] | None = None,
) -> Deliverer:
    """The outbox deliverer for ``notifier`` (webhook follow-up policy from ``env``)."""
    return Deliverer(
        store,
        notifier,
        now=now,
        logger=logging.getLogger("monitor.deliver"),
        followups=FollowupPolicy.from_env(env or {}),
    )


def env_path(value: Path | None, env_name: str, default: Path) -> Path:
    """An explicit option, else the environment variable, else the default."""
    if value is not None:
        return value
    raw = os.environ.get(env_name)
    return Path(raw) if raw else default


def make_feed_health(
    store: Store, notifier: Notifier, env: Mapping[str, str]
) -> FeedHealthReporter:
    """The feed-health reporter: ``SLACK_OPS_CHANNEL`` when set (bot token), else the log."""
    channel = (env.get("SLACK_OPS_CHANNEL") or "").strip() or None
    return FeedHealthReporter(
        store, HealthPolicy.from_env(env), notifier=notifier, ops_channel=channel
    )
