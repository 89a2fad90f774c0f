"""Deliver due alerts from the outbox: once each, paced, and never lost.

One cycle, per alert in id order::

    SENDING from before? ─(bot)─► find_sent ─ found ─► mark_delivered (no second post)
    mark_sending (committed) ─► send (worker thread) ─► mark_delivered | mark_retry | mark_failed

``mark_sending`` is committed before the network call, so a crash mid-send
leaves the alert SENDING and the next cycle looks it up before posting again.
Store calls stay on the event-loop thread; only the notifier runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.errors import DeliveryError
from monitor.models import Alert, AlertStatus
from monitor.notify import Notifier
from monitor.store import Store

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
    errors: list[str] = field(default_factory=list)
    error_kinds: list[str] = field(default_factory=list)  # one DeliveryError.kind per failure


class _StopCycle(Exception):
    """Every remaining alert would fail the same way (bad token, Slack unreachable)."""


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

    async def deliver_pending(self, limit: int | None = None) -> DeliveryReport:
        """Try every due alert once (in id order); return what happened."""
        report = DeliveryReport()
        alerts = self._store.due_alerts(self._now(), limit)
        blocked: set[str | None] = set()  # channels refused or rate limited this cycle
        for index, alert in enumerate(alerts):
            try:
                await self._deliver_one(alert, blocked, report)
            except _StopCycle:
                report.skipped += len(alerts) - index - 1
                break
        return report

    async def _deliver_one(
        self, alert: Alert, blocked: set[str | None], report: DeliveryReport
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
                    self._notifier.find_sent, alert, channel, instance_id=instance
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
        for attempt in range(RATE_LIMIT_TRIES + 1):
            await self._pace(channel)
            self._store.mark_sending(alert.id, channel, self._now())
            try:
                ts = await asyncio.to_thread(
                    self._notifier.send, alert, channel, instance_id=instance
                )
            except DeliveryError as exc:
                self._last_post[channel] = self._now()
                report.error_kinds.append(exc.kind)
                wait = exc.retry_after or 0.0
                if (
                    exc.kind == "rate_limited"
                    and wait <= SHORT_RATE_LIMIT
                    and attempt < RATE_LIMIT_TRIES
                ):
                    self._log.info(
                        "Slack rate limit on %s; waiting %.0f s", channel or "the webhook", wait
                    )
                    await self._sleep(wait)
                    continue
                self._handle(alert, channel, exc, blocked, report)
                return
            except Exception as exc:  # a bug, not Slack: keep the alert for the operator
                report.error_kinds.append("internal")
                self._log.exception("alert %d: unexpected error while sending", alert.id)
                self._store.mark_failed(alert.id, f"internal error: {type(exc).__name__}")
                report.failed += 1
                return
            self._last_post[channel] = self._now()
            self._store.mark_delivered(alert.id, channel, ts, self._now())
            self._recovered(channel)
            report.delivered += 1
            return

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
                alert, exc, report, now + timedelta(seconds=exc.retry_after or 60), exc.maybe_sent
            )
        elif exc.kind in ("server", "network"):
            backoff = min(
                BASE_BACKOFF * 2 ** min(alert.attempts, 20), self._max_backoff.total_seconds()
            )
            delay = max(backoff, exc.retry_after or 0.0)
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
