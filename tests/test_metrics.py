"""Metrics: reports in, Prometheus exposition out, parsed back and checked sample by sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from monitor.deliver import DeliveryReport
from monitor.metrics import Metrics
from monitor.models import Entry, RuleMatch
from monitor.pipeline import PollReport
from monitor.store import FeedState, Outcome

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of the rendered text, keyed by name and labels."""
    body, _ = metrics.render()
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def entry(entry_id: str, feed: str = "nist") -> Entry:
    return Entry(
        id=entry_id,
        source=feed,
        link=f"https://example.org/{entry_id}",
        title=f"Entry {entry_id}",
        summary="",
        published=NOW,
        published_from_feed=True,
    )


def outcome(
    entry_id: str, rules: tuple[str, ...], *, channel: str | None = None, new: bool = True
) -> Outcome:
    match = RuleMatch(rule=rules[0], matched_terms=("partnership",), channel=channel)
    return Outcome(entry(entry_id), match, rules, 1 if new else None, None if new else 7)


def test_successful_poll_counts_poll_entries_duration_and_success() -> None:
    metrics = Metrics()
    metrics.observe_poll(PollReport("nist", "ok", entries=30, new=2, elapsed=0.4), NOW)
    found = samples(metrics)
    assert value(found, "monitor_polls_total", feed="nist", result="ok") == 1
    assert value(found, "monitor_entries_parsed_total", feed="nist") == 30
    assert value(found, "monitor_fetch_duration_seconds_count") == 1
    assert value(found, "monitor_fetch_duration_seconds_sum") == pytest.approx(0.4)
    assert value(found, "monitor_fetch_duration_seconds_bucket", le="0.25") == 0
    assert value(found, "monitor_fetch_duration_seconds_bucket", le="0.5") == 1
    assert value(found, "monitor_feed_last_success_timestamp_seconds", feed="nist") == (
        NOW.timestamp()
    )
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 0
    assert value(found, "monitor_feeds_failing") == 0


def test_histogram_buckets_span_fifty_milliseconds_to_a_minute() -> None:
    found = samples(Metrics())
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in found
        if name == "monitor_fetch_duration_seconds_bucket"
    )
    assert bounds[0] == 0.05
    assert bounds[-2:] == [60.0, float("inf")]


def test_not_modified_and_unchanged_are_successes() -> None:
    metrics = Metrics()
    metrics.observe_poll(PollReport("nist", "error", error="HTTP 500", elapsed=0.1), NOW)
    metrics.observe_poll(PollReport("nist", "not_modified", elapsed=0.1), NOW)
    later = NOW + timedelta(minutes=15)
    metrics.observe_poll(PollReport("nist", "unchanged", elapsed=0.1), later)
    found = samples(metrics)
    assert value(found, "monitor_polls_total", feed="nist", result="not_modified") == 1
    assert value(found, "monitor_polls_total", feed="nist", result="unchanged") == 1
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 0
    assert value(found, "monitor_feed_last_success_timestamp_seconds", feed="nist") == (
        later.timestamp()
    )
    assert value(found, "monitor_entries_parsed_total", feed="nist") is None


def test_consecutive_failures_and_failing_feeds() -> None:
    metrics = Metrics()
    for status in ("error", "retry_later", "gone"):
        metrics.observe_poll(PollReport("nist", status, error="x", elapsed=1.0), NOW)
    metrics.observe_poll(PollReport("gov-uk", "error", error="x", elapsed=1.0), NOW)
    metrics.observe_poll(PollReport("verge", "ok", elapsed=1.0), NOW)
    found = samples(metrics)
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 3
    assert value(found, "monitor_feed_consecutive_failures", feed="gov-uk") == 1
    assert value(found, "monitor_feed_consecutive_failures", feed="verge") == 0
    assert value(found, "monitor_feeds_failing") == 2
    # A failing feed never had a success: no timestamp rather than a fake 0.
    assert value(found, "monitor_feed_last_success_timestamp_seconds", feed="nist") is None

    metrics.observe_poll(PollReport("nist", "ok", elapsed=1.0), NOW)
    found = samples(metrics)
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 0
    assert value(found, "monitor_feeds_failing") == 1


def test_skipped_poll_is_counted_but_not_timed_and_changes_no_feed_state() -> None:
    metrics = Metrics()
    metrics.observe_poll(PollReport("nist", "error", error="x", elapsed=2.0), NOW)
    metrics.observe_poll(PollReport("nist", "skipped", error="backing off"), NOW)
    found = samples(metrics)
    assert value(found, "monitor_polls_total", feed="nist", result="skipped") == 1
    assert value(found, "monitor_fetch_duration_seconds_count") == 1
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 1
    assert value(found, "monitor_feeds_failing") == 1


def test_untimed_failure_is_not_observed_as_a_zero_second_request() -> None:
    metrics = Metrics()
    metrics.observe_poll(PollReport("nist", "error", error="internal error: boom"), NOW)
    found = samples(metrics)
    assert value(found, "monitor_fetch_duration_seconds_count") == 0
    assert value(found, "monitor_feed_consecutive_failures", feed="nist") == 1


