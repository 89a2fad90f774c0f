"""The deliverer with a real SQLite store and the Slack emulator: once, paced, never lost.

Time is a fake clock: ``sleep`` records the wait and moves the clock, so
pacing and backoff are asserted on recorded sleeps, not on wall time.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.deliver import Deliverer, DeliveryReport
from monitor.models import AlertStatus, Entry, RuleMatch
from monitor.notify import Notifier, SlackBotNotifier, StdoutNotifier, WebhookNotifier
from monitor.store import Store
from tests.slack_emulator import SlackEmulator

LOGGER = "test.deliver"


class Clock:
    """A fake clock whose sleep advances time and remembers how long it slept."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)

    def advance(self, **kwargs: float) -> None:
        self.t += timedelta(**kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store.open(tmp_path / "monitor.db")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def enqueue(store: Store, clock: Clock, n: int, *, channel: str | None = None) -> list[int]:
    ids = []
    for i in range(n):
        entry = Entry(
            id=f"e{channel}{i}-{clock.t.timestamp()}",
            source="GOV.UK",
            link=f"https://www.gov.uk/news/{i}",
            title=f"Partnership {i} on AI safety <!channel>",
            summary="Two institutes agree to test models together.",
            published=clock.t,
            published_from_feed=True,
        )
        match = RuleMatch(rule="partnerships", matched_terms=("AI safety",), channel=channel)
        ids.append(store.enqueue_alert(entry, match, clock.now()))
    return ids


def bot(slack: SlackEmulator, token: str | None = None) -> SlackBotNotifier:
    return SlackBotNotifier(token or slack.token, "#alerts", base_url=slack.api_url, timeout=1)


def deliverer(store: Store, notifier: Notifier, clock: Clock) -> Deliverer:
    return Deliverer(
        store, notifier, now=clock.now, sleep=clock.sleep, logger=logging.getLogger(LOGGER)
    )


def run(d: Deliverer) -> DeliveryReport:
    return asyncio.run(d.deliver_pending())


def statuses(store: Store, ids: list[int]) -> list[AlertStatus]:
    return [a.status for a in (store.get_alert(i) for i in ids) if a is not None]


def assert_once_each(slack: SlackEmulator, store: Store, ids: list[int]) -> None:
    posted = [m.metadata["event_payload"]["alert_id"] for m in slack.messages if m.metadata]
    assert sorted(posted) == sorted(ids)
    for i in ids:
        alert = store.get_alert(i)
        assert alert is not None and alert.status is AlertStatus.DELIVERED
        assert alert.delivered_ts in {m.ts for m in slack.messages}


def test_delivers_each_once_and_paces(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    d = deliverer(store, bot(slack), clock)
    report = run(d)
    assert (report.delivered, report.retried, report.failed) == (3, 0, 0)
    assert_once_each(slack, store, ids)
    assert clock.sleeps == [1.0, 1.0]  # nothing before the first post, 1 s between the others
    assert run(d) == DeliveryReport()  # nothing due: nothing posted again
    assert len(slack.messages) == 3
    enqueue(store, clock, 1)  # pacing holds across cycles too
    run(d)
    assert clock.sleeps == [1.0, 1.0, 1.0]


def test_short_429_burst_waits_in_cycle(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    slack.rate_limit(2, retry_after="5")
    report = run(deliverer(store, bot(slack), clock))
    assert report.delivered == 3
    assert clock.sleeps.count(5.0) == 2
    assert report.error_kinds == ["rate_limited", "rate_limited"]
    assert_once_each(slack, store, ids)


def test_long_429_defers_the_channel(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    slack.rate_limit(1, retry_after="120")
    d = deliverer(store, bot(slack), clock)
    report = run(d)
    assert (report.delivered, report.retried, report.skipped) == (0, 1, 2)
    assert 120.0 not in clock.sleeps
    assert statuses(store, ids) == [AlertStatus.PENDING] * 3
    clock.advance(seconds=121)
    assert run(d).delivered == 3
    assert_once_each(slack, store, ids)


def test_5xx_burst(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    slack.server_error(4, status=503)
    d = deliverer(store, bot(slack), clock)
    start = clock.t
    first = run(d)
    assert first.retried == 3 and first.error_kinds == ["server"] * 3
    alert = store.get_alert(ids[0])
    assert alert is not None and alert.next_attempt_at == start + timedelta(seconds=30)
    clock.advance(seconds=31)
    start = clock.t
    report = run(d)  # the 4th error hits the first alert again: backoff doubles
    assert (report.delivered, report.retried) == (2, 1)
    alert = store.get_alert(ids[0])
    assert alert is not None and alert.next_attempt_at == start + timedelta(seconds=60)
    clock.advance(minutes=5)
    assert run(d).delivered == 1
    assert_once_each(slack, store, ids)


def test_backoff_is_capped(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    [i] = enqueue(store, clock, 1)
    d = deliverer(store, bot(slack), clock)
    for _ in range(8):
        slack.server_error(1)
        start = clock.t
        run(d)
        clock.advance(hours=1)
    alert = store.get_alert(i)
    assert alert is not None and alert.attempts == 8
    assert alert.next_attempt_at == start + timedelta(minutes=30)


def test_slack_down_loses_nothing(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    slack.down()
    d = deliverer(store, bot(slack), clock)
    report = run(d)
    assert (report.retried, report.skipped) == (1, 2)  # unreachable: stop, don't queue timeouts
    assert statuses(store, ids) == [AlertStatus.PENDING] * 3
    clock.advance(minutes=10)
    run(d)
    slack.up()
    clock.advance(minutes=10)
    assert run(d).delivered == 3
    assert_once_each(slack, store, ids)


@pytest.mark.parametrize("fault", ["drop_after_read", "hang"])
def test_lost_answer_is_looked_up_not_reposted(
    slack: SlackEmulator, store: Store, clock: Clock, fault: str
) -> None:
    ids = enqueue(store, clock, 2)
    getattr(slack, fault)(1)
    d = deliverer(store, bot(slack), clock)
    report = run(d)
    assert report.retried == 1
    assert statuses(store, ids) == [AlertStatus.SENDING, AlertStatus.PENDING]
    assert len(slack.messages) == 1  # Slack has it; we did not hear back
    # A restart: a new deliverer (and notifier, no cached channel IDs) over the same DB.
    clock.advance(minutes=5)
    report = run(deliverer(store, bot(slack), clock))
    assert report.delivered == 2
    assert_once_each(slack, store, ids)
    first = store.get_alert(ids[0])
    assert first is not None and first.delivered_ts == slack.messages[0].ts


def test_webhook_is_at_least_once(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    [i] = enqueue(store, clock, 1)
    slack.drop_after_read(1)
    d = deliverer(store, WebhookNotifier(slack.webhook_url, timeout=1), clock)
    run(d)
    alert = store.get_alert(i)
    assert alert is not None and alert.status is AlertStatus.SENDING
    clock.advance(minutes=5)
    assert run(d).delivered == 1
    assert len(slack.messages) == 2  # documented: a webhook cannot look back, so it re-sends


def test_invalid_auth_logged_once(
    slack: SlackEmulator, store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    good = slack.token
    ids = enqueue(store, clock, 3)
    slack.token = "xoxb-the-new-one"  # our token was revoked
    d = deliverer(store, bot(slack, token=good), clock)
    for _ in range(3):
        report = run(d)
        assert (report.retried, report.skipped) == (1, 2)
        clock.advance(minutes=1)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "Slack rejected the bot token (invalid_auth): set SLACK_BOT_TOKEN to a valid xoxb- "
        "token; 3 alerts are waiting in the outbox"
    ]
    assert statuses(store, ids) == [AlertStatus.PENDING] * 3
    slack.token = good  # the operator fixed it
    assert run(d).delivered == 3
    assert_once_each(slack, store, ids)
    recovered = [r for r in caplog.records if "delivery resumed" in r.getMessage()]
    assert len(recovered) == 1
    assert good not in caplog.text and "xoxb-the-new-one" not in caplog.text


def test_bad_rule_channel_does_not_block_default(
    slack: SlackEmulator, store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    bad = enqueue(store, clock, 2, channel="#gone")
    good = enqueue(store, clock, 2)
    d = deliverer(store, bot(slack), clock)
    for _ in range(2):
        report = run(d)
        clock.advance(minutes=1)
    assert report.delivered == 0 and report.retried == 1 and report.skipped == 1
    assert_once_each(slack, store, good)
    assert statuses(store, bad) == [AlertStatus.PENDING] * 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "#gone" in errors[0] and "channel_not_found" in errors[0]
    slack.channels["#gone"] = "C0GONE"  # created and the bot invited
    assert run(d).delivered == 2
    assert len(slack.messages_in("C0GONE")) == 2


def test_refused_message_fails_alone(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 2)
    slack.fail("invalid_blocks")
    report = run(deliverer(store, bot(slack), clock))
    assert (report.delivered, report.failed) == (1, 1)
    assert statuses(store, ids) == [AlertStatus.FAILED, AlertStatus.DELIVERED]


def test_no_default_channel(
    slack: SlackEmulator, store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = enqueue(store, clock, 1)
    routed = enqueue(store, clock, 1, channel="#policy")
    notifier = SlackBotNotifier(slack.token, None, base_url=slack.api_url, timeout=1)
    d = deliverer(store, notifier, clock)
    run(d)
    run(d)
    assert statuses(store, orphan + routed) == [AlertStatus.PENDING, AlertStatus.DELIVERED]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "SLACK_CHANNEL" in errors[0]


def test_stdout_mode_is_not_paced(store: Store, clock: Clock) -> None:
    ids = enqueue(store, clock, 3)
    out = io.StringIO()
    report = run(deliverer(store, StdoutNotifier(out), clock))
    assert report.delivered == 3 and clock.sleeps == []
    assert out.getvalue().count("Partnership") == 3
    assert statuses(store, ids) == [AlertStatus.DELIVERED] * 3
