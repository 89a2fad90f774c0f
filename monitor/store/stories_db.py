"""Stories in the database: putting new alerts into stories, and keeping root messages current."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.models import Alert, AlertStatus, Entry, RuleMatch
from monitor.store.outbox import _insert_alert, _is_digest
from monitor.store.records import Candidate, Clustering, Outcome, StoryUpdate
from monitor.store.schema import from_db_time, to_db_time
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


class StoriesMixin:
    """The story methods of :class:`~monitor.store.Store`."""

    # Provided by :class:`monitor.store.core.Store`.
    _conn: sqlite3.Connection

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def get_alert(self, alert_id: int) -> Alert | None: ...

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
