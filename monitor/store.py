"""The state database: feed state, seen entries and the alert outbox (SQLite).

The database file is the only state. Schema changes are numbered migrations
recorded in ``PRAGMA user_version``. Every method that changes state commits
before it returns, so a crash leaves either the old or the new state, never a
half-written poll.

A ``Store`` belongs to one thread (the event loop's); the network calls of
fetch and delivery run elsewhere and hand their results back.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.errors import StoreError
from monitor.models import Alert, AlertStatus, Entry, Feed, RuleMatch, Validators
from monitor.parties import Gazetteer
from monitor.stories import (
    ClusterSettings,
    Decision,
    Features,
    Member,
    OpenStory,
    StoryView,
    assign,
    features,
)

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

MIGRATIONS: tuple[str, ...] = (
    # 1: feed state, seen entries, alert outbox.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        config_url TEXT NOT NULL,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        first_polled_at TEXT,
        last_polled_at TEXT,
        last_success_at TEXT,
        last_parsed_at TEXT,
        last_status TEXT,
        last_http_status INTEGER,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_poll_at TEXT,
        gone INTEGER NOT NULL DEFAULT 0,
        body_hash TEXT,
        entries_last_poll INTEGER
    );
    CREATE TABLE seen (
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        link TEXT,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        published TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (feed, entry_id)
    ) WITHOUT ROWID;
    CREATE INDEX seen_link ON seen(link);
    CREATE INDEX seen_last_seen ON seen(last_seen);
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        rules TEXT NOT NULL,
        matched_terms TEXT NOT NULL,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        link TEXT,
        source TEXT NOT NULL,
        published TEXT NOT NULL,
        channel TEXT,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        delivered_channel TEXT,
        delivered_ts TEXT,
        delivered_at TEXT
    );
    CREATE UNIQUE INDEX alerts_entry ON alerts(feed, entry_id, ifnull(channel, ''));
    CREATE INDEX alerts_status ON alerts(status, next_attempt_at);
    CREATE INDEX alerts_link ON alerts(link);
    """,
    # 2: remember that a feed was reported down, so it is reported once and recovers once.
    """
    ALTER TABLE feeds ADD COLUMN down_since TEXT
    """,
    # 3: stories. Every alert belongs to one; later reports are follow-ups in its thread
    # (or folded in when they share its link), and the root message shows the sources.
    """
    CREATE TABLE stories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT,
        root_alert INTEGER NOT NULL,
        started TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_joined_at TEXT NOT NULL,
        revision INTEGER NOT NULL DEFAULT 0,
        shown_revision INTEGER NOT NULL DEFAULT 0,
        update_attempts INTEGER NOT NULL DEFAULT 0,
        update_next_at TEXT,
        update_error TEXT
    );
    CREATE INDEX stories_open ON stories(created_at);
    CREATE TABLE story_members (
        story INTEGER NOT NULL,
        feed TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        alert_id INTEGER,
        source TEXT NOT NULL,
        title TEXT NOT NULL,
        published TEXT NOT NULL,
        features TEXT NOT NULL,
        rule TEXT NOT NULL,
        reason TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        PRIMARY KEY (story, feed, entry_id)
    ) WITHOUT ROWID;
    CREATE INDEX story_members_entry ON story_members(feed, entry_id);
    ALTER TABLE alerts ADD COLUMN story INTEGER;
    ALTER TABLE alerts ADD COLUMN thread_root INTEGER;
    ALTER TABLE alerts ADD COLUMN parties TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE alerts ADD COLUMN agreement TEXT
    """,
    # 4: per-rule routing. The rule's mention (Slack markup from the config) and, for a
    # digest rule, the rule name: due digest alerts of one rule and channel go out together.
    """
    ALTER TABLE alerts ADD COLUMN mention TEXT;
    ALTER TABLE alerts ADD COLUMN digest TEXT
    """,
)

# Longer than any retry delay the deliverer sets (30 min backoff cap, 1 h Retry-After cap).
RETRY_HORIZON = timedelta(hours=2)

_UNDELIVERED = (AlertStatus.PENDING, AlertStatus.SENDING, AlertStatus.FAILED)


