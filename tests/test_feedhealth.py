"""Feed health: a dead feed is reported once, and its recovery once, across restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.feedhealth import FeedHealthReporter, HealthPolicy, assess
from monitor.fetch import FetchLimits, make_client
from monitor.models import Feed
from monitor.notify import SlackBotNotifier
from monitor.pipeline import PollSettings, poll_feed
from monitor.rules import load_rules
from monitor.store import FeedState, Store
from tests.feedserver import FeedServer, rss
from tests.slack_emulator import SlackEmulator
from tests.support import write_rules_dir

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = HealthPolicy(max_failures=3, max_silence=timedelta(hours=24))


def state(**kwargs: object) -> FeedState:
    return replace(FeedState(name="A", config_url="https://a/", url="https://a/"), **kwargs)  # type: ignore[arg-type]


def test_assess_down_after_n_failures_then_recovered() -> None:
    assert assess(state(consecutive_failures=2, last_error="HTTP 500"), POLICY, T0) is None
    down = assess(state(consecutive_failures=3, last_error="HTTP 500"), POLICY, T0)
    assert down is not None and down.kind == "down" and "HTTP 500" in down.text
    assert "has never worked" in down.text
    # Already reported: nothing more while it keeps failing.
    assert assess(state(consecutive_failures=9, down_since=T0), POLICY, T0) is None
    back = assess(state(consecutive_failures=0, down_since=T0), POLICY, T0 + timedelta(hours=2))
    assert back is not None and back.kind == "recovered" and "2h" in back.text


def test_assess_gone_and_silence() -> None:
    gone = assess(state(consecutive_failures=1, gone=True), POLICY, T0)
    assert gone is not None and gone.kind == "down"
    silent = state(consecutive_failures=1, last_success_at=T0 - timedelta(hours=25))
    notice = assess(silent, POLICY, T0)
    assert notice is not None and "last worked" in notice.text
    # Silence alone (no failure) is not down: the feed may simply be quiet.
    assert assess(state(last_success_at=T0 - timedelta(days=9)), POLICY, T0) is None


def test_policy_from_env() -> None:
    assert HealthPolicy.from_env({}) == HealthPolicy()
    policy = HealthPolicy.from_env(
        {"MONITOR_FEED_MAX_FAILURES": "2", "MONITOR_FEED_MAX_SILENCE": "6h"}
    )
    assert policy == HealthPolicy(2, timedelta(hours=6))
    with pytest.raises(ConfigError, match="MONITOR_FEED_MAX_FAILURES"):
        HealthPolicy.from_env({"MONITOR_FEED_MAX_FAILURES": "many"})
    with pytest.raises(ConfigError, match="MONITOR_FEED_MAX_SILENCE"):
        HealthPolicy.from_env({"MONITOR_FEED_MAX_SILENCE": "soon"})


def test_failing_feed_gives_one_notice_and_one_recovery(
    feed_server: FeedServer, slack: SlackEmulator, tmp_path: Path
) -> None:
    rules = load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x/"}]))
    feed = Feed("Broken feed", feed_server.url("/a.xml"))
    feed_server.set("/a.xml", "oops", status=500, content_type="text/plain")
    notifier = SlackBotNotifier(slack.token, "#alerts", base_url=slack.api_url, timeout=2)
    limits = FetchLimits(deadline=5)
    settings = PollSettings(limits=limits, force=True)  # ignore backoff: poll every cycle
    path = tmp_path / "m.db"

    def cycles(n: int, start: datetime) -> list[str]:
        store = Store.open(path)  # a new process each time: the flag must survive restarts
        reporter = FeedHealthReporter(store, POLICY, notifier=notifier, ops_channel="#policy")

        async def go() -> list[str]:
            kinds = []
            async with make_client(limits) as client:
                for i in range(n):
                    when = start + timedelta(minutes=15 * i)
                    await poll_feed(
                        feed,
                        client=client,
                        store=store,
                        rules=rules,
                        settings=settings,
                        now=lambda when=when: when,  # type: ignore[misc]
                    )
                    notice = await reporter.check(store.feed_state(feed), when)
                    if notice is not None:
                        kinds.append(notice.kind)
            return kinds

        try:
            return asyncio.run(go())
        finally:
            store.close()

    assert cycles(5, T0) == ["down"]
    assert cycles(4, T0 + timedelta(hours=2)) == []  # still down after a restart: silent
    feed_server.set("/a.xml", rss([{"title": "Back", "guid": "1"}]))
    assert cycles(3, T0 + timedelta(hours=4)) == ["recovered"]
    posted = [m.text for m in slack.messages_in("C0POLICY")]
    assert len(posted) == 2
    assert "Feed 'Broken feed' is failing (3 polls in a row" in posted[0]
    assert "HTTP 500" in posted[0] and "works again" in posted[1]
    assert slack.messages_in("C0ALERTS") == []
