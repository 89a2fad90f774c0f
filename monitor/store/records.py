"""The values the store hands in and out: feed state, poll candidates and outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.models import Alert, Entry, RuleMatch, Validators
from monitor.parties import Gazetteer
from monitor.stories import ClusterSettings, StoryView


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
