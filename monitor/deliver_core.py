"""The parts of :class:`monitor.deliver.Deliverer` every kind of delivery shares.

:class:`DelivererBase` holds the retry policy (``_handle``), pacing and the
once-per-problem logging; the single-alert path (:mod:`monitor.deliver`), the
story paths (:mod:`monitor.deliver_stories`) and the digest path
(:mod:`monitor.deliver_digest`) are mixins over it, combined into ``Deliverer``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
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
    held: int = 0  # follow-ups waiting for their story's root (or their webhook batch)
    dropped: int = 0  # webhook follow-ups dropped by MONITOR_WEBHOOK_FOLLOWUPS=drop
    updated: int = 0  # story roots edited to show their sources
    digests: int = 0  # digest messages sent (their alerts count in ``delivered``)
    errors: list[str] = field(default_factory=list)
    error_kinds: list[str] = field(default_factory=list)  # one DeliveryError.kind per failure


class _StopCycle(Exception):
    """Every remaining alert would fail the same way (bad token, Slack unreachable)."""


class DelivererBase:
    """The collaborators and shared helpers of :class:`monitor.deliver.Deliverer`.

    ``Deliverer.__init__`` sets every attribute declared here.
    """

    _store: Store
    _notifier: Notifier
    _now: Callable[[], datetime]
    _sleep: Callable[[float], Awaitable[None]]
    _min_interval: float
    _max_backoff: timedelta
    _log: logging.Logger
    _last_post: dict[str | None, datetime]  # channel -> last post, across cycles
    _problems: dict[str, str]  # "auth" / "channel:#x" -> code already logged

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


MAX_RETRY_AFTER = 3600.0  # seconds: a Retry-After beyond this is a broken proxy, not Slack


def _retry_after(exc: DeliveryError, default: float) -> float:
    """Slack's Retry-After, bounded: a hostile 10^12 must not overflow or park an alert."""
    value = exc.retry_after
    if value is None or value != value:  # None or NaN
        return default
    return min(max(value, 0.0), MAX_RETRY_AFTER)
