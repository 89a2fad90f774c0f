"""One poll of one feed, start to finish: fetch, parse, normalise, match, record.

This is the straight line of DESIGN.md. Every stage is its own module; this
one only passes records between them and turns each failure into feed state
(reason, backoff), so one bad feed never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.backoff import next_poll_after
from monitor.clients import ClientPool
from monitor.dedupe import Backfill, candidates, eligible, new_entries
from monitor.errors import FeedParseError, StoreError
from monitor.feedclient import FeedClient
from monitor.fetch import FetchLimits, fetch
from monitor.models import Entry, Feed, FetchResult, FetchStatus
from monitor.parsepool import ParsePool
from monitor.rules import RuleSet
from monitor.sources import read_entries
from monitor.store import Candidate, Clustering, FeedState, Outcome, Store

log = logging.getLogger("monitor.pipeline")

FLOOD_WARNING = 50  # new alerts from one poll of one feed beyond which we warn the operator


@dataclass(frozen=True, slots=True)
class PollSettings:
    """Knobs of a poll that come from the command line or environment."""

    limits: FetchLimits = field(default_factory=FetchLimits)
    backfill: Backfill | None = None
    retention: timedelta = timedelta(days=90)
    link_window: timedelta = timedelta(days=30)
    backoff_cap: timedelta = timedelta(hours=6)
    force: bool = False  # poll even when the feed is backing off
    clustering: Clustering = field(default_factory=Clustering)  # parties and story knobs
    parser: ParsePool | None = None  # worker processes for parsing; None: a thread


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one poll of one feed did."""

    feed: str
    status: str  # ok | not_modified | unchanged | error | retry_later | gone | skipped
    entries: int = 0
    new: int = 0
    outcomes: tuple[Outcome, ...] = ()
    error: str | None = None
    elapsed: float = 0.0
    state: FeedState | None = None  # the feed state this poll recorded (None: skipped)

    @property
    def alerts(self) -> list[Outcome]:
        """Outcomes that queued a new alert."""
        return [o for o in self.outcomes if o.alert_id is not None]


async def _parse(
    result: FetchResult,
    feed: Feed,
    now: datetime,
    *,
    client: FeedClient,
    store: Store,
    settings: PollSettings,
) -> tuple[list[Entry], str | None]:
    # Dispatch by the feed's type (RSS/Atom/JSON Feed, HTML listing, sitemap).
    # A sitemap fetches its new pages too, on the same client and limits: it
    # asks the store which of its ids are new so only those are fetched.
    return await read_entries(
        result,
        feed,
        now,
        client=client,
        limits=settings.limits,
        seen=lambda ids: store.seen_ids(feed.name, ids),
        parser=settings.parser,
    )


