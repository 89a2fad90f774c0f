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
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from monitor.durations import parse_duration
from monitor.errors import ConfigError, DeliveryError
from monitor.logs import log_ids
from monitor.models import Alert, AlertStatus
from monitor.notify import Notifier
from monitor.notify.blocks import plan_digest
from monitor.notify.digest import DigestBatch, first_mention, group_items
from monitor.store import Store, StoryUpdate
from monitor.stories import StoryView

SHORT_RATE_LIMIT = 30.0  # seconds: wait in-cycle for a Retry-After up to this long
RATE_LIMIT_TRIES = 3  # in-cycle waits per alert before leaving it for a later cycle
BASE_BACKOFF = 30.0  # seconds, doubled per attempt
_WAITING = (AlertStatus.PENDING, AlertStatus.SENDING)


@dataclass
class DeliveryReport:
    """What one :meth:`Deliverer.deliver_pending` cycle did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # due, but not tried this cycle (token rejected, channel refused, …)
    held: int = 0  # follow-ups waiting for their story's root (or their webhook batch)
    dropped: int = 0  # webhook follow-ups dropped by MONITOR_WEBHOOK_FOLLOWUPS=drop
    updated: int = 0  # story roots edited to show their sources
    digests: int = 0  # digest messages sent (their alerts count in ``delivered``)
    errors: list[str] = field(default_factory=list)
    error_kinds: list[str] = field(default_factory=list)  # one DeliveryError.kind per failure


class _StopCycle(Exception):
    """Every remaining alert would fail the same way (bad token, Slack unreachable)."""


@dataclass(frozen=True, slots=True)
class FollowupPolicy:
    """What webhook mode does with follow-ups, which it cannot thread."""

    mode: str = "batch"  # "batch": one message per story per window; "drop": none
    batch_window: timedelta = timedelta(hours=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FollowupPolicy:
        """``MONITOR_WEBHOOK_FOLLOWUPS`` (batch|drop) and ``MONITOR_WEBHOOK_BATCH`` (e.g. 1h)."""
        mode = (env.get("MONITOR_WEBHOOK_FOLLOWUPS") or "batch").strip().lower()
        if mode not in ("batch", "drop"):
            raise ConfigError(f"MONITOR_WEBHOOK_FOLLOWUPS={mode!r} is invalid: use batch or drop")
        raw = (env.get("MONITOR_WEBHOOK_BATCH") or "").strip()
        try:
            window = parse_duration(raw) if raw else timedelta(hours=1)
        except ValueError as exc:
            raise ConfigError(f"MONITOR_WEBHOOK_BATCH={raw!r} is invalid: {exc}") from exc
        return cls(mode, window)


class Deliverer:
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

    def _followup_view(
        self,
        alert: Alert,
        view: StoryView,
        root_id: int | None,
        batches: dict[int, StoryView],
        report: DeliveryReport,
    ) -> StoryView | None:
        """How to send a follow-up now, or None when it is held, batched or dropped."""
        root = self._store.get_alert(root_id) if root_id is not None else None
        if root is not None and root.digest is not None:
            # A digest is not threaded: a later report of a digest story is a message of its own.
            return replace(view, followup=False, thread_ts=None)
        if not self._notifier.threads:
            if self._notifier.mode == "stdout":
                return view  # printed as one "Also reported by" line
            if self._followups.mode == "drop":
                self._store.mark_delivered(alert.id, None, None, self._now())
                report.dropped += 1
                return None
            batches.setdefault(view.story, view)
            return None
        if root is not None and root.status in _WAITING:
            report.held += 1  # the thread does not exist yet; roots go first (id order)
            return None
        if root is None or root.status is not AlertStatus.DELIVERED or not root.delivered_ts:
            # The root failed for good (or was never threaded): post this one on its own.
            return replace(view, followup=False, thread_ts=None)
        return replace(view, thread_ts=root.delivered_ts)

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

    async def _send_paced(
        self,
        channel: str | None,
        mark_sending: Callable[[], None],
        send: Callable[[], str | None],
        report: DeliveryReport,
    ) -> str | None:
        """Pace, mark SENDING (committed), send in a thread; wait out short rate limits.

        Returns the message ``ts``; raises the last :class:`DeliveryError` otherwise.
        """
        attempt = 0
        while True:
            await self._pace(channel)
            mark_sending()
            try:
                ts = await asyncio.to_thread(send)
            except DeliveryError as exc:
                self._last_post[channel] = self._now()
                report.error_kinds.append(exc.kind)
                wait = _retry_after(exc, 0.0)
                if exc.kind != "rate_limited" or wait > SHORT_RATE_LIMIT:
                    raise
                if attempt >= RATE_LIMIT_TRIES:
                    raise
                attempt += 1
                self._log.info(
                    "Slack rate limit on %s; waiting %.0f s", channel or "the webhook", wait
                )
                await self._sleep(wait)
                continue
            self._last_post[channel] = self._now()
            return ts

    def _internal_error(
        self, alerts: Sequence[Alert], exc: Exception, report: DeliveryReport
    ) -> None:
        """A bug, not Slack: keep the alerts as failed for the operator."""
        report.error_kinds.append("internal")
        self._log.exception(
            "alert(s) %s: unexpected error while sending", ", ".join(str(a.id) for a in alerts)
        )
        for alert in alerts:
            self._store.mark_failed(alert.id, f"internal error: {type(exc).__name__}")
        report.failed += len(alerts)

    async def _send_batch(
        self, story: int, view: StoryView, blocked: set[str | None], report: DeliveryReport
    ) -> None:
        """Webhook: every undelivered follow-up of ``story`` as one message, once per window."""
        pending = [
            a
            for a in self._store.outbox((AlertStatus.PENDING, AlertStatus.SENDING))
            if a.digest is None and _followup_of(self._store, a, story)
        ]
        if not pending:
            return
        ready_at = min(a.created_at for a in pending) + self._followups.batch_window
        # A follow-up its rule's quiet hours hold beyond this batch waits for a later one.
        latest = max(ready_at, self._now())
        pending = [a for a in pending if a.next_attempt_at is None or a.next_attempt_at <= latest]
        if not pending:
            return
        if self._now() < ready_at:
            self._store.defer([a.id for a in pending], ready_at)
            report.held += len(pending)
            return
        if None in blocked:
            report.skipped += len(pending)
            return
        await self._pace(None)
        for a in pending:
            self._store.mark_sending(a.id, None, self._now())
        try:
            await asyncio.to_thread(self._notifier.send_batch, view, pending)
        except DeliveryError as exc:
            self._last_post[None] = self._now()
            report.error_kinds.append(exc.kind)
            self._handle_all(pending, None, exc, blocked, report)
            return
        self._last_post[None] = self._now()
        for a in pending:
            self._store.mark_delivered(a.id, None, None, self._now())
        report.delivered += len(pending)

    async def _send_digests(
        self, alerts: Sequence[Alert], blocked: set[str | None], report: DeliveryReport
    ) -> None:
        """Due digest alerts: one digest per rule and channel."""
        groups: dict[tuple[str, str | None], list[Alert]] = {}
        for alert in alerts:
            try:
                channel = self._notifier.channel_for(alert)
            except DeliveryError as exc:
                self._retry(alert, exc, report, self._now(), maybe_sent=False)
                self._problem(f"config:{alert.rule}", exc.code or "config", str(exc))
                continue
            groups.setdefault((alert.digest or alert.rule, channel), []).append(alert)
        for (rule, channel), group in groups.items():
            if channel in blocked:
                report.skipped += len(group)
                continue
            await self._send_digest(rule, channel, group, blocked, report)

    async def _send_digest(
        self,
        rule: str,
        channel: str | None,
        alerts: list[Alert],
        blocked: set[str | None],
        report: DeliveryReport,
    ) -> None:
        """Settle any digest message that may already be posted, then post the rest."""
        rest = await self._settle_digest(channel, alerts, blocked, report)
        if not rest:
            return
        roots = {a.id: self._store.story_view(a)[1] for a in rest}
        batches = plan_digest(rule, group_items(rest, roots), first_mention(rest))
        for index, batch in enumerate(batches):
            if not await self._post_digest(batch, channel, blocked, report):
                report.skipped += sum(len(b.alert_ids) for b in batches[index + 1 :])
                return

    async def _settle_digest(
        self,
        channel: str | None,
        alerts: list[Alert],
        blocked: set[str | None],
        report: DeliveryReport,
    ) -> list[Alert]:
        """Mark delivered the SENDING alerts a digest in the channel already lists.

        Returns the alerts still to post (none when the lookup itself failed).
        """
        sending = [a for a in alerts if a.status is AlertStatus.SENDING]
        if not sending or not self._notifier.exactly_once:
            return alerts
        try:
            found = await asyncio.to_thread(
                self._notifier.find_digest, sending, channel, instance_id=self._store.instance_id
            )
        except DeliveryError as exc:
            # Unsettled: they may be in the channel, so they must not be posted again yet.
            report.error_kinds.append(exc.kind)
            exc.maybe_sent = True
            report.skipped += len(alerts) - len(sending)
            self._handle_all(sending, channel, exc, blocked, report)
            return []
        by_ts: dict[str, list[int]] = {}
        for alert_id, ts in found.items():
            by_ts.setdefault(ts, []).append(alert_id)
        for ts, ids in by_ts.items():
            self._store.mark_delivered_many(ids, channel, ts, self._now())
            self._log.info("digest (ts %s) was already in Slack; not posting it again", ts)
        if found:
            self._recovered(channel)
        report.delivered += len(found)
        return [a for a in alerts if a.id not in found]

    async def _post_digest(
        self,
        batch: DigestBatch,
        channel: str | None,
        blocked: set[str | None],
        report: DeliveryReport,
    ) -> bool:
        """Post one digest message and record every alert it lists; False if it failed."""
        ids = batch.alert_ids
        try:
            ts = await self._send_paced(
                channel,
                lambda: self._store.mark_sending_many(ids, channel),
                functools.partial(
                    self._notifier.send_digest,
                    batch,
                    channel,
                    instance_id=self._store.instance_id,
                ),
                report,
            )
        except DeliveryError as exc:
            self._handle_all(batch.alerts, channel, exc, blocked, report)
            return False
        except Exception as exc:  # a bug, not Slack
            self._internal_error(batch.alerts, exc, report)
            return False
        self._store.mark_delivered_many(ids, channel, ts, self._now())
        self._recovered(channel)
        report.delivered += len(ids)
        report.digests += 1
        return True

    def _handle_all(
        self,
        alerts: Sequence[Alert],
        channel: str | None,
        exc: DeliveryError,
        blocked: set[str | None],
        report: DeliveryReport,
    ) -> None:
        """Apply the retry policy to every alert of one message; stop the cycle once, after."""
        stop = False
        for alert in alerts:
            try:
                self._handle(alert, channel, exc, blocked, report)
            except _StopCycle:
                stop = True
        if stop:
            raise _StopCycle

    async def _update_stories(self, blocked: set[str | None], report: DeliveryReport) -> None:
        """Edit each story root that shows fewer sources than are known (one edit per story)."""
        if not self._notifier.threads:
            return
        for update in self._store.story_updates(self._now()):
            channel = update.root.delivered_channel
            if channel is None or channel in blocked or update.root.delivered_ts is None:
                continue
            await self._pace(channel)
            try:
                await asyncio.to_thread(
                    self._notifier.update_story,
                    update.root,
                    update.view,
                    channel,
                    update.root.delivered_ts,
                    instance_id=self._store.instance_id,
                )
            except DeliveryError as exc:
                self._last_post[channel] = self._now()
                report.error_kinds.append(exc.kind)
                self._update_failed(update, channel, exc, blocked)
                continue
            self._last_post[channel] = self._now()
            self._store.mark_story_shown(update.story, update.view.revision)
            report.updated += 1

    def _update_failed(
        self, update: StoryUpdate, channel: str, exc: DeliveryError, blocked: set[str | None]
    ) -> None:
        now = self._now()
        if exc.kind in ("rate_limited", "server", "network", "auth", "channel", "config"):
            attempts = self._store.story_update_attempts(update.story)
            delay = max(
                min(BASE_BACKOFF * 2 ** min(attempts, 20), self._max_backoff.total_seconds()),
                _retry_after(exc, 0.0),
            )
            self._store.defer_story_update(update.story, str(exc), now + timedelta(seconds=delay))
            blocked.add(channel)
            self._log.warning("%s; retrying the story update in %.0f s", exc, delay)
            if exc.kind in ("network", "auth"):
                raise _StopCycle
            return
        # Slack refuses this edit for good (message deleted, too old…): the replies still
        # carry every report, so give up on the count rather than retry forever.
        self._store.mark_story_shown(update.story, update.view.revision)
        self._log.error("%s; the story's root keeps its old source count", exc)

    def _handle(
        self,
        alert: Alert,
        channel: str | None,
        exc: DeliveryError,
        blocked: set[str | None],
        report: DeliveryReport,
    ) -> None:
        """Apply the retry policy for one failed send or lookup."""
        now = self._now()
        code = exc.code or exc.kind
        where = channel or "the webhook"
        if exc.kind == "rate_limited":
            blocked.add(channel)
            self._retry(
                alert, exc, report, now + timedelta(seconds=_retry_after(exc, 60.0)), exc.maybe_sent
            )
        elif exc.kind in ("server", "network"):
            backoff = min(
                BASE_BACKOFF * 2 ** min(alert.attempts, 20), self._max_backoff.total_seconds()
            )
            delay = max(backoff, _retry_after(exc, 0.0))
            self._retry(alert, exc, report, now + timedelta(seconds=delay), exc.maybe_sent)
            self._log.warning("%s; retrying in %.0f s", exc, delay)
            if exc.kind == "network":
                raise _StopCycle  # Slack is unreachable: the rest would only queue up timeouts
        elif exc.kind == "auth":
            # Retry next cycle (no backoff): the operator fixes the token and expects delivery.
            self._retry(alert, exc, report, now, exc.maybe_sent)
            self._problem("auth", code, self._auth_advice(code))
            raise _StopCycle
        elif exc.kind in ("channel", "config"):
            blocked.add(channel)
            self._retry(alert, exc, report, now, exc.maybe_sent)
            self._problem(
                f"channel:{where}",
                code,
                f"Slack refused channel {where} ({code}): invite the bot to it (/invite) or fix "
                f"the rule's channel; {self._waiting()} alerts are waiting in the outbox",
            )
        else:  # "message", "lookup": trying again cannot help
            self._store.mark_failed(alert.id, str(exc))
            report.failed += 1
            report.errors.append(str(exc))
            self._log.error("%s; kept as failed (see `monitor outbox`)", exc)

    def _retry(
        self,
        alert: Alert,
        exc: DeliveryError,
        report: DeliveryReport,
        when: datetime,
        maybe_sent: bool,
    ) -> None:
        self._store.mark_retry(alert.id, str(exc), when, maybe_sent=maybe_sent)
        report.retried += 1
        report.errors.append(str(exc))

    async def _pace(self, channel: str | None) -> None:
        last = self._last_post.get(channel)
        if last is None or self._min_interval <= 0:
            return
        wait = self._min_interval - (self._now() - last).total_seconds()
        if wait > 0:
            await self._sleep(wait)

    def _problem(self, key: str, code: str, message: str) -> None:
        """Log a config-level problem once, and again only when it changes."""
        if self._problems.get(key) == code:
            return
        self._problems[key] = code
        self._log.error("%s", message)

    def _recovered(self, channel: str | None) -> None:
        for key in ("auth", f"channel:{channel or 'the webhook'}"):
            if self._problems.pop(key, None) is not None:
                what = (
                    "Slack accepts the credentials" if key == "auth" else f"channel {key[8:]} works"
                )
                self._log.warning("%s again; delivery resumed", what)

    def _auth_advice(self, code: str) -> str:
        waiting = self._waiting()
        if self._notifier.mode == "slack-webhook":
            return (
                f"Slack rejected the incoming webhook ({code}): set SLACK_WEBHOOK_URL to a live "
                f"webhook URL; {waiting} alerts are waiting in the outbox"
            )
        if code == "missing_scope":
            return (
                "The Slack bot token lacks a scope (missing_scope): add chat:write, "
                "channels:history, groups:history, channels:read and groups:read, then reinstall "
                f"the app; {waiting} alerts are waiting in the outbox"
            )
        return (
            f"Slack rejected the bot token ({code}): set SLACK_BOT_TOKEN to a valid xoxb- token; "
            f"{waiting} alerts are waiting in the outbox"
        )

    def _waiting(self) -> int:
        return len(self._store.outbox(_WAITING))


def _followup_of(store: Store, alert: Alert, story: int) -> bool:
    view, root = store.story_view(alert)
    return view is not None and view.story == story and root is not None


MAX_RETRY_AFTER = 3600.0  # seconds: a Retry-After beyond this is a broken proxy, not Slack


def _retry_after(exc: DeliveryError, default: float) -> float:
    """Slack's Retry-After, bounded: a hostile 10^12 must not overflow or park an alert."""
    value = exc.retry_after
    if value is None or value != value:  # None or NaN
        return default
    return min(max(value, 0.0), MAX_RETRY_AFTER)
