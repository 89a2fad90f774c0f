"""monitor backtest: stored entries through candidate and live rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.backtest import backtest, render_backtest, stored_entries
from monitor.models import Entry
from monitor.rules import RuleSet, load_rules
from monitor.store import FeedState, Store
from tests.support import write_rules_dir

FEEDS = [{"name": "A", "url": "https://example.org/a.xml", "tags": ["government"]}]
LIVE = """
rules:
  - name: memoranda
    query: 'memorandum'
"""
CANDIDATE = """
rules:
  - name: partnerships
    query: 'partner*'
  - name: gov-memoranda
    query: 'memorandum AND NOT opinion'
    tags: [government]
"""
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ruleset(root: Path, text: str) -> RuleSet:
    return load_rules(write_rules_dir(root, FEEDS, text))


def entry(n: int, title: str, days_ago: int, *, tags: tuple[str, ...] = ()) -> Entry:
    published = NOW - timedelta(days=days_ago)
    return Entry(f"e{n}", "A", f"https://example.org/{n}", title, "", published, True, tags)


def test_backtest_compares_candidate_with_live(tmp_path: Path) -> None:
    live = ruleset(tmp_path / "live", LIVE)
    candidate = ruleset(tmp_path / "candidate", CANDIDATE)
    gov = ("government",)
    entries = [
        entry(1, "UK and Canada sign memorandum", 1, tags=gov),  # both
        entry(2, "New partnership on AI safety", 2, tags=gov),  # added
        entry(3, "Opinion: the memorandum is weak", 3, tags=gov),  # removed
        entry(4, "Memorandum from a non-government feed", 4),  # removed: tag-limited
        entry(5, "Weather", 5, tags=gov),  # neither
    ]
    result = backtest(entries, candidate, live)
    assert result.entries == 5
    assert [(h.entry_id, h.rules) for h in result.candidate] == [
        ("e1", ("gov-memoranda",)),
        ("e2", ("partnerships",)),
    ]
    assert [h.entry_id for h in result.live] == ["e1", "e3", "e4"]
    assert [h.entry_id for h in result.added] == ["e2"]
    assert [(h.entry_id, h.rules) for h in result.removed] == [
        ("e3", ("memoranda",)),
        ("e4", ("memoranda",)),
    ]
    text = render_backtest(result)
    assert text.startswith(
        "5 stored entries checked: the candidate rules alert on 2, the live rules on 3 "
        "(+1 added, -2 removed)"
    )
    assert "+  2025-02-27 12:00  A     New partnership on AI safety  [partnerships]" in text
    assert "-  2025-02-26 12:00  A     Opinion: the memorandum is weak  [memoranda]" in text


def test_render_with_nothing_to_report(tmp_path: Path) -> None:
    live = ruleset(tmp_path / "live", LIVE)
    text = render_backtest(backtest([], live, live))
    assert text.count("(nothing)") == 3


def test_stored_entries_since(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    state = FeedState("A", "https://example.org/a.xml", "https://example.org/a.xml")
    old = entry(1, "Old memorandum", 40)
    recent = entry(2, "Recent partnership", 2)
    undated = Entry("e3", "A", None, "Undated news", "", NOW - timedelta(days=90), True)
    try:
        store.record_poll(state, [old], [], NOW - timedelta(days=40), link_window=timedelta(1))
        store.record_poll(state, [recent], [], NOW - timedelta(days=1), link_window=timedelta(1))
        # first seen 10 days ago, though it says it was published 90 days ago
        store.record_poll(state, [undated], [], NOW - timedelta(days=10), link_window=timedelta(1))
        since = NOW - timedelta(days=30)
        got = list(stored_entries(store._conn, since, {"A": ["government"]}))
    finally:
        store.close()
    assert [e.id for e in got] == ["e3", "e2"]
    assert got[1] == Entry(
        "e2",
        "A",
        "https://example.org/2",
        "Recent partnership",
        "",
        NOW - timedelta(days=2),
        True,
        ("government",),
    )


def test_published_equal_to_first_seen_means_the_feed_gave_no_date(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    state = FeedState("A", "https://example.org/a.xml", "https://example.org/a.xml")
    undated = Entry("e1", "A", None, "No date", "", NOW, False)
    try:
        store.record_poll(state, [undated], [], NOW, link_window=timedelta(1))
        (got,) = stored_entries(store._conn, NOW - timedelta(days=1))
    finally:
        store.close()
    assert got.published_from_feed is False and got.tags == ()