async def poll_feed(
    feed: Feed,
    *,
    client: FeedClient,
    store: Store,
    rules: RuleSet,
    settings: PollSettings,
    now: Callable[[], datetime],
    state: FeedState | None = None,
    unchanged: list[FeedState] | None = None,
) -> PollReport:
    """Poll ``feed`` once and record the result; never raises for feed problems.

    ``state`` is the feed's stored state when the caller read it already.
    With an ``unchanged`` list, the state of a feed that answered "not
    modified" is appended there for the caller to write in one batch
    (:func:`poll_all` does) instead of being written at once; only those
    timestamps can be lost if the process dies before, and the next poll
    writes them again.
    """
    if state is None:
        state = store.feed_state(feed)
    started = now()
    if state.gone and not settings.force:
        return PollReport(
            feed.name,
            "skipped",
            error="feed is gone (HTTP 410); change its url in feeds.yaml or remove it",
        )
    if _backing_off(state, feed, settings, started):
        return PollReport(
            feed.name,
            "skipped",
            error=f"backing off until {state.next_poll_at:%Y-%m-%d %H:%M} UTC "
            f"after: {state.last_error}",
        )

    result = await fetch(client, state.url, state.validators, settings.limits)
    when = now()
    changes: dict[str, Any] = {"last_polled_at": when, "last_http_status": result.http_status}
    if result.moved_to and result.moved_to != state.url:
        log.warning(
            "feed %r moved permanently to %s; update its url in feeds.yaml",
            feed.name,
            result.moved_to,
            extra={"feed": feed.name},
        )
        changes["url"] = result.moved_to

    if result.status is FetchStatus.NOT_MODIFIED:
        # One copy of the state, not two: most polls of a large list end here.
        fine = _succeeded(state, when, "not_modified", **changes)
        if unchanged is not None:
            unchanged.append(fine)
        else:
            store.save_feed_state(fine)
        return PollReport(feed.name, "not_modified", elapsed=result.elapsed, state=fine)
    polled = replace(state, **changes)
    if result.status is not FetchStatus.OK:
        return _failed(store, feed, polled, result, when, settings)

    body_hash = hashlib.sha256(result.body).hexdigest()
    if body_hash == state.body_hash and not state.first_poll:
        # Same bytes as last time but no validator said so: skip the parse.
        ok = replace(_succeeded(polled, when, "unchanged"), validators=result.validators)
        store.save_feed_state(ok)
        return PollReport(feed.name, "unchanged", elapsed=result.elapsed, state=ok)
    try:
        entries, bozo = await _parse(
            result, feed, when, client=client, store=store, settings=settings
        )
    except FeedParseError as exc:
        failed = FetchResult(
            FetchStatus.ERROR,
            result.url,
            result.final_url,
            http_status=result.http_status,
            error=str(exc),
            elapsed=result.elapsed,
        )
        return _failed(store, feed, polled, failed, when, settings)
    if bozo:
        log.info(
            "feed %r is not well-formed (%s); using the %d entries recovered",
            feed.name,
            bozo,
            len(entries),
            extra={"feed": feed.name},
        )

    fresh = new_entries(entries, store.seen_ids(feed.name, [e.id for e in entries]))
    allowed = eligible(
        fresh,
        first_poll=state.first_poll,
        backfill=settings.backfill,
        now=when,
        max_age=settings.retention,
        last_success=state.last_success_at,
    )
    found = await _match(allowed, rules) if allowed else []
    done = replace(
        _succeeded(polled, when, "ok"),
        validators=result.validators,
        body_hash=body_hash,
        last_parsed_at=when,
        entries_last_poll=len(entries),
        first_polled_at=state.first_polled_at or when,
    )
    outcomes = store.record_poll(
        done, entries, found, when, link_window=settings.link_window, clustering=settings.clustering
    )
    queued = sum(1 for o in outcomes if o.alert_id is not None)
    if queued > FLOOD_WARNING and not state.first_poll:
        log.warning(
            "feed %r produced %d new alerts in one poll: all are queued (nothing is dropped) "
            "and paced at about one per second per channel; if the feed glitched, review "
            "them with `monitor outbox`",
            feed.name,
            queued,
            extra={"feed": feed.name},
        )
    if state.first_poll and fresh and settings.backfill is None:
        log.info(
            "first poll of %r: recorded %d existing entries without alerting "
            "(use --backfill to alert on recent ones)",
            feed.name,
            len(fresh),
            extra={"feed": feed.name},
        )
    return PollReport(
        feed.name,
        "ok",
        entries=len(entries),
        new=len(fresh),
        outcomes=tuple(outcomes),
        elapsed=result.elapsed,
        state=done,
    )


_MATCH_THREAD: ThreadPoolExecutor | None = None


async def _match(entries: Sequence[Entry], rules: RuleSet) -> list[Candidate]:
    """:func:`candidates`, off the event loop: matching a long entry against many rules
    can take tens of milliseconds. One thread for all polls, so at most one thread
    competes with the loop for the GIL (a pool of them made the loop wake up late)."""
    global _MATCH_THREAD
    if _MATCH_THREAD is None:
        _MATCH_THREAD = ThreadPoolExecutor(1, thread_name_prefix="monitor-match")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_MATCH_THREAD, candidates, entries, rules)


