"""Which entries of a poll may alert: new ones, not the backlog, not stale re-appearances.

Pure: entries, what the feed has seen, the rules and ``now`` in; candidates
out. Cross-feed duplicates (the same canonical link from two feeds) are
settled inside the store's transaction, where concurrent polls meet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.durations import parse_duration
from monitor.models import Entry
from monitor.rules import RuleSet
from monitor.store import Candidate


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a feed's first poll may alert on: entries published within ``window``, or all."""

    window: timedelta | None  # None: everything

    @classmethod
    def parse(cls, text: str) -> Backfill:
        """``all`` or a duration such as ``7d``; ValueError otherwise."""
        if text.strip().lower() == "all":
            return cls(None)
        return cls(parse_duration(text))

    def admits(self, entry: Entry, now: datetime) -> bool:
        """True when a first poll should alert on ``entry``."""
        return self.window is None or entry.published >= now - self.window


def new_entries(entries: Iterable[Entry], seen: set[str]) -> list[Entry]:
    """Entries whose id this feed has not recorded, first occurrence only."""
    out: list[Entry] = []
    ids: set[str] = set()
    for entry in entries:
        if entry.id in seen or entry.id in ids:
            continue
        ids.add(entry.id)
        out.append(entry)
    return out


def eligible(
    entries: Sequence[Entry],
    *,
    first_poll: bool,
    backfill: Backfill | None,
    now: datetime,
    max_age: timedelta,
    last_success: datetime | None = None,
) -> list[Entry]:
    """New entries that may alert.

    A first poll only records what is there (the backlog), unless ``backfill``
    admits entries. Later polls skip entries dated older than ``max_age``:
    an old item re-surfacing after its seen-row was pruned must not alert.
    The age is measured from the earlier of ``now`` and the feed's last
    success, so a clock that jumps forward cannot make a new entry look old
    (it would be recorded as seen and never alert).
    """
    if first_poll:
        return [e for e in entries if backfill is not None and backfill.admits(e, now)]
    reference = min(now, last_success) if last_success is not None else now
    cutoff = reference - max_age
    return [e for e in entries if not (e.published_from_feed and e.published < cutoff)]


def candidates(entries: Iterable[Entry], rules: RuleSet) -> list[Candidate]:
    """Entries that match at least one rule, with their matches."""
    out: list[Candidate] = []
    for entry in entries:
        matches = rules.match(entry)
        if matches:
            out.append(Candidate(entry, tuple(matches)))
    return out
