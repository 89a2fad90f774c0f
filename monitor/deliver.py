"""Deliver due alerts from the outbox: once each, paced, and never lost.

One cycle, per alert in id order::

    SENDING from before? ─(bot)─► find_sent ─ found ─► mark_delivered (no second post)
    mark_sending (committed) ─► send (worker thread) ─► mark_delivered | mark_retry | mark_failed

``mark_sending`` is committed before the network call, so a crash mid-send
leaves the alert SENDING and the next cycle looks it up before posting again.
Store calls stay on the event-loop thread; only the notifier runs in a thread.

Stories (see :mod:`monitor.stories`): a story's first alert is its root, a
top-level message. A follow-up waits until its root is in Slack, then goes
out as a reply in the root's thread (looked up in that thread after a lost
answer, like roots in the channel). When reports have joined a story since its
root was posted, the root is edited (``chat.update``) once per cycle with the
current sources: an edit renders the whole state, so it is safe to repeat and
several joins coalesce into one. A webhook cannot thread or edit: follow-ups
are batched into one message per story per ``batch_window`` or dropped.

Digests (a rule with ``mode: digest``): the due alerts of one rule and channel
go out as one message listing them (several when Slack's limits demand), with
the same guarantees: every alert in a message is SENDING before the post, the
message's metadata lists their ids, and after a lost answer the channel is
searched for it before anything is posted again. A digest is never threaded
or edited; a later report of a story first listed in a digest is a message of
its own.

The code is split by kind: shared retry policy and pacing in
:mod:`monitor.deliver_core`, stories and webhook follow-up batches in
:mod:`monitor.deliver_stories`, digests in :mod:`monitor.deliver_digest`;
:class:`Deliverer` combines them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from monitor.deliver_core import (
    BASE_BACKOFF,
    MAX_RETRY_AFTER,
    RATE_LIMIT_TRIES,
    SHORT_RATE_LIMIT,
    DeliveryReport,
    _StopCycle,
)
from monitor.deliver_digest import DigestMixin
from monitor.deliver_stories import FollowupPolicy, StoryMixin
from monitor.errors import DeliveryError
from monitor.logs import log_ids
from monitor.models import Alert, AlertStatus
from monitor.notify import Notifier
from monitor.store import Store
from monitor.stories import StoryView

__all__ = [
    "BASE_BACKOFF",
    "MAX_RETRY_AFTER",
    "RATE_LIMIT_TRIES",
    "SHORT_RATE_LIMIT",
    "Deliverer",
    "DeliveryReport",
    "FollowupPolicy",
]


class Deliverer(StoryMixin, DigestMixin):
    """Sends due alerts through a :class:`Notifier`, keeping the outbox honest."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        *,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        min_interval: float = 1.0,
        max_backoff: timedelta = timedelta(minutes=30),
        logger: logging.Logger | None = None,
        followups: FollowupPolicy | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._now = now
        self._sleep = sleep
        # Slack allows about one message per second per channel; stdout has no limit.
        self._min_interval = 0.0 if notifier.mode == "stdout" else min_interval
        self._max_backoff = max_backoff
        self._log = logger or logging.getLogger(__name__)
        self._last_post: dict[str | None, datetime] = {}  # channel -> last post, across cycles
        self._problems: dict[str, str] = {}  # "auth" / "channel:#x" -> code already logged
        self._followups = followups or FollowupPolicy()

    async def deliver_pending(self, limit: int | None = None) -> DeliveryReport:
        """Try every due alert once (in id order); return what happened."""
        report = DeliveryReport()
        due = self._store.due_alerts(self._now(), limit)
        alerts = [a for a in due if a.digest is None]
        digests = [a for a in due if a.digest is not None]
        blocked: set[str | None] = set()  # channels refused or rate limited this cycle
        batches: dict[int, StoryView] = {}  # webhook: stories with follow-ups due
        try:
            for index, alert in enumerate(alerts):
                # Every log line while this alert is handled carries its ids (JSON logs).
                log_ids.set({"alert": alert.id, "feed": alert.feed, "rule": alert.rule})
                try:
                    view, root_id = self._store.story_view(alert)
                    if view is not None and view.followup:
                        view = self._followup_view(alert, view, root_id, batches, report)
                        if view is None:
                            continue
                    await self._deliver_one(alert, blocked, report, view)
                except _StopCycle:
                    report.skipped += len(alerts) - index - 1 + len(digests)
                    raise
            log_ids.set({})
            for story, view in batches.items():
                await self._send_batch(story, view, blocked, report)
            await self._send_digests(digests, blocked, report)
            await self._update_stories(blocked, report)
        except _StopCycle:
            pass
        return report

    async def _deliver_one(
        self,
        alert: Alert,
        blocked: set[str | None],
        report: DeliveryReport,
        view: StoryView | None = None,
    ) -> None:
        try:
            channel = self._notifier.channel_for(alert)
        except DeliveryError as exc:
            self._retry(alert, exc, report, self._now(), maybe_sent=False)
            self._problem(f"config:{alert.rule}", exc.code or "config", str(exc))
            return
        if channel in blocked:
            report.skipped += 1
            return
        instance = self._store.instance_id
        if alert.status is AlertStatus.SENDING and self._notifier.exactly_once:
            try:
                ts = await asyncio.to_thread(
                    self._notifier.find_sent, alert, channel, instance_id=instance, story=view
                )
            except DeliveryError as exc:
                # Unsettled: it may be in the channel, so it must not be posted again yet.
                report.error_kinds.append(exc.kind)
                exc.maybe_sent = True
                self._handle(alert, channel, exc, blocked, report)
                return
            if ts is not None:
                self._store.mark_delivered(alert.id, channel, ts, self._now())
                self._recovered(channel)
                report.delivered += 1
                self._log.info(
                    "alert %d was already in Slack (ts %s); not posting again", alert.id, ts
                )
                return
        try:
            ts = await self._send_paced(
                channel,
                lambda: self._store.mark_sending(alert.id, channel, self._now()),
                functools.partial(
                    self._notifier.send, alert, channel, instance_id=instance, story=view
                ),
                report,
            )
        except DeliveryError as exc:
            self._handle(alert, channel, exc, blocked, report)
            return
        except Exception as exc:  # a bug, not Slack: keep the alert for the operator
            self._internal_error([alert], exc, report)
            return
        self._store.mark_delivered(alert.id, channel, ts, self._now())
        if view is not None and not view.followup:
            # The root went out showing every source known so far.
            self._store.mark_story_shown(view.story, view.revision)
        self._recovered(channel)
        report.delivered += 1
