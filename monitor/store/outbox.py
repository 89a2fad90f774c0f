"""The alert outbox: queueing, due alerts and the delivery state of each alert."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitor.models import Alert, AlertStatus, Entry, RuleMatch
from monitor.store.schema import _db_opt, _opt_time, from_db_time, to_db_time
from monitor.stories import Features

# Longer than any retry delay the deliverer sets (30 min backoff cap, 1 h Retry-After cap).
RETRY_HORIZON = timedelta(hours=2)

_UNDELIVERED = (AlertStatus.PENDING, AlertStatus.SENDING, AlertStatus.FAILED)


class OutboxMixin:
    """The outbox methods of :class:`~monitor.store.Store`."""

    # Provided by :class:`monitor.store.core.Store`.
    _conn: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

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


# -- helpers -------------------------------------------------------------------


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


def _is_digest(match: RuleMatch) -> bool:
    return match.routing is not None and match.routing.mode == "digest"


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
