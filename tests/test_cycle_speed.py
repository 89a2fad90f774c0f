"""The parts that make a cycle cheap: parse processes, small client pools, batched state.

Each test checks behaviour (what is parsed, what is stored, which connections
are used), never time: speed is measured by ``bench/cycle.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.app import Settings
from monitor.clients import ClientPool
from monitor.errors import ConfigError, FeedParseError
from monitor.fetch import FetchLimits
from monitor.models import Feed
from monitor.parsepool import ParsePool, auto_processes
from monitor.pipeline import PollSettings, poll_all
from monitor.rules import RuleSet, load_rules
from monitor.sources import parse_entries
from monitor.store import Store
from tests.feedserver import FeedServer, rss
from tests.support import pid_running, wait_for, write_rules_dir

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMITS = FetchLimits(deadline=10.0, connect_timeout=2.0, read_timeout=5.0)
MATCHING = "UK and Canada AI Safety Institutes sign partnership"


def _feed_body(n: int, title: str = "Weather service launches new website") -> str:
    items = [
        {
            "title": title if i == 0 else f"{title} {i}",
            "guid": f"g-{n}-{i}",
            "link": f"https://news.example/{n}/{i}",
            "description": "<p>Some <b>text</b></p>",
            "pubDate": NOW,
        }
        for i in range(3)
    ]
    return rss(items)


def _die(*_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hang_then_pid() -> int:
    time.sleep(60)
    return os.getpid()


def _pid() -> int:
    return os.getpid()


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))


# -- parse processes -------------------------------------------------------------------


def test_auto_uses_threads_for_few_feeds_and_processes_for_many() -> None:
    assert auto_processes(14, cpus=8) == 0
    assert auto_processes(1000, cpus=2) == 2
    assert auto_processes(1000, cpus=32) == 4  # capped: parse is not the whole cycle
    assert auto_processes(1000, cpus=1) == 1


@pytest.mark.parametrize(
    ("raw", "expected"), [("auto", None), ("", None), ("0", 0), ("3", 3), (" AUTO ", None)]
)
def test_parse_processes_setting(raw: str, expected: int | None) -> None:
    assert Settings.from_env({"MONITOR_PARSE_PROCESSES": raw}).parse_processes == expected


@pytest.mark.parametrize("raw", ["-1", "17", "many", "1.5"])
def test_bad_parse_processes_setting_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="MONITOR_PARSE_PROCESSES"):
        Settings.from_env({"MONITOR_PARSE_PROCESSES": raw})


def test_a_worker_process_parses_exactly_like_a_thread() -> None:
    feed = Feed(name="f", url="https://news.example/feed")
    body = _feed_body(1).encode()
    args = (body, {"content-type": "application/rss+xml"}, feed.url, feed, NOW)

    async def both() -> tuple[object, object]:
        with ParsePool(1) as pool, ParsePool(0) as threads:
            assert pool.uses_processes and not threads.uses_processes
            return await pool.run(parse_entries, *args), await threads.run(parse_entries, *args)

    in_process, in_thread = asyncio.run(both())
    assert in_process == in_thread == parse_entries(*args)


def test_a_dead_worker_fails_only_its_feed_and_the_pool_recovers() -> None:
    feed = Feed(name="f", url="https://news.example/feed")
    args = (_feed_body(1).encode(), {}, feed.url, feed, NOW)

    async def go() -> object:
        with ParsePool(1) as pool:
            with pytest.raises(FeedParseError, match="parser process died"):
                await pool.run(_die)
            return await pool.run(parse_entries, *args)

    entries, warning = asyncio.run(go())  # type: ignore[misc]
    assert warning is None
    assert [e.title for e in entries][:1] == ["Weather service launches new website"]


def test_a_parse_past_the_time_limit_is_stopped_and_the_pool_recovers() -> None:
    async def go() -> tuple[int, int]:
        with ParsePool(1, timeout=1.0) as pool:
            before = await pool.run(_pid)
            with pytest.raises(FeedParseError, match="took longer than 1s and was stopped"):
                await pool.run(_hang_then_pid)
            return before, await pool.run(_pid)

    hung, fresh = asyncio.run(go())
    assert fresh != hung  # a new worker; the stuck one was killed
    wait_for(lambda: not pid_running(hung), timeout=10)


# -- client pool -----------------------------------------------------------------------


def test_client_pool_spreads_connections_over_small_clients() -> None:
    async def go() -> list[int]:
        async with ClientPool(LIMITS, connections=5) as pool:
            sizes = [c.max_connections for c in pool.clients]
            async with pool.lease() as a, pool.lease() as b, pool.lease() as c:
                assert len({id(a), id(b), id(c)}) == 3  # the least busy client each time
            return sizes

    assert asyncio.run(go()) == [2, 2, 1]  # five connections in all, as configured


def test_client_pool_rejects_no_connections() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ClientPool(LIMITS, connections=0)


# -- a whole cycle ----------------------------------------------------------------------


def _cycle(
    feeds: list[Feed], store: Store, rules: RuleSet, parser: ParsePool, connections: int
) -> list[str]:
    async def go() -> list[str]:
        async with ClientPool(LIMITS, connections=connections) as clients:
            reports = await poll_all(
                feeds,
                client=clients,
                store=store,
                rules=rules,
                settings=PollSettings(limits=LIMITS, parser=parser),
                now=lambda: NOW,
                concurrency=connections,
            )
        return [r.status for r in reports]

    return asyncio.run(go())


def test_cycle_with_parse_processes_and_client_pool(
    feed_server: FeedServer, tmp_path: Path, rules: RuleSet
) -> None:
    feeds = [Feed(name=f"f{n}", url=feed_server.url(f"/f{n}.xml")) for n in range(12)]
    for n in range(12):
        feed_server.set(f"/f{n}.xml", _feed_body(n), etag=f'"v{n}"')
    store = Store.open(tmp_path / "monitor.db")
    try:
        with ParsePool(2) as parser:
            assert _cycle(feeds, store, rules, parser, 4) == ["ok"] * 12
            assert _cycle(feeds, store, rules, parser, 4) == ["not_modified"] * 12
            feed_server.set("/f5.xml", _feed_body(50, MATCHING), etag='"v5b"')
            statuses = _cycle(feeds, store, rules, parser, 4)
        assert statuses == ["not_modified"] * 5 + ["ok"] + ["not_modified"] * 6
        due = sorted(a.title for a in store.due_alerts(NOW))
        assert due == [MATCHING, f"{MATCHING} 1", f"{MATCHING} 2"]  # the changed feed's new items
        states = store.feed_states_for(feeds)
        # The batched "not modified" states were written: every feed's last poll is recorded.
        assert {s.last_status for s in states.values()} == {"not_modified", "ok"}
        assert all(s.last_polled_at == NOW for s in states.values())
    finally:
        store.close()


def test_unchanged_feeds_reuse_connections(
    feed_server: FeedServer, tmp_path: Path, rules: RuleSet
) -> None:
    feeds = [Feed(name=f"f{n}", url=feed_server.url(f"/f{n}.xml")) for n in range(8)]
    for n in range(8):
        feed_server.set(f"/f{n}.xml", _feed_body(n), etag=f'"v{n}"')
    store = Store.open(tmp_path / "monitor.db")
    try:
        with ParsePool(0) as threads:
            _cycle(feeds, store, rules, threads, 2)
            before = len(feed_server.requests)
            assert _cycle(feeds, store, rules, threads, 2) == ["not_modified"] * 8
    finally:
        store.close()
    answered_304 = feed_server.requests[before:]
    assert len(answered_304) == 8
    # One client of two connections: the 304s travel over at most two connections.
    assert len({r.peer for r in answered_304}) <= 2


def test_feed_states_for_reads_new_moved_and_known_feeds(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    try:
        known = Feed(name="known", url="https://a.example/feed")
        polled = replace(store.feed_state(known), last_status="ok", last_polled_at=NOW)
        store.save_feed_states([polled])
        assert store.feed_states_for([known]) == {"known": polled}
        moved = Feed(name="known", url="https://b.example/feed")
        new = Feed(name="new", url="https://c.example/feed")
        by_name = store.feed_states_for([moved, new])
        assert by_name["known"] == store.feed_state(moved)
        assert by_name["known"].url == "https://b.example/feed"  # config URL changed: reset
        assert by_name["new"] == store.feed_state(new)
        assert by_name["new"].first_poll
    finally:
        store.close()
