"""Digest delivery for :class:`monitor.deliver.Deliverer` (a rule with ``mode: digest``).

The due alerts of one rule and channel go out as one message listing them
(several when Slack's limits demand), with the same guarantees as single
alerts: every alert in a message is SENDING before the post, the message's
metadata lists their ids, and after a lost answer the channel is searched for
it before anything is posted again. A digest is never threaded or edited.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from monitor.deliver_core import DelivererBase, DeliveryReport
from monitor.errors import DeliveryError
from monitor.models import Alert, AlertStatus
from monitor.notify.blocks import plan_digest
from monitor.notify.digest import DigestBatch, first_mention, group_items


class DigestMixin(DelivererBase):
    """Sends due digest alerts: one digest message (or a few) per rule and channel."""

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
