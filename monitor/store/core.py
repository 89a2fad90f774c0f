"""The :class:`Store`: opening the database, transactions, and the mixins combined."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from monitor.errors import StoreError
from monitor.store.feeds import FeedsMixin
from monitor.store.outbox import OutboxMixin
from monitor.store.schema import (
    _check_integrity,
    _migrate,
    _open_error,
    _refuse_empty_file,
    to_db_time,
)
from monitor.store.stories_db import StoriesMixin


class Store(FeedsMixin, OutboxMixin, StoriesMixin):
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

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read-only reports (explain, backtest)."""
        return self._conn
