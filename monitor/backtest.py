"""Replay stored entries through candidate rules: ``monitor backtest``.

Before a rule change is committed, :func:`backtest` runs the entries the state
database still remembers (the ``seen`` table keeps each entry's title, summary
and link for the retention period) through both the candidate rules and the
live ones, and reports what would have alerted and what the change adds or
removes. Nothing is written and nothing is sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Entry
from monitor.rules import RuleSet
from monitor.store import from_db_time, to_db_time

_TITLE_WIDTH = 80


@dataclass(frozen=True)
class BacktestHit:
    """One stored entry that a rule set alerts on, and the rules that matched it."""

    feed: str
    entry_id: str
    title: str
    link: str | None
    published: datetime
    rules: tuple[str, ...]


@dataclass(frozen=True)
class BacktestResult:
    """Alerts with the candidate and the live rules, and the difference.

    ``added`` are entries the candidate rules alert on and the live ones do
    not; ``removed`` the reverse (as the live rules reported them). Entries
    both alert on, with different rules, are in neither. Newest first.
    """

    candidate: list[BacktestHit]
    live: list[BacktestHit]
    added: list[BacktestHit]
    removed: list[BacktestHit]
    entries: int


def stored_entries(
    conn: sqlite3.Connection,
    since: datetime,
    feed_tags: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[Entry]:
    """Entries in the ``seen`` table published or first seen at or after ``since``.

    Read-only. ``Entry.source`` is the feed's name; ``tags`` come from
    ``feed_tags`` (feed name -> tags from ``feeds.yaml``), since the store does
    not keep them, and the entry's own categories are not stored at all.
    An entry whose published time equals its first-seen time is taken to have
    had no date in its feed.
    """
    tags = feed_tags or {}
    stamp = to_db_time(since)
    rows = conn.execute(
        """SELECT feed, entry_id, link, title, summary, published, first_seen FROM seen
           WHERE published >= ? OR first_seen >= ? ORDER BY published, feed, entry_id""",
        (stamp, stamp),
    )
    for feed, entry_id, link, title, summary, published, first_seen in rows:
        yield Entry(
            id=str(entry_id),
            source=str(feed),
            link=link,
            title=str(title),
            summary=str(summary),
            published=from_db_time(published),
            published_from_feed=published != first_seen,
            tags=tuple(tags.get(str(feed), ())),
        )


def backtest(entries: Iterable[Entry], candidate: RuleSet, live: RuleSet) -> BacktestResult:
    """Match every entry with both rule sets and compare the alerts (pure)."""
    with_candidate: list[BacktestHit] = []
    with_live: list[BacktestHit] = []
    added: list[BacktestHit] = []
    removed: list[BacktestHit] = []
    count = 0
    for entry in entries:
        count += 1
        new = _hit(entry, candidate)
        old = _hit(entry, live)
        if new is not None:
            with_candidate.append(new)
            if old is None:
                added.append(new)
        if old is not None:
            with_live.append(old)
            if new is None:
                removed.append(old)
    return BacktestResult(
        candidate=_newest_first(with_candidate),
        live=_newest_first(with_live),
        added=_newest_first(added),
        removed=_newest_first(removed),
        entries=count,
    )


def _hit(entry: Entry, rules: RuleSet) -> BacktestHit | None:
    matches = rules.match(entry)
    if not matches:
        return None
    names = tuple(dict.fromkeys(m.rule for m in matches))
    return BacktestHit(entry.source, entry.id, entry.title, entry.link, entry.published, names)


def _newest_first(hits: list[BacktestHit]) -> list[BacktestHit]:
    return sorted(hits, key=lambda h: (h.published, h.feed, h.entry_id), reverse=True)


def render_backtest(result: BacktestResult) -> str:
    """A plain-text report: the candidate rules' alerts, then ``+`` added and ``-`` removed."""
    lines = [
        f"{result.entries} stored entries checked: the candidate rules alert on "
        f"{len(result.candidate)}, the live rules on {len(result.live)} "
        f"(+{len(result.added)} added, -{len(result.removed)} removed)",
        "",
        "Would alert with the candidate rules:",
    ]
    lines += _table(result.candidate, " ") or ["  (nothing)"]
    lines += ["", "+ added (the live rules do not alert on these):"]
    lines += _table(result.added, "+") or ["  (nothing)"]
    lines += ["", "- removed (the live rules alert on these, the candidate rules do not):"]
    lines += _table(result.removed, "-") or ["  (nothing)"]
    return "\n".join(lines) + "\n"


def _table(hits: Sequence[BacktestHit], sign: str) -> list[str]:
    if not hits:
        return []
    feed_width = min(24, max(len("FEED"), *(len(h.feed) for h in hits)))
    out = [f"   {'PUBLISHED (UTC)':<16}  {'FEED':<{feed_width}}  TITLE  [RULES]"]
    for hit in hits:
        title = " ".join(hit.title.split())
        if len(title) > _TITLE_WIDTH:
            title = title[: _TITLE_WIDTH - 1] + "…"
        feed = hit.feed[:feed_width]
        out.append(
            f"{sign}  {hit.published:%Y-%m-%d %H:%M}  {feed:<{feed_width}}  {title}  "
            f"[{', '.join(hit.rules)}]"
        )
        if hit.link:
            out.append(f"{'':>{20 + feed_width}}  {hit.link}")
    return out
