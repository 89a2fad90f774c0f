"""One poll of one feed end to end: real feed server, real SQLite file, real rules."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.dedupe import Backfill
from monitor.fetch import FetchLimits, make_client
from monitor.models import AlertStatus, Feed
from monitor.pipeline import PollReport, PollSettings, poll_all, poll_feed
from monitor.rules import RuleSet, load_rules
from monitor.store import Store
from tests.feedserver import FeedServer, rss
from tests.support import write_rules_dir

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def item(
    n: int, title: str, *, days_ago: float = 1, link: str | None = None, description: str = ""
) -> dict[str, object]:
    return {
        "title": title,
        "guid": f"id-{n}",
        "link": link or f"https://news.example/{n}",
        "description": description,
        "pubDate": T0 - timedelta(days=days_ago),
    }


MATCHING = "UK and Canada AI Safety Institutes sign partnership"
OTHER = "Weather service launches new website"


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "state" / "monitor.db")
    yield s  # type: ignore[misc]
    s.close()


def poll(
    feeds: Sequence[Feed], store: Store, rules: RuleSet, clock: Clock, **settings: object
) -> list[PollReport]:
    limits = FetchLimits(deadline=5.0, connect_timeout=2.0, read_timeout=2.0)
    poll_settings = PollSettings(limits=limits, **settings)  # type: ignore[arg-type]

    async def go() -> list[PollReport]:
        async with make_client(limits) as client:
            return await poll_all(
                feeds, client=client, store=store, rules=rules, settings=poll_settings, now=clock
            )

    return asyncio.run(go())


def alert_titles(reports: Sequence[PollReport]) -> list[str]:
    return [o.entry.title for r in reports for o in r.alerts]


def test_first_poll_records_backlog_without_alerting(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", rss([item(1, MATCHING), item(2, OTHER)]))
    feed = Feed("A", feed_server.url("/a.xml"))
    [report] = poll([feed], store, rules, Clock())
    assert report.status == "ok" and report.entries == 2 and report.new == 2
    assert report.alerts == []
    assert store.feed_state(feed).first_polled_at == T0


def test_new_matching_entry_on_second_poll_alerts_once(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", rss([item(2, OTHER)]))
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    poll([feed], store, rules, clock)
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=0), item(2, OTHER)]))
    clock.advance(minutes=15)
    reports = poll([feed], store, rules, clock)
    assert alert_titles(reports) == [MATCHING]
    [alert] = store.due_alerts(clock())
    assert alert.rule == "partnerships" and alert.status is AlertStatus.PENDING
    assert "partner*" in alert.matched_terms
    clock.advance(minutes=15)
    assert alert_titles(poll([feed], store, rules, clock)) == []
    assert len(store.outbox()) == 1


def test_backfill_window_and_all(feed_server: FeedServer, store: Store, rules: RuleSet) -> None:
    feed_server.set(
        "/a.xml", rss([item(1, MATCHING, days_ago=2), item(2, MATCHING + " again", days_ago=40)])
    )
    feed_server.set(
        "/b.xml",
        rss(
            [
                item(3, MATCHING + " (b)", days_ago=2, link="https://b/3"),
                item(4, MATCHING + " (old b)", days_ago=900, link="https://b/4"),
            ]
        ),
    )
    week = poll(
        [Feed("A", feed_server.url("/a.xml"))], store, rules, Clock(), backfill=Backfill.parse("7d")
    )
    assert alert_titles(week) == [MATCHING]
    everything = poll(
        [Feed("B", feed_server.url("/b.xml"))],
        store,
        rules,
        Clock(),
        backfill=Backfill.parse("all"),
    )
    assert sorted(alert_titles(everything)) == [MATCHING + " (b)", MATCHING + " (old b)"]


def test_not_modified_costs_nothing(feed_server: FeedServer, store: Store, rules: RuleSet) -> None:
    feed_server.set("/a.xml", rss([item(1, MATCHING)]), etag='"v1"')
    feed = Feed("A", feed_server.url("/a.xml"))
    poll([feed], store, rules, Clock())
    [second] = poll([feed], store, rules, Clock(T0 + timedelta(minutes=15)))
    assert second.status == "not_modified"
    assert feed_server.last_request("/a.xml").headers.get("if-none-match") == '"v1"'


def test_unchanged_body_without_validators_skips_parse(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", rss([item(1, MATCHING)]))
    feed = Feed("A", feed_server.url("/a.xml"))
    poll([feed], store, rules, Clock())
    [second] = poll([feed], store, rules, Clock(T0 + timedelta(minutes=15)))
    assert second.status == "unchanged"


def test_entry_leaving_and_reentering_does_not_realert(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    feed_server.set("/a.xml", rss([item(9, OTHER)]))
    poll([feed], store, rules, clock)
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=0), item(9, OTHER)]))
    clock.advance(minutes=15)
    assert alert_titles(poll([feed], store, rules, clock)) == [MATCHING]
    feed_server.set("/a.xml", rss([item(9, OTHER)]))
    clock.advance(minutes=15)
    poll([feed], store, rules, clock)
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=0), item(9, OTHER)]))
    clock.advance(minutes=15)
    assert alert_titles(poll([feed], store, rules, clock)) == []


def test_restart_with_same_database_does_not_realert(
    feed_server: FeedServer, tmp_path: Path, rules: RuleSet
) -> None:
    path = tmp_path / "m.db"
    feed = Feed("A", feed_server.url("/a.xml"))
    feed_server.set("/a.xml", rss([item(9, OTHER)]))
    first = Store.open(path)
    poll([feed], first, rules, Clock())
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=0), item(9, OTHER)]))
    assert alert_titles(poll([feed], first, rules, Clock(T0 + timedelta(minutes=15)))) == [MATCHING]
    first.close()
    again = Store.open(path)
    try:
        assert alert_titles(poll([feed], again, rules, Clock(T0 + timedelta(minutes=30)))) == []
        assert len(again.outbox()) == 1
    finally:
        again.close()


def test_same_link_from_two_feeds_alerts_once(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    shared = "https://gov.example/news/uk-canada?utm_source=rss&utm_medium=feed"
    feed_server.set("/a.xml", rss([item(1, MATCHING, link=shared)]))
    feed_server.set(
        "/b.xml",
        rss(
            [
                {
                    **item(
                        2,
                        "Britain and Canada AI safety partnership",
                        link="https://gov.example/news/uk-canada",
                    ),
                    "guid": "other-guid",
                }
            ]
        ),
    )
    feeds = [Feed("A", feed_server.url("/a.xml")), Feed("B", feed_server.url("/b.xml"))]
    reports = poll(feeds, store, rules, Clock(), backfill=Backfill.parse("all"))
    outcomes = [o for r in reports for o in r.outcomes]
    assert len(outcomes) == 2
    originals = [o for o in outcomes if o.alert_id is not None]
    duplicates = [o for o in outcomes if o.duplicate_of is not None]
    assert len(originals) == 1 and len(duplicates) == 1
    assert duplicates[0].duplicate_of == originals[0].alert_id
    assert len(store.outbox()) == 1


def test_duplicate_entries_within_one_feed_alert_once(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", rss([item(1, MATCHING), item(1, MATCHING)]))
    reports = poll(
        [Feed("A", feed_server.url("/a.xml"))],
        store,
        rules,
        Clock(),
        backfill=Backfill.parse("all"),
    )
    assert alert_titles(reports) == [MATCHING]


def test_one_failing_feed_does_not_stop_the_others(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/ok.xml", rss([item(1, MATCHING)]))
    feed_server.set(
        "/broken.xml",
        "<html><body>Access denied</body></html>",
        status=403,
        content_type="text/html",
    )
    feed_server.set(
        "/junk.xml", "<html><body><p>Not a feed</p></body></html>", content_type="text/html"
    )
    feeds = [
        Feed("broken", feed_server.url("/broken.xml")),
        Feed("junk", feed_server.url("/junk.xml")),
        Feed("missing", feed_server.url("/missing.xml")),
        Feed("ok", feed_server.url("/ok.xml")),
    ]
    reports = {
        r.feed: r for r in poll(feeds, store, rules, Clock(), backfill=Backfill.parse("all"))
    }
    assert reports["ok"].status == "ok" and len(reports["ok"].alerts) == 1
    assert reports["broken"].status == "error" and "403" in (reports["broken"].error or "")
    assert reports["missing"].status == "error" and "404" in (reports["missing"].error or "")
    assert reports["junk"].status == "error"
    junk = store.feed_state(feeds[1])
    assert junk.consecutive_failures == 1 and junk.last_error
    assert junk.first_poll  # a failed first poll is still a first poll next time


def test_failures_back_off_and_retry_after_is_honoured(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set(
        "/a.xml",
        "slow down",
        status=429,
        headers={"Retry-After": "3600"},
        content_type="text/plain",
    )
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    [first] = poll([feed], store, rules, clock)
    assert first.status == "retry_later"
    state = store.feed_state(feed)
    assert state.next_poll_at is not None and state.next_poll_at >= T0 + timedelta(hours=1)
    clock.advance(minutes=20)
    [skipped] = poll([feed], store, rules, clock)
    assert skipped.status == "skipped" and "backing off" in (skipped.error or "")
    assert feed_server.hits("/a.xml") == 1
    clock.advance(hours=1)
    feed_server.set("/a.xml", rss([item(1, OTHER)]))
    [ok] = poll([feed], store, rules, clock)
    assert ok.status == "ok" and store.feed_state(feed).consecutive_failures == 0


def test_gone_feed_is_not_polled_again(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", "gone", status=410, content_type="text/plain")
    feed = Feed("A", feed_server.url("/a.xml"))
    [first] = poll([feed], store, rules, Clock())
    assert first.status == "gone" and "410" in (first.error or "")
    [again] = poll([feed], store, rules, Clock(T0 + timedelta(days=3)))
    assert again.status == "skipped" and feed_server.hits("/a.xml") == 1
    # Pointing the feed at a new URL in feeds.yaml starts afresh.
    feed_server.set("/new.xml", rss([item(1, OTHER)]))
    [moved] = poll([Feed("A", feed_server.url("/new.xml"))], store, rules, Clock())
    assert moved.status == "ok"


def test_permanent_redirect_updates_stored_url(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.redirect("/old.xml", feed_server.url("/new.xml"), status=301)
    feed_server.set("/new.xml", rss([item(1, OTHER)]))
    feed = Feed("A", feed_server.url("/old.xml"))
    poll([feed], store, rules, Clock())
    assert store.feed_state(feed).url == feed_server.url("/new.xml")
    poll([feed], store, rules, Clock(T0 + timedelta(minutes=15)))
    assert feed_server.hits("/old.xml") == 1 and feed_server.hits("/new.xml") == 2


def test_temporary_redirect_keeps_stored_url(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.redirect("/old.xml", feed_server.url("/new.xml"), status=302)
    feed_server.set("/new.xml", rss([item(1, OTHER)]))
    feed = Feed("A", feed_server.url("/old.xml"))
    poll([feed], store, rules, Clock())
    assert store.feed_state(feed).url == feed_server.url("/old.xml")


def test_bad_character_reference_is_a_recorded_failure(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    body = rss([item(1, "placeholder")]).replace("placeholder", "Bad &#99999999; ref")
    feed_server.set("/a.xml", body)
    feed = Feed("A", feed_server.url("/a.xml"))
    [report] = poll([feed], store, rules, Clock())
    assert report.status == "error"
    assert store.feed_state(feed).last_error == report.error


def test_entries_without_guid_link_or_date(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", rss([{"title": MATCHING, "description": "no id at all"}]))
    reports = poll(
        [Feed("A", feed_server.url("/a.xml"))],
        store,
        rules,
        Clock(),
        backfill=Backfill.parse("all"),
    )
    [outcome] = [o for r in reports for o in r.outcomes]
    assert outcome.entry.link is None and outcome.entry.id.startswith("sha256:")
    assert outcome.entry.published == T0 and not outcome.entry.published_from_feed


def test_old_entry_reappearing_after_prune_does_not_alert(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    feed_server.set("/a.xml", rss([item(9, OTHER, days_ago=0)]))
    poll([feed], store, rules, clock)
    # An item dated 200 days ago shows up for the first time (e.g. after pruning).
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=200), item(9, OTHER, days_ago=0)]))
    clock.advance(minutes=15)
    assert alert_titles(poll([feed], store, rules, clock)) == []


def test_prune_keeps_entries_still_in_the_feed(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed = Feed("A", feed_server.url("/a.xml"))
    feed_server.set("/a.xml", rss([item(1, MATCHING, days_ago=0)]), etag='"v1"')
    clock = Clock()
    poll([feed], store, rules, clock)
    clock.advance(days=200)  # 304s for 200 days: the entry is still listed
    poll([feed], store, rules, clock)
    assert store.prune(clock(), timedelta(days=90)) == 0
    assert store.seen_ids("A", ["guid:id-1"]) == {"guid:id-1"}


def test_poll_feed_never_raises_for_unreachable_host(store: Store, rules: RuleSet) -> None:
    feed = Feed("A", "http://127.0.0.1:9/feed.xml")
    limits = FetchLimits(deadline=3.0, connect_timeout=1.0, read_timeout=1.0)

    async def go() -> PollReport:
        async with make_client(limits) as client:
            return await poll_feed(
                feed,
                client=client,
                store=store,
                rules=rules,
                settings=PollSettings(limits=limits),
                now=Clock(),
            )

    report = asyncio.run(go())
    assert report.status == "error" and report.error


def test_clock_jumping_backwards_does_not_silence_a_backing_off_feed(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.set("/a.xml", "down", status=500, content_type="text/plain")
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    poll([feed], store, rules, clock)
    assert store.feed_state(feed).next_poll_at is not None
    feed_server.set("/a.xml", rss([item(1, OTHER)]))
    clock.advance(minutes=1)  # still backing off: skipped
    assert poll([feed], store, rules, clock)[0].status == "skipped"
    clock.now = T0 - timedelta(days=3)  # the clock jumps back three days
    assert poll([feed], store, rules, clock)[0].status == "ok"


def test_a_flood_of_new_alerts_is_queued_and_reported(
    feed_server: FeedServer, store: Store, rules: RuleSet, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed("A", feed_server.url("/a.xml"))
    clock = Clock()
    feed_server.set("/a.xml", rss([item(0, OTHER)]))
    poll([feed], store, rules, clock)
    flood = [item(n, f"{MATCHING} number {n}", days_ago=0) for n in range(1, 61)]
    feed_server.set("/a.xml", rss([*flood, item(0, OTHER)]))
    clock.advance(minutes=15)
    with caplog.at_level("WARNING", logger="monitor.pipeline"):
        reports = poll([feed], store, rules, clock)
    assert len(alert_titles(reports)) == 60 and len(store.outbox()) == 60
    assert "produced 60 new alerts in one poll" in caplog.text