def to_db_time(value: datetime) -> str:
    """Fixed-width UTC text, so SQL string comparison orders times correctly."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC time")
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db_time(value: str) -> datetime:
    """Inverse of :func:`to_db_time`."""
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def _opt_time(value: str | None) -> datetime | None:
    return from_db_time(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store remembers about one feed between polls."""

    name: str
    config_url: str
    url: str
    validators: Validators = field(default_factory=Validators)
    first_polled_at: datetime | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_parsed_at: datetime | None = None
    last_status: str | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None
    gone: bool = False
    body_hash: str | None = None
    entries_last_poll: int | None = None
    down_since: datetime | None = None  # when the operators were told it is down

    @property
    def first_poll(self) -> bool:
        """True until a poll of this feed has been recorded successfully."""
        return self.first_polled_at is None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A new entry that matched at least one rule, to be turned into alerts."""

    entry: Entry
    matches: tuple[RuleMatch, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``record_poll`` did with one candidate for one channel."""

    entry: Entry
    match: RuleMatch
    rules: tuple[str, ...]
    alert_id: int | None  # the new alert, or None when it was a duplicate
    duplicate_of: int | None  # the earlier alert with the same link
    story: int | None = None  # the story it started or joined
    parties: tuple[str, ...] = ()  # canonical names, first mention first
    agreement: str | None = None  # the kind of agreement, when the gazetteer names one
    story_reason: str | None = None  # why it joined its story (None: it started it)
    followup: bool = False  # True: a reply in the story's thread, not a message of its own


@dataclass(frozen=True, slots=True)
class Clustering:
    """What ``record_poll`` needs to put alerts into stories: the gazetteer and the knobs."""

    gazetteer: Gazetteer = field(default_factory=Gazetteer)
    settings: ClusterSettings = field(default_factory=ClusterSettings)


@dataclass(frozen=True, slots=True)
class StoryUpdate:
    """A story whose root message should be edited to show its current sources."""

    story: int
    root: Alert
    view: StoryView


