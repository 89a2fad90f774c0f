"""The state database: migrations, refusal of damaged files, the outbox life cycle."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.models import AlertStatus, Entry, Feed, RuleMatch
from monitor.store import MIGRATIONS, Candidate, Store, from_db_time, to_db_time

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def entry(n: int, link: str | None = None, source: str = "A") -> Entry:
    return Entry(
        id=f"guid:{n}",
        source=source,
        link=link or f"https://x.example/{n}",
        title=f"Title {n}",
        summary="Summary",
        published=T0,
        published_from_feed=True,
    )


def test_new_database_is_migrated_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "monitor.db"
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS)
    instance = store.instance_id
    store.close()
    again = Store.open(path)
    assert again.schema_version == len(MIGRATIONS) and again.instance_id == instance
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_garbage_file_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"not a usable state database.*move the file aside"):
        Store.open(path)
    assert path.read_bytes().startswith(b"this is not a database")


def test_database_from_a_newer_monitor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer monitor"):
        Store.open(path)


def test_snapshot_writes_nothing_to_disk(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    snap = Store.open_snapshot(path)
    snap.enqueue_alert(entry(1), RuleMatch("r", ("x",)), T0)
    snap.close()
    assert not path.exists()
    real = Store.open(path)
    real.enqueue_alert(entry(1), RuleMatch("r", ("x",)), T0)
    real.close()
    snap = Store.open_snapshot(path)
    snap.enqueue_alert(entry(2), RuleMatch("r", ("x",)), T0)
    assert len(snap.outbox()) == 2
    snap.close()
    real = Store.open(path)
    assert len(real.outbox()) == 1
    real.close()


def test_outbox_life_cycle(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    a = store.enqueue_alert(entry(1), RuleMatch("r", ("x",), "#alerts"), T0)
    b = store.enqueue_alert(entry(2), RuleMatch("r", ("x",)), T0)
    assert [x.id for x in store.due_alerts(T0)] == [a, b]
    store.mark_sending(a, "#alerts", T0)
    store.mark_retry(a, "timeout", T0 + timedelta(minutes=1), maybe_sent=True)
    alert = store.get_alert(a)
    assert alert is not None and alert.status is AlertStatus.SENDING and alert.attempts == 1
    assert [x.id for x in store.due_alerts(T0)] == [b]
    assert [x.id for x in store.due_alerts(T0 + timedelta(minutes=1))] == [a, b]
    store.mark_delivered(a, "C1", "1.2", T0)
    store.mark_failed(b, "invalid_blocks")
    assert store.due_alerts(T0 + timedelta(days=1)) == []
    assert [x.id for x in store.outbox()] == [b]
    assert store.requeue(T0) == 1
    again = store.get_alert(b)
    assert again is not None and again.status is AlertStatus.PENDING
    delivered = store.get_alert(a)
    assert delivered is not None and delivered.delivered_ts == "1.2"
    store.close()


def test_one_alert_per_channel_and_link_duplicates(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    state = store.feed_state(Feed("A", "https://a/"))
    matches = (RuleMatch("r1", ("x",)), RuleMatch("r2", ("y",), "#other"), RuleMatch("r3", ("z",)))
    outcomes = store.record_poll(
        state, [entry(1)], [Candidate(entry(1), matches)], T0, link_window=timedelta(days=30)
    )
    assert [(o.match.rule, o.alert_id is not None) for o in outcomes] == [
        ("r1", True),
        ("r2", True),
    ]
    assert outcomes[0].rules == ("r1", "r2", "r3")
    other = store.feed_state(Feed("B", "https://b/"))
    dup = entry(7, link=entry(1).link, source="B")
    [outcome] = store.record_poll(
        other, [dup], [Candidate(dup, matches[:1])], T0, link_window=timedelta(days=30)
    )
    assert outcome.alert_id is None and outcome.duplicate_of == outcomes[0].alert_id
    # Outside the link window the same link is news again.
    late = entry(8, link=entry(1).link, source="B")
    [fresh] = store.record_poll(
        other,
        [late],
        [Candidate(late, matches[:1])],
        T0 + timedelta(days=31),
        link_window=timedelta(days=30),
    )
    assert fresh.alert_id is not None
    store.close()


def test_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "m.db")
    state = store.feed_state(Feed("A", "https://a/"))
    bad = Entry(
        id="guid:1",
        source="A",
        link=None,
        title="t",
        summary="s",
        published=datetime(2026, 1, 1),
        published_from_feed=True,
    )  # naive: refused
    with pytest.raises(ValueError):
        store.record_poll(state, [entry(2), bad], [], T0, link_window=timedelta(days=1))
    assert store.seen_ids("A", ["guid:2"]) == set()
    assert store.feed_states() == []
    store.close()


def test_time_round_trip_orders_as_text() -> None:
    a, b = T0, T0 + timedelta(microseconds=1)
    assert to_db_time(a) < to_db_time(b)
    assert from_db_time(to_db_time(b)) == b
    with pytest.raises(ValueError, match="naive"):
        to_db_time(datetime(2026, 1, 1))


def test_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('instance_id', 'abc')")
    conn.execute(
        "INSERT INTO feeds (name, config_url, url) VALUES ('A', 'https://a/', 'https://a/')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = Store.open(path)
    assert store.schema_version == len(MIGRATIONS)
    [state] = store.feed_states()
    assert state.name == "A" and state.down_since is None and store.instance_id == "abc"
    store.close()