def _backing_off(state: FeedState, feed: Feed, settings: PollSettings, now: datetime) -> bool:
    """True while the feed waits out its backoff.

    A clock earlier than the last poll means it jumped backwards since (the
    backoff was measured from that poll): poll now rather than sit silent.
    """
    if settings.force or state.next_poll_at is None or now >= state.next_poll_at:
        return False
    if state.last_polled_at is not None and now < state.last_polled_at:
        log.warning(
            "the clock is earlier than the last poll of %r: it moved backwards; polling",
            feed.name,
            extra={"feed": feed.name},
        )
        return False
    return True


def _succeeded(state: FeedState, when: datetime, status: str, **changes: Any) -> FeedState:
    return replace(
        state,
        last_success_at=when,
        last_status=status,
        last_error=None,
        consecutive_failures=0,
        next_poll_at=None,
        gone=False,
        **changes,
    )


def _failed(
    store: Store,
    feed: Feed,
    state: FeedState,
    result: FetchResult,
    when: datetime,
    settings: PollSettings,
) -> PollReport:
    failures = state.consecutive_failures + 1
    gone = result.status is FetchStatus.GONE
    reason = result.error or (f"HTTP {result.http_status}" if result.http_status else "failed")
    if gone:
        reason = "HTTP 410 Gone: the publisher removed this feed; find its new url"
    failed = replace(
        state,
        last_status=result.status.value,
        last_error=reason,
        consecutive_failures=failures,
        gone=gone,
        next_poll_at=next_poll_after(
            when, feed.interval, failures, result.retry_after, cap=settings.backoff_cap
        ),
    )
    store.save_feed_state(failed)
    level = logging.WARNING if failures in (1, 3) or failures % 10 == 0 else logging.INFO
    log.log(
        level,
        "feed %r failed (%d in a row): %s",
        feed.name,
        failures,
        reason,
        extra={"feed": feed.name},
    )
    return PollReport(
        feed.name, result.status.value, error=reason, elapsed=result.elapsed, state=failed
    )


STATE_BATCH = 50  # "not modified" feed states written per transaction by poll_all (~10 ms each)


async def poll_all(
    feeds: Sequence[Feed],
    *,
    client: FeedClient | ClientPool,
    store: Store,
    rules: RuleSet,
    settings: PollSettings,
    now: Callable[[], datetime],
    concurrency: int = 10,
) -> list[PollReport]:
    """Poll every feed once, at most ``concurrency`` at a time, in the order given.

    With a :class:`ClientPool`, each poll leases its least busy client.
    Feed states are read in one query, and the states of feeds that answered
    "not modified" are written in batches of :data:`STATE_BATCH`.
    """
    gate = asyncio.Semaphore(concurrency)
    states = store.feed_states_for(feeds)
    unchanged: list[FeedState] = []

    def flush(at_least: int) -> None:
        if len(unchanged) >= at_least:
            batch = unchanged[:]
            unchanged.clear()
            store.save_feed_states(batch)

    async def poll(feed: Feed, http: FeedClient) -> PollReport:
        report = await poll_feed(
            feed,
            client=http,
            store=store,
            rules=rules,
            settings=settings,
            now=now,
            state=states.get(feed.name),
            unchanged=unchanged,
        )
        flush(STATE_BATCH)
        return report

    async def leased(feed: Feed) -> PollReport:
        if isinstance(client, ClientPool):
            async with client.lease() as http:
                return await poll(feed, http)
        return await poll(feed, client)

    async def one(feed: Feed) -> PollReport:
        async with gate:
            try:
                return await leased(feed)
            except StoreError:
                raise  # the database is unusable: every other feed would fail the same way
            except Exception as exc:  # a bug in one feed's path must not stop the rest
                log.exception(
                    "polling %r failed unexpectedly", feed.name, extra={"feed": feed.name}
                )
                return PollReport(feed.name, "error", error=f"internal error: {exc}")

    try:
        return list(await asyncio.gather(*(one(f) for f in feeds)))
    finally:
        flush(1)
