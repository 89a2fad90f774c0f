"""The schema and its migrations, the stored time format and the checks made on opening."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import StoreError

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_WIDTH = len("2024-01-02T03:04:05.000000Z")

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


def to_db_time(value: datetime) -> str:
    """Fixed-width UTC text, so SQL string comparison orders times correctly."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC time")
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db_time(value: str) -> datetime:
    """Inverse of :func:`to_db_time`."""
    if len(value) == _TIME_WIDTH and value.endswith("Z"):
        # The format we write: the C ISO parser is ~10x faster than strptime.
        return datetime.fromisoformat(value)
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


def _opt_time(value: str | None) -> datetime | None:
    return from_db_time(value) if value is not None else None


def _db_opt(value: datetime | None) -> str | None:
    return to_db_time(value) if value is not None else None


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
