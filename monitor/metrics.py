"""Prometheus metrics of the service: polls, feeds, rules, the outbox and Slack.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (never the library's
global default), so two instances, or two tests, never share a sample. The
service feeds it records it already has (:class:`PollReport`,
:class:`DeliveryReport`, outbox counts); nothing here reads a clock or the store.

Label values are feed and rule names from config only: never a URL, a channel,
an error message or anything else that could carry a secret or grow without bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from monitor.deliver import DeliveryReport
from monitor.pipeline import PollReport
from monitor.store import FeedState

# Polls of a healthy feed take tens of milliseconds to a few seconds; the top
# buckets catch slow government sites and the fetch deadline (30 s by default).
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

_SUCCESS = frozenset({"ok", "not_modified", "unchanged"})
_FAILURE = frozenset({"error", "retry_later", "gone"})

# DeliveryError.kind values raised by monitor.notify, plus "internal" for bugs.
# Anything else is counted as "other" so a typo cannot create new series forever.
SLACK_ERROR_KINDS = frozenset(
    {
        "auth",
        "channel",
        "config",
        "internal",
        "lookup",
        "message",
        "network",
        "rate_limited",
        "server",
    }
)


class Metrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._polls = Counter(
            "monitor_polls", "Feed polls, by outcome.", ["feed", "result"], registry=r
        )
        self._fetch_seconds = Histogram(
            "monitor_fetch_duration_seconds",
            "Time one feed request took, for polls that made a request.",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self._entries = Counter(
            "monitor_entries_parsed", "Entries parsed from feed bodies.", ["feed"], registry=r
        )
        self._rule_matches = Counter(
            "monitor_rule_matches",
            "New entries each rule matched, once per entry (duplicates of earlier alerts too).",
            ["rule"],
            registry=r,
        )
        self._last_success = Gauge(
            "monitor_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll.",
            ["feed"],
            registry=r,
        )
        self._failures = Gauge(
            "monitor_feed_consecutive_failures",
            "Failed polls of the feed in a row (0 after a success).",
            ["feed"],
            registry=r,
        )
        self._failing = Gauge("monitor_feeds_failing", "Feeds whose last poll failed.", registry=r)
        self._delivered = Counter(
            "monitor_alerts_delivered", "Alerts Slack (or stdout) accepted.", registry=r
        )
        self._failed = Counter(
            "monitor_alerts_failed", "Alerts Slack refused for good.", registry=r
        )
        self._retried = Counter(
            "monitor_alert_retries", "Sends or lookups left for a later attempt.", registry=r
        )
        self._slack_errors = Counter(
            "monitor_slack_errors", "Errors from Slack, by kind.", ["kind"], registry=r
        )
        # Gauges named like the counter above would clash in the exposition
        # (monitor_alerts_failed is the counter's base name), hence the _in_outbox suffix.
        self._pending = Gauge("monitor_alerts_pending", "Alerts waiting in the outbox.", registry=r)
        self._outbox_failed = Gauge(
            "monitor_alerts_failed_in_outbox",
            "Alerts kept as failed in the outbox (see `monitor outbox`).",
            registry=r,
        )
        self._rules = Gauge("monitor_rules_loaded", "Rules in force.", registry=r)
        self._feeds = Gauge("monitor_feeds_configured", "Feeds in feeds.yaml.", registry=r)
        # The failing gauge is derived from this, so it stays right without a query.
        self._failure_counts: dict[str, int] = {}

    def observe_poll(self, report: PollReport, now: datetime) -> None:
        """Count one poll of one feed; ``now`` (aware) is when it finished."""
        feed = report.feed
        self._polls.labels(feed=feed, result=report.status).inc()
        # elapsed is 0.0 when no response was timed (internal errors, parse failures):
        # a zero would pull the histogram down without describing any request.
        if report.status != "skipped" and report.elapsed > 0:
            self._fetch_seconds.observe(report.elapsed)
        if report.entries:
            self._entries.labels(feed=feed).inc(report.entries)
        # An entry has one outcome per channel, and outcome.match names only the rule
        # that chose that channel: count each matching rule once per entry instead.
        counted: set[str] = set()
        for outcome in report.outcomes:
            if outcome.entry.id not in counted:
                counted.add(outcome.entry.id)
                for rule in dict.fromkeys(outcome.rules):
                    self._rule_matches.labels(rule=rule).inc()
        if report.status in _SUCCESS:
            self._last_success.labels(feed=feed).set(_unix(now))
            self._set_failures(feed, 0)
        elif report.status in _FAILURE:
            self._set_failures(feed, self._failure_counts.get(feed, 0) + 1)
        # "skipped" (backing off, gone) changes nothing: the feed is as failing as before.

    def seed_feeds(self, states: Iterable[FeedState]) -> None:
        """Start from what the store remembers, so a restart does not hide failing feeds."""
        for state in states:
            if state.last_success_at is not None:
                self._last_success.labels(feed=state.name).set(_unix(state.last_success_at))
            self._set_failures(state.name, state.consecutive_failures)

    def observe_delivery(self, report: DeliveryReport) -> None:
        """Count what one delivery cycle did."""
        self._delivered.inc(report.delivered)
        self._failed.inc(report.failed)
        self._retried.inc(report.retried)
        for kind in report.error_kinds:
            self.observe_slack_error(kind)

    def observe_slack_error(self, kind: str) -> None:
        """Count one Slack error by ``DeliveryError.kind`` (unknown kinds become "other")."""
        self._slack_errors.labels(kind=kind if kind in SLACK_ERROR_KINDS else "other").inc()

    def set_outbox(self, pending: int, failed: int) -> None:
        """Record the outbox size: alerts waiting, and alerts kept as failed."""
        self._pending.set(pending)
        self._outbox_failed.set(failed)

    def set_rules_loaded(self, count: int) -> None:
        """Record how many rules are in force."""
        self._rules.set(count)

    def set_feeds_configured(self, count: int) -> None:
        """Record how many feeds are configured."""
        self._feeds.set(count)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition and its content type, negotiated from an ``Accept`` header.

        No header gives the classic text format (``text/plain; version=0.0.4``);
        Prometheus itself may ask for OpenMetrics. This is prometheus-client's own
        negotiation, so the body always matches the type it is served with.
        """
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def _set_failures(self, feed: str, count: int) -> None:
        self._failure_counts[feed] = count
        self._failures.labels(feed=feed).set(count)
        self._failing.set(sum(1 for n in self._failure_counts.values() if n > 0))


def _unix(when: datetime) -> float:
    # A naive datetime would be read as local time: refuse it, as the store does.
    if when.tzinfo is None:
        raise ValueError("naive datetime given to Metrics; pass an aware UTC time")
    return when.timestamp()