def test_rule_matches_count_each_rule_once_per_entry() -> None:
    metrics = Metrics()
    outcomes = (
        # One entry, two channels, matched by two rules: one outcome per channel.
        outcome("a", ("partnerships", "institutes"), channel=None),
        outcome("a", ("partnerships", "institutes"), channel="#policy"),
        # A duplicate of an earlier alert still counts as a match.
        outcome("b", ("partnerships",), new=False),
    )
    metrics.observe_poll(PollReport("nist", "ok", entries=5, new=2, outcomes=outcomes), NOW)
    found = samples(metrics)
    assert value(found, "monitor_rule_matches_total", rule="partnerships") == 2
    assert value(found, "monitor_rule_matches_total", rule="institutes") == 1


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        Metrics().observe_poll(PollReport("nist", "ok"), datetime(2025, 3, 1, 12, 0))


def test_seed_feeds_restores_failures_and_last_success_after_restart() -> None:
    metrics = Metrics()
    metrics.seed_feeds(
        [
            FeedState("nist", "https://n.example/rss", "https://n.example/rss",
                      last_success_at=NOW, consecutive_failures=0),
            FeedState("gov-uk", "https://g.example/atom", "https://g.example/atom",
                      consecutive_failures=4),
        ]
    )  # fmt: skip
    found = samples(metrics)
    assert value(found, "monitor_feed_last_success_timestamp_seconds", feed="nist") == (
        NOW.timestamp()
    )
    assert value(found, "monitor_feed_consecutive_failures", feed="gov-uk") == 4
    assert value(found, "monitor_feeds_failing") == 1
    # Feed URLs are never labels.
    assert b"example" not in metrics.render()[0]

    metrics.observe_poll(PollReport("gov-uk", "error", error="x", elapsed=1.0), NOW)
    assert value(samples(metrics), "monitor_feed_consecutive_failures", feed="gov-uk") == 5


def test_delivery_reports_accumulate() -> None:
    metrics = Metrics()
    metrics.observe_delivery(DeliveryReport(delivered=3, retried=1, failed=1, errors=["x", "y"]))
    metrics.observe_delivery(DeliveryReport(delivered=2))
    found = samples(metrics)
    assert value(found, "monitor_alerts_delivered_total") == 5
    assert value(found, "monitor_alerts_failed_total") == 1
    assert value(found, "monitor_alert_retries_total") == 1


def test_slack_errors_by_kind_with_unknown_kinds_folded_into_other() -> None:
    metrics = Metrics()
    for kind in ("rate_limited", "rate_limited", "auth", "https://hooks.slack.com/services/T/B/X"):
        metrics.observe_slack_error(kind)
    found = samples(metrics)
    assert value(found, "monitor_slack_errors_total", kind="rate_limited") == 2
    assert value(found, "monitor_slack_errors_total", kind="auth") == 1
    assert value(found, "monitor_slack_errors_total", kind="other") == 1
    assert b"hooks.slack.com" not in metrics.render()[0]


def test_gauges_for_outbox_rules_and_feeds() -> None:
    metrics = Metrics()
    metrics.set_outbox(pending=4, failed=2)
    metrics.set_rules_loaded(7)
    metrics.set_feeds_configured(12)
    metrics.set_outbox(pending=1, failed=2)
    found = samples(metrics)
    assert value(found, "monitor_alerts_pending") == 1
    assert value(found, "monitor_alerts_failed_in_outbox") == 2
    assert value(found, "monitor_rules_loaded") == 7
    assert value(found, "monitor_feeds_configured") == 12


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_poll(PollReport("nist", "ok", elapsed=0.1), NOW)
    assert value(samples(first), "monitor_polls_total", feed="nist", result="ok") == 1
    assert value(samples(second), "monitor_polls_total", feed="nist", result="ok") is None
    assert not [m for m in REGISTRY.collect() if m.name.startswith("monitor_")]


def test_render_defaults_to_classic_text_and_negotiates_openmetrics() -> None:
    metrics = Metrics()
    metrics.observe_poll(PollReport("nist", "ok", elapsed=0.1), NOW)
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b'monitor_polls_total{feed="nist",result="ok"} 1.0' in body

    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(body.decode())}  # type: ignore[no-untyped-call]
    assert families["monitor_polls"].type == "counter"


def test_delivery_report_error_kinds_are_counted() -> None:
    from monitor.deliver import DeliveryReport

    metrics = Metrics()
    metrics.observe_delivery(
        DeliveryReport(retried=2, error_kinds=["rate_limited", "rate_limited", "server"])
    )
    text = metrics.render()[0].decode()
    assert 'monitor_slack_errors_total{kind="rate_limited"} 2.0' in text
    assert 'monitor_slack_errors_total{kind="server"} 1.0' in text
