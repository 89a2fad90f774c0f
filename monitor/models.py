"""Typed records passed between the pipeline stages.

One entry flows through these in order::

    Feed ─► FetchResult ─► ParsedFeed ─► Entry ─► RuleMatch ─► Alert

Every record is frozen: a stage returns new records, it never edits the ones
it was given.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # routing imports the scheduler; records only need the name
    from monitor.routing import Routing

FeedKind = Literal["rss", "html", "sitemap"]
DateOrder = Literal["dmy", "mdy", "ymd"]


@dataclass(frozen=True, slots=True)
class HtmlSelectors:
    """CSS selectors that turn an HTML news listing into entries (``type: html``).

    ``item`` selects each repeating news item on the page; the other fields
    are relative to one item. A field is ``"css"`` (the element's text) or
    ``"css@attr"`` (an attribute, e.g. ``"h3 a@href"``, ``"time@datetime"``);
    ``"@attr"`` reads the item element itself. ``link`` defaults to the first
    ``a@href`` in the item, ``title`` to that link's text.
    """

    item: str
    title: str | None = None
    link: str | None = None
    date: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class Feed:
    """One source from ``rules/feeds.yaml``.

    ``kind`` is the ``type:`` key: ``rss`` (RSS, Atom or JSON Feed, detected
    from the body), ``html`` (a news listing read with ``select``) or
    ``sitemap`` (an XML sitemap; ``match`` filters its URLs and at most
    ``max_pages`` new pages are fetched per poll for their title and summary).
    ``timezone`` (IANA name) applies to page dates that carry none;
    ``date_order`` settles numeric dates such as 03/04/2026.
    """

    name: str
    url: str
    tags: tuple[str, ...] = ()
    interval: timedelta = timedelta(minutes=15)
    kind: FeedKind = "rss"
    select: HtmlSelectors | None = None
    match: str | None = None
    max_pages: int = 10
    timezone: str | None = None
    date_order: DateOrder = "dmy"


class FetchStatus(enum.Enum):
    """What one HTTP poll of a feed came to."""

    OK = "ok"  # 200 with a body to parse
    NOT_MODIFIED = "not_modified"  # 304: nothing to do
    GONE = "gone"  # 410: stop polling until the URL changes
    RETRY_LATER = "retry_later"  # 429/503: the server asked us to wait
    ERROR = "error"  # anything else: network, timeout, cap, 4xx/5xx


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators remembered between polls."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of fetching one feed URL once.

    ``headers`` has lower-case keys, ready for feedparser's
    ``response_headers``. ``moved_to`` is set only when every redirect hop was
    permanent (301/308): the stored URL should then change.
    """

    status: FetchStatus
    url: str
    final_url: str
    http_status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    validators: Validators = field(default_factory=Validators)
    moved_to: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After
    error: str | None = None  # a sentence a person can act on
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class RawEntry:
    """An entry as feedparser gave it, before normalisation (all text untrusted)."""

    guid: str | None
    link: str | None
    title: str
    title_type: str
    summary: str
    summary_type: str
    published: datetime | None  # UTC, None when the feed gave no usable date
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What feedparser made of a body."""

    title: str
    entries: tuple[RawEntry, ...]
    bozo: bool = False
    bozo_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """A normalised feed entry: plain text, canonical link, UTC time.

    ``id`` is stable for the same item across polls of the same feed (guid,
    else canonical link, else a hash of title and summary). ``link`` is None
    when the feed gave no http(s) link.
    """

    id: str
    source: str  # the feed's name
    link: str | None
    title: str
    summary: str
    published: datetime
    published_from_feed: bool  # False: ``published`` is the first-seen time
    tags: tuple[str, ...] = ()  # the source's tags from feeds.yaml
    categories: tuple[str, ...] = ()  # the entry's own categories


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule matched one entry, with the rule's routing (mention, digest, quiet hours)."""

    rule: str
    matched_terms: tuple[str, ...]
    channel: str | None = None  # the rule's channel override, if any
    routing: Routing | None = None  # None: immediate, no mention (callers without rules)
    score: float | None = None  # the second-stage score, when the rule has a min_score


class AlertStatus(enum.Enum):
    """Where an alert is in the outbox."""

    PENDING = "pending"  # waiting to be sent
    SENDING = "sending"  # a send was started; it may or may not have reached Slack
    DELIVERED = "delivered"  # Slack (or stdout) accepted it
    FAILED = "failed"  # Slack refused it for good; kept for the operator


@dataclass(frozen=True, slots=True)
class Alert:
    """A matched entry waiting in, or delivered from, the outbox."""

    id: int
    feed: str
    entry_id: str
    rule: str
    rules: tuple[str, ...]
    matched_terms: tuple[str, ...]
    title: str
    summary: str
    link: str | None
    source: str
    published: datetime
    channel: str | None  # rule override; None means the default channel
    created_at: datetime
    status: AlertStatus = AlertStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_channel: str | None = None
    delivered_ts: str | None = None
    mention: str | None = None  # Slack markup from the rule config ("<!here>"), never a feed
    digest: str | None = None  # the rule whose digest lists this alert; None: sent on its own