class Store:
    """SQLite-backed state. Use :meth:`open` (or :meth:`open_snapshot` for dry runs)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self.instance_id = self._meta_value("instance_id")

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        path = Path(path)
        _refuse_empty_file(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open state database {path}: {exc}") from exc
        return cls._prepare(conn, str(path), wal=True)

    @classmethod
    def open_snapshot(cls, path: Path | str) -> Store:
        """An in-memory copy of the database at ``path`` (empty if it does not exist).

        Dry runs use this: the pipeline runs unchanged and nothing reaches disk.
        """
        path = Path(path)
        memory = sqlite3.connect(":memory:", isolation_level=None)
        if path.exists():
            try:
                source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
                try:
                    source.backup(memory)
                finally:
                    source.close()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read state database {path}: {exc}") from exc
        return cls._prepare(memory, ":memory:", wal=False)

    @classmethod
    def _prepare(cls, conn: sqlite3.Connection, path: str, *, wal: bool) -> Store:
        conn.row_factory = sqlite3.Row
        try:
            if wal:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            if wal:
                _check_integrity(conn, path)
            _migrate(conn, path)
            if wal:
                # Prove we can write now, not on the first poll: a read-only file fails here.
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)",
                    (to_db_time(datetime.now(UTC)),),
                )
        except sqlite3.Error as exc:
            conn.close()
            raise _open_error(path, exc) from exc
        return cls(conn, path)

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._conn.close()

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: committed on success, rolled back on any error."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to the state database {self.path}: {exc}") from exc
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"cannot write to the state database {self.path}: {exc}") from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"cannot write to the state database {self.path}: {exc}") from exc

    def _rollback(self) -> None:
        # After a failed COMMIT (disk full, I/O error) SQLite may have rolled back already.
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _meta_value(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"state database {self.path} has no {key}; it may be damaged")
        return str(row[0])

    # -- feed state ----------------------------------------------------------

    def feed_state(self, feed: Feed) -> FeedState:
        """The remembered state of ``feed``; fresh when the feed or its configured URL is new.

        Changing a feed's URL in ``feeds.yaml`` resets its HTTP state (validators,
        redirects, gone, backoff) but keeps what was seen, so nothing re-alerts.
        """
        row = self._conn.execute("SELECT * FROM feeds WHERE name = ?", (feed.name,)).fetchone()
        if row is None or row["config_url"] != feed.url:
            if row is None:
                return FeedState(name=feed.name, config_url=feed.url, url=feed.url)
            return FeedState(
                name=feed.name,
                config_url=feed.url,
                url=feed.url,
                first_polled_at=_opt_time(row["first_polled_at"]),
                down_since=_opt_time(row["down_since"]),
            )
        return _feed_state_from_row(row)

    def feed_states(self) -> list[FeedState]:
        """Every feed the database knows, by name."""
        rows = self._conn.execute("SELECT * FROM feeds ORDER BY name").fetchall()
        return [_feed_state_from_row(r) for r in rows]

    def save_feed_state(self, state: FeedState) -> None:
        """Write ``state`` (insert or replace) in its own transaction."""
        with self.transaction() as conn:
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

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read-only reports (explain, backtest)."""
        return self._conn

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

    # -- the outbox ----------------------------------------------------------

    def enqueue_alert(
        self, entry: Entry, match: RuleMatch, now: datetime, *, rules: Sequence[str] = ()
    ) -> int:
        """Insert one pending alert for ``entry`` (its own transaction); returns its id.

        The match's routing applies: quiet hours or a digest schedule hold it.
        """
        with self.transaction() as conn:
            return _insert_alert(conn, entry, match, tuple(rules) or (match.rule,), now)

    def due_alerts(self, now: datetime, limit: int | None = None) -> list[Alert]:
        """Pending or in-flight alerts whose next attempt is due, oldest first.

        A retry scheduled further ahead than any backoff could reach means the
        clock moved backwards since: such an alert is due now, not in a day.
        """
        sql = """SELECT * FROM alerts WHERE status IN ('pending', 'sending')
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?
                      OR (attempts > 0 AND next_attempt_at > ?)) ORDER BY id"""
        params: tuple[object, ...] = (to_db_time(now), to_db_time(now + RETRY_HORIZON))
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [_alert_from_row(r) for r in self._conn.execute(sql, params)]

    def get_alert(self, alert_id: int) -> Alert | None:
        """One alert by id."""
        row = self._conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert_from_row(row) if row is not None else None

    def mark_sending(self, alert_id: int, channel: str | None, now: datetime) -> None:
        """Record that a send is about to start (committed before the network call)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE alerts SET status = 'sending', delivered_channel = ? WHERE id = ?",
                (channel, alert_id),
            )

    def mark_delivered(
        self, alert_id: int, channel: str | None, ts: str | None, now: datetime
    ) -> None:
        """Record that Slack (or stdout) accepted the alert."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE alerts SET status = 'delivered', delivered_channel = ?,
                   delivered_ts = ?, delivered_at = ?, last_error = NULL,
                   next_attempt_at = NULL WHERE id = ?""",
                (channel, ts, to_db_time(now), alert_id),
            )

    def mark_sending_many(self, alert_ids: Sequence[int], channel: str | None) -> None:
        """``mark_sending`` for every alert of one digest message, in one transaction."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE alerts SET status = 'sending', delivered_channel = ? WHERE id = ?",
                [(channel, i) for i in alert_ids],
            )

    def mark_delivered_many(
        self, alert_ids: Sequence[int], channel: str | None, ts: str | None, now: datetime
    ) -> None:
        """``mark_delivered`` for every alert of one digest message (same ``ts``)."""
        with self.transaction() as conn:
            conn.executemany(
                """UPDATE alerts SET status = 'delivered', delivered_channel = ?,
                   delivered_ts = ?, delivered_at = ?, last_error = NULL,
                   next_attempt_at = NULL WHERE id = ?""",
                [(channel, ts, to_db_time(now), i) for i in alert_ids],
            )

    def mark_retry(
        self, alert_id: int, error: str, next_attempt_at: datetime, *, maybe_sent: bool
    ) -> None:
        """Keep the alert for a later attempt; SENDING when it may have reached Slack."""
        status = AlertStatus.SENDING if maybe_sent else AlertStatus.PENDING
        with self.transaction() as conn:
            conn.execute(
                """UPDATE alerts SET status = ?, attempts = attempts + 1, last_error = ?,
                   next_attempt_at = ? WHERE id = ?""",
                (status.value, error, to_db_time(next_attempt_at), alert_id),
            )

    def mark_failed(self, alert_id: int, error: str) -> None:
        """Slack refused this alert for good; keep it for ``monitor outbox``."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE alerts SET status = 'failed', attempts = attempts + 1,
                   last_error = ? WHERE id = ?""",
                (error, alert_id),
            )

    def outbox(self, statuses: Sequence[AlertStatus] = _UNDELIVERED) -> list[Alert]:
        """Alerts in the given states, oldest first."""
        marks = ",".join("?" * len(statuses))
        rows = self._conn.execute(
            f"SELECT * FROM alerts WHERE status IN ({marks}) ORDER BY id",
            [s.value for s in statuses],
        )
        return [_alert_from_row(r) for r in rows]

    def requeue(self, now: datetime) -> int:
        """Make every undelivered alert due now (failed ones become pending again)."""
        with self.transaction() as conn:
            cur = conn.execute(
                """UPDATE alerts SET next_attempt_at = NULL,
                   status = CASE status WHEN 'failed' THEN 'pending' ELSE status END
                   WHERE status IN ('pending', 'sending', 'failed')"""
            )
        return int(cur.rowcount)

    # -- stories -------------------------------------------------------------

    def story_view(self, alert: Alert) -> tuple[StoryView | None, int | None]:
        """The story context of ``alert`` and its thread root's id (None for a root).

        Alerts queued before stories existed (or by :meth:`enqueue_alert`) have none.
        """
        row = self._conn.execute(
            "SELECT story, thread_root, parties, agreement FROM alerts WHERE id = ?", (alert.id,)
        ).fetchone()
        if row is None or row["story"] is None:
            return None, None
        story = int(row["story"])
        root_id = int(row["thread_root"]) if row["thread_root"] is not None else None
        head = self._conn.execute(
            """SELECT s.revision, a.delivered_ts, a.title FROM stories s
               JOIN alerts a ON a.id = s.root_alert WHERE s.id = ?""",
            (story,),
        ).fetchone()
        view = StoryView(
            story=story,
            parties=tuple(json.loads(row["parties"])),
            agreement=row["agreement"],
            sources=self._story_sources(story),
            revision=int(head[0]) if head else 0,
            followup=root_id is not None,
            thread_ts=head[1] if head and root_id is not None else None,
            root_title=str(head[2]) if head else "",
        )
        return view, root_id

    def _story_sources(self, story: int) -> tuple[str, ...]:
        rows = self._conn.execute(
            """SELECT source FROM story_members WHERE story = ?
               ORDER BY rule != 'new', joined_at, published, feed, entry_id""",
            (story,),
        )
        return tuple(dict.fromkeys(str(r[0]) for r in rows))

    def mark_story_shown(self, story: int, revision: int) -> None:
        """The root message in Slack now shows ``revision`` (never goes backwards)."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE stories SET shown_revision = max(shown_revision, ?),
                   update_error = NULL, update_attempts = 0, update_next_at = NULL
                   WHERE id = ?""",
                (revision, story),
            )

    def story_updates(self, now: datetime) -> list[StoryUpdate]:
        """Stories whose delivered root shows fewer sources than are known, due now.

        One row per story however many reports joined since: updates coalesce. A root
        listed in a digest is never edited (the edit would replace the whole digest).
        """
        rows = self._conn.execute(
            """SELECT s.id, s.root_alert FROM stories s JOIN alerts a ON a.id = s.root_alert
               WHERE s.revision > s.shown_revision AND a.status = 'delivered'
               AND a.delivered_ts IS NOT NULL AND a.digest IS NULL
               AND (s.update_next_at IS NULL OR s.update_next_at <= ?) ORDER BY s.id""",
            (to_db_time(now),),
        ).fetchall()
        out: list[StoryUpdate] = []
        for story, root_id in rows:
            root = self.get_alert(int(root_id))
            if root is None:
                continue
            view, _ = self.story_view(root)
            if view is not None:
                out.append(StoryUpdate(int(story), root, view))
        return out

    def defer_story_update(self, story: int, error: str, when: datetime) -> None:
        """Keep a story update for a later attempt."""
        with self.transaction() as conn:
            conn.execute(
                """UPDATE stories SET update_attempts = update_attempts + 1, update_error = ?,
                   update_next_at = ? WHERE id = ?""",
                (error, to_db_time(when), story),
            )

    def story_update_attempts(self, story: int) -> int:
        """How many times updating this story's root has failed in a row."""
        row = self._conn.execute(
            "SELECT update_attempts FROM stories WHERE id = ?", (story,)
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def defer(self, alert_ids: Sequence[int], when: datetime) -> None:
        """Hold alerts until ``when`` without counting an attempt (follow-ups in a batch)."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE alerts SET next_attempt_at = ? WHERE id = ?",
                [(to_db_time(when), i) for i in alert_ids],
            )

    def story_membership(
        self, *, link: str | None = None, feed: str | None = None, entry_id: str | None = None
    ) -> list[tuple[int, str, str, str, str]]:
        """Why an entry is in its story(ies): ``(story, source, title, rule, reason)`` rows.

        Look up by canonical ``link``, or by ``feed`` and ``entry_id``. For ``monitor explain``.
        """
        params: tuple[str, ...]
        if link is not None:
            where, params = "json_extract(features, '$.link') = ?", (link,)
        else:
            where, params = "feed = ? AND entry_id = ?", (feed or "", entry_id or "")
        rows = self._conn.execute(
            f"""SELECT story, source, title, rule, reason FROM story_members WHERE {where}
                ORDER BY story""",
            params,
        )
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def count_alerts(self, status: AlertStatus) -> int:
        """How many alerts are in ``status``."""
        row = self._conn.execute(
            "SELECT count(*) FROM alerts WHERE status = ?", (status.value,)
        ).fetchone()
        return int(row[0])


# -- helpers -------------------------------------------------------------------


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path} was written by a newer monitor (schema {version}, this one knows "
            f"{len(MIGRATIONS)}); upgrade the monitor or use another --state file"
        )
    for number in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            if number == 0:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('instance_id', ?)",
                    (secrets.token_hex(8),),
                )
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_ENVIRONMENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")


def _open_error(path: str, exc: sqlite3.Error) -> StoreError:
    """Advice that fits the failure: a damaged file is not the same as a full disk."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_ENVIRONMENT) or "readonly" in str(exc) or "read-only" in str(exc):
        return StoreError(
            f"cannot use the state database {path} ({exc}): the disk may be full or the file "
            "read-only. Free some space or fix the mount/permissions, and keep the file where "
            "it is: it holds alerts that are still waiting to be sent."
        )
    return StoreError(
        f"{path} is not a usable state database ({exc}). Refusing to start over "
        "silently: move the file aside to start fresh (every feed's next poll will "
        "then be a first poll, which alerts on nothing)."
    )


def _check_integrity(conn: sqlite3.Connection, path: str) -> None:
    """Refuse a damaged file at start rather than fail every poll later."""
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == 0:
        return  # a new file: nothing to check yet
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != "ok":
        detail = result[0] if result is not None else "no answer"
        raise sqlite3.DatabaseError(f"integrity check failed: {detail}")


def _refuse_empty_file(path: Path) -> None:
    """A 0-byte state file is a truncated database, not a fresh start (it would re-alert)."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return  # missing: a genuinely new database
    wal = path.with_name(path.name + "-wal")
    if empty and not (wal.exists() and wal.stat().st_size > 0):
        raise StoreError(
            f"{path} is empty (0 bytes): a truncated state database. Refusing to start over "
            "silently; if this is a brand-new install, delete the file."
        )


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split instead (no ';' in our DDL strings).
    return [s.strip() for s in script.split(";") if s.strip()]


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


def _db_opt(value: datetime | None) -> str | None:
    return to_db_time(value) if value is not None else None


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


def _queue_candidate(
    conn: sqlite3.Connection, cand: Candidate, now: datetime, since: str, clustering: Clustering
) -> list[Outcome]:
    """One alert per distinct channel among the candidate's matches.

    Stories are per channel: a rule's channel override gets its own thread.
    """
    by_channel = _match_per_channel(cand.matches)
    rules = tuple(m.rule for m in cand.matches)
    entry = cand.entry
    feats = features(entry.title, entry.summary, entry.link, entry.published, clustering.gazetteer)
    outcomes: list[Outcome] = []
    for channel, match in by_channel.items():
        same_entry = _alert_for_entry(conn, entry, channel)
        if same_entry is not None:
            outcomes.append(
                Outcome(entry, match, rules, None, same_entry, story=_story_of(conn, same_entry))
            )
            continue
        open_stories = _open_stories(conn, channel, now, clustering.settings)
        decision = assign(feats, open_stories, clustering.settings)
        earlier = None if decision.story else _earlier_link_alert(conn, entry, channel, since)
        if earlier is not None:
            # The same link alerted before, outside any open story: a plain duplicate.
            outcomes.append(
                Outcome(entry, match, rules, None, earlier, story=_story_of(conn, earlier))
            )
            continue
        if decision.story is None:
            alert_id = _insert_alert(conn, entry, match, rules, now, feats=feats)
            story = _new_story(conn, alert_id, channel, entry, feats, now, decision)
            outcomes.append(
                Outcome(
                    entry,
                    match,
                    rules,
                    alert_id,
                    None,
                    story=story,
                    parties=feats.parties,
                    agreement=feats.agreement,
                )
            )
            continue
        root = _root_alert(conn, decision.story)
        if decision.rule == "link":
            _join_story(conn, decision, None, entry, feats, now)
            folded_into = decision.member.alert_id if decision.member else None
            outcomes.append(
                Outcome(
                    entry,
                    match,
                    rules,
                    None,
                    folded_into if folded_into is not None else root,
                    story=decision.story,
                    story_reason=decision.reason,
                    parties=feats.parties,
                    agreement=feats.agreement,
                )
            )
            continue
        alert_id = _insert_alert(
            conn, entry, match, rules, now, feats=feats, story=decision.story, thread_root=root
        )
        _join_story(conn, decision, alert_id, entry, feats, now)
        outcomes.append(
            Outcome(
                entry,
                match,
                rules,
                alert_id,
                None,
                story=decision.story,
                story_reason=decision.reason,
                followup=True,
                parties=feats.parties,
                agreement=feats.agreement,
            )
        )
    return outcomes


def _match_per_channel(matches: Sequence[RuleMatch]) -> dict[str | None, RuleMatch]:
    """The rule that speaks for each channel: the first immediate one, else the first.

    An entry that an immediate rule wants posted now is not held for another rule's digest.
    """
    chosen: dict[str | None, RuleMatch] = {}
    for match in matches:
        held = chosen.get(match.channel)
        if held is None or (_is_digest(held) and not _is_digest(match)):
            chosen[match.channel] = match
    return chosen


def _is_digest(match: RuleMatch) -> bool:
    return match.routing is not None and match.routing.mode == "digest"


def _alert_for_entry(conn: sqlite3.Connection, entry: Entry, channel: str | None) -> int | None:
    row = conn.execute(
        """SELECT id FROM alerts WHERE feed = ? AND entry_id = ? AND ifnull(channel, '') = ?""",
        (entry.source, entry.id, channel or ""),
    ).fetchone()
    return int(row[0]) if row is not None else None


def _earlier_link_alert(
    conn: sqlite3.Connection, entry: Entry, channel: str | None, since: str
) -> int | None:
    if entry.link is None:
        return None
    row = conn.execute(
        """SELECT id FROM alerts WHERE link = ? AND ifnull(channel, '') = ?
           AND created_at >= ? ORDER BY id LIMIT 1""",
        (entry.link, channel or "", since),
    ).fetchone()
    return int(row[0]) if row is not None else None


def _story_of(conn: sqlite3.Connection, alert_id: int) -> int | None:
    row = conn.execute("SELECT story FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None


def _root_alert(conn: sqlite3.Connection, story: int) -> int:
    row = conn.execute("SELECT root_alert FROM stories WHERE id = ?", (story,)).fetchone()
    return int(row[0])


def _open_stories(
    conn: sqlite3.Connection, channel: str | None, now: datetime, settings: ClusterSettings
) -> list[OpenStory]:
    """Stories of ``channel`` created within the window, with every member's features."""
    rows = conn.execute(
        """SELECT s.id, s.started, m.alert_id, m.source, m.title, m.published, m.features
           FROM stories s JOIN story_members m ON m.story = s.id
           WHERE ifnull(s.channel, '') = ? AND s.created_at >= ?
           ORDER BY s.id, m.joined_at, m.feed, m.entry_id""",
        (channel or "", to_db_time(now - settings.window)),
    ).fetchall()
    stories: dict[int, tuple[datetime, list[Member]]] = {}
    for row in rows:
        _, members = stories.setdefault(row[0], (from_db_time(row[1]), []))
        feats = Features.from_json(json.loads(row[6]), from_db_time(row[5]))
        members.append(Member(row[2], row[3], row[4], feats))
    return [OpenStory(sid, started, tuple(m)) for sid, (started, m) in stories.items()]


def _new_story(
    conn: sqlite3.Connection,
    alert_id: int,
    channel: str | None,
    entry: Entry,
    feats: Features,
    now: datetime,
    decision: Decision,
) -> int:
    stamp = to_db_time(now)
    cur = conn.execute(
        """INSERT INTO stories (channel, root_alert, started, created_at, last_joined_at)
           VALUES (?, ?, ?, ?, ?)""",
        (channel, alert_id, to_db_time(entry.published), stamp, stamp),
    )
    assert cur.lastrowid is not None
    story = int(cur.lastrowid)
    conn.execute("UPDATE alerts SET story = ? WHERE id = ?", (story, alert_id))
    _insert_member(conn, story, alert_id, entry, feats, now, decision)
    return story


def _join_story(
    conn: sqlite3.Connection,
    decision: Decision,
    alert_id: int | None,
    entry: Entry,
    feats: Features,
    now: datetime,
) -> None:
    assert decision.story is not None
    _insert_member(conn, decision.story, alert_id, entry, feats, now, decision)
    # A new revision: the root message should now show one more source.
    conn.execute(
        """UPDATE stories SET revision = revision + 1, last_joined_at = ?,
           started = min(started, ?), update_next_at = NULL, update_attempts = 0
           WHERE id = ?""",
        (to_db_time(now), to_db_time(entry.published), decision.story),
    )


def _insert_member(
    conn: sqlite3.Connection,
    story: int,
    alert_id: int | None,
    entry: Entry,
    feats: Features,
    now: datetime,
    decision: Decision,
) -> None:
    conn.execute(
        """INSERT OR IGNORE INTO story_members (story, feed, entry_id, alert_id, source, title,
               published, features, rule, reason, joined_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            story,
            entry.source,
            entry.id,
            alert_id,
            entry.source,
            entry.title,
            to_db_time(entry.published),
            json.dumps(feats.to_json()),
            decision.rule,
            decision.reason,
            to_db_time(now),
        ),
    )


def _insert_alert(
    conn: sqlite3.Connection,
    entry: Entry,
    match: RuleMatch,
    rules: tuple[str, ...],
    now: datetime,
    *,
    feats: Features | None = None,
    story: int | None = None,
    thread_root: int | None = None,
) -> int:
    routing = match.routing
    # Quiet hours and digest schedules hold the alert in the outbox: never lost, only later.
    hold = routing.hold_until(now) if routing is not None else None
    cur = conn.execute(
        """INSERT INTO alerts (feed, entry_id, rule, rules, matched_terms, title, summary, link,
               source, published, channel, created_at, story, thread_root, parties, agreement,
               mention, digest, next_attempt_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            entry.source,
            entry.id,
            match.rule,
            json.dumps(list(rules)),
            json.dumps(list(match.matched_terms)),
            entry.title,
            entry.summary,
            entry.link,
            entry.source,
            to_db_time(entry.published),
            match.channel,
            to_db_time(now),
            story,
            thread_root,
            json.dumps(list(feats.parties) if feats else []),
            feats.agreement if feats else None,
            routing.mention if routing is not None else None,
            match.rule if _is_digest(match) else None,
            _db_opt(hold),
        ),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def _alert_from_row(row: sqlite3.Row) -> Alert:
    return Alert(
        id=row["id"],
        feed=row["feed"],
        entry_id=row["entry_id"],
        rule=row["rule"],
        rules=tuple(json.loads(row["rules"])),
        matched_terms=tuple(json.loads(row["matched_terms"])),
        title=row["title"],
        summary=row["summary"],
        link=row["link"],
        source=row["source"],
        published=from_db_time(row["published"]),
        channel=row["channel"],
        created_at=from_db_time(row["created_at"]),
        status=AlertStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=_opt_time(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_channel=row["delivered_channel"],
        delivered_ts=row["delivered_ts"],
        mention=row["mention"],
        digest=row["digest"],
    )
