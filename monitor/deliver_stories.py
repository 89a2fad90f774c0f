"""Story delivery for :class:`monitor.deliver.Deliverer` (see :mod:`monitor.stories`).

A follow-up waits until its story's root is in Slack, then goes out as a reply
in the root's thread. When reports have joined a story since its root was
posted, the root is edited (``chat.update``) once per cycle with the current
sources: an edit renders the whole state, so it is safe to repeat and several
joins coalesce into one. A webhook cannot thread or edit: follow-ups are
batched into one message per story per ``batch_window`` or dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from monitor.deliver_core import (
    _WAITING,
    BASE_BACKOFF,
    DelivererBase,
    DeliveryReport,
    _retry_after,
    _StopCycle,
)
from monitor.durations import parse_duration
from monitor.errors import ConfigError, DeliveryError
from monitor.models import Alert, AlertStatus
from monitor.store import Store, StoryUpdate
from monitor.stories import StoryView


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


class StoryMixin(DelivererBase):
    """Follow-ups (threaded, batched or dropped) and edits of story roots."""

    _followups: FollowupPolicy

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


def _followup_of(store: Store, alert: Alert, story: int) -> bool:
    view, root = store.story_view(alert)
    return view is not None and view.story == story and root is not None
