"""Feed state and polls: what each feed looked like last time, and what it has shown."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitor.models import Entry, Feed, Validators
from monitor.store.records import Candidate, Clustering, FeedState, Outcome
from monitor.store.schema import _db_opt, _opt_time, to_db_time
from monitor.store.stories_db import _queue_candidate


class FeedsMixin:
    """The feed-state and poll methods of :class:`~monitor.store.Store`."""

    # Provided by :class:`monitor.store.core.Store`.
    _conn: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    # -- feed state ----------------------------------------------------------

    def feed_state(self, feed: Feed) -> FeedState:
        """The remembered state of ``feed``; fresh when the feed or its configured URL is new.

        Changing a feed's URL in ``feeds.yaml`` resets its HTTP state (validators,
        redirects, gone, backoff) but keeps what was seen, so nothing re-alerts.
        """
        row = self._conn.execute("SELECT * FROM feeds WHERE name = ?", (feed.name,)).fetchone()
        return _state_for(feed, row)

    def feed_states_for(self, feeds: Sequence[Feed]) -> dict[str, FeedState]:
        """:meth:`feed_state` of every feed in ``feeds``, by name, read in one query."""
        rows = {r["name"]: r for r in self._conn.execute("SELECT * FROM feeds")}
        return {feed.name: _state_for(feed, rows.get(feed.name)) for feed in feeds}

    def feed_states(self) -> list[FeedState]:
        """Every feed the database knows, by name."""
        rows = self._conn.execute("SELECT * FROM feeds ORDER BY name").fetchall()
        return [_feed_state_from_row(r) for r in rows]

    def save_feed_state(self, state: FeedState) -> None:
        """Write ``state`` (insert or replace) in its own transaction."""
        with self.transaction() as conn:
            _upsert_feed(conn, state)

    def save_feed_states(self, states: Sequence[FeedState]) -> None:
        """Write every state in ``states`` in one transaction."""
        if not states:
            return
        with self.transaction() as conn:
            for state in states:
                _upsert_feed(conn, state)

    def seen_ids(self, feed: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` this feed has already recorded."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT entry_id FROM seen WHERE feed = ? AND entry_id IN ({marks})",
                (feed, *chunk),
            )
            found.update(r[0] for r in rows)
        return found

    def record_poll(
        self,
        state: FeedState,
        entries: Sequence[Entry],
        candidates: Sequence[Candidate],
        now: datetime,
        *,
        link_window: timedelta,
        clustering: Clustering | None = None,
    ) -> list[Outcome]:
        """Record one successful poll atomically: feed state, seen entries and new alerts.

        Alerts are written in the same transaction that marks their entries
        seen, so an entry is never "seen" without its alert being queued.
        Each new alert starts a story or joins an open one (see
        :mod:`monitor.stories`): a report with the story's link is folded in
        (``duplicate_of``, no message), any other becomes a follow-up in the
        story's thread. A candidate whose canonical link already has an alert
        from the last ``link_window`` (outside any open story) is a duplicate.
        """
        clustering = clustering or Clustering()
        stamp = to_db_time(now)
        outcomes: list[Outcome] = []
        with self.transaction() as conn:
            _upsert_feed(conn, state)
            conn.executemany(
                """INSERT INTO seen (feed, entry_id, link, title, summary, published,
                                     first_seen, last_seen)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (feed, entry_id) DO UPDATE SET last_seen = excluded.last_seen""",
                [
                    (
                        state.name,
                        e.id,
                        e.link,
                        e.title,
                        e.summary,
                        to_db_time(e.published),
                        stamp,
                        stamp,
                    )
                    for e in entries
                ],
            )
            since = to_db_time(now - link_window)
            for cand in candidates:
                outcomes.extend(_queue_candidate(conn, cand, now, since, clustering))
        return outcomes

    def prune(self, now: datetime, retention: timedelta) -> int:
        """Forget seen entries absent from their feed for ``retention``; returns rows removed.

        An entry is touched each time its feed's body is parsed; an entry still
        in the latest parsed body (even if the feed has answered 304 for months)
        carries that poll's stamp and is kept, so it can never re-alert.
        """
        cutoff = to_db_time(now - retention)
        with self.transaction() as conn:
            seen = conn.execute(
                """DELETE FROM seen WHERE last_seen < ? AND last_seen < coalesce(
                       (SELECT last_parsed_at FROM feeds WHERE feeds.name = seen.feed), ?)""",
                (cutoff, cutoff),
            ).rowcount
            conn.execute(
                "DELETE FROM alerts WHERE status = 'delivered' AND delivered_at < ?", (cutoff,)
            )
            old = "SELECT id FROM stories WHERE last_joined_at < ?"
            conn.execute(f"DELETE FROM story_members WHERE story IN ({old})", (cutoff,))
            conn.execute("DELETE FROM stories WHERE last_joined_at < ?", (cutoff,))
        return int(seen)


# -- helpers -------------------------------------------------------------------


def _state_for(feed: Feed, row: sqlite3.Row | None) -> FeedState:
    if row is None:
        return FeedState(name=feed.name, config_url=feed.url, url=feed.url)
    if row["config_url"] != feed.url:
        return FeedState(
            name=feed.name,
            config_url=feed.url,
            url=feed.url,
            first_polled_at=_opt_time(row["first_polled_at"]),
            down_since=_opt_time(row["down_since"]),
        )
    return _feed_state_from_row(row)


def _upsert_feed(conn: sqlite3.Connection, s: FeedState) -> None:
    conn.execute(
        """INSERT INTO feeds (name, config_url, url, etag, last_modified, first_polled_at,
               last_polled_at, last_success_at, last_parsed_at, last_status, last_http_status,
               last_error, consecutive_failures, next_poll_at, gone, body_hash, entries_last_poll,
               down_since)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET
               config_url = excluded.config_url, url = excluded.url, etag = excluded.etag,
               last_modified = excluded.last_modified, first_polled_at = excluded.first_polled_at,
               last_polled_at = excluded.last_polled_at, last_success_at = excluded.last_success_at,
               last_parsed_at = excluded.last_parsed_at,
               last_status = excluded.last_status, last_http_status = excluded.last_http_status,
               last_error = excluded.last_error,
               consecutive_failures = excluded.consecutive_failures,
               next_poll_at = excluded.next_poll_at, gone = excluded.gone,
               body_hash = excluded.body_hash, entries_last_poll = excluded.entries_last_poll,
               down_since = excluded.down_since""",
        (
            s.name,
            s.config_url,
            s.url,
            s.validators.etag,
            s.validators.last_modified,
            _db_opt(s.first_polled_at),
            _db_opt(s.last_polled_at),
            _db_opt(s.last_success_at),
            _db_opt(s.last_parsed_at),
            s.last_status,
            s.last_http_status,
            s.last_error,
            s.consecutive_failures,
            _db_opt(s.next_poll_at),
            int(s.gone),
            s.body_hash,
            s.entries_last_poll,
            _db_opt(s.down_since),
        ),
    )


def _feed_state_from_row(row: sqlite3.Row) -> FeedState:
    return FeedState(
        name=row["name"],
        config_url=row["config_url"],
        url=row["url"],
        validators=Validators(etag=row["etag"], last_modified=row["last_modified"]),
        first_polled_at=_opt_time(row["first_polled_at"]),
        last_polled_at=_opt_time(row["last_polled_at"]),
        last_success_at=_opt_time(row["last_success_at"]),
        last_parsed_at=_opt_time(row["last_parsed_at"]),
        last_status=row["last_status"],
        last_http_status=row["last_http_status"],
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
        next_poll_at=_opt_time(row["next_poll_at"]),
        gone=bool(row["gone"]),
        body_hash=row["body_hash"],
        entries_last_poll=row["entries_last_poll"],
        down_since=_opt_time(row["down_since"]),
    )
