"""Digests: the due alerts of one digest rule and channel, listed together.

Pure records and grouping; the Slack layout and the split into messages that
fit Slack's limits live in :mod:`monitor.notify.blocks`.

A digest is not threaded. When a story's first report and later reports of
the same story are due in the same digest, the later ones are listed under
the first as "Also reported by …" instead of as items of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.models import Alert


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One line of a digest: a report, and later reports of its story in the same digest."""

    alert: Alert
    also: tuple[Alert, ...] = ()

    @property
    def alert_ids(self) -> tuple[int, ...]:
        """Every alert this line stands for."""
        return (self.alert.id, *(a.id for a in self.also))


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """One digest message: its items and where it sits among the digest's messages."""

    rule: str
    items: tuple[DigestItem, ...]
    mention: str | None = None  # Slack markup from the rule; only on the first message
    part: int = 1
    parts: int = 1
    total: int = 0  # items in the whole digest (all parts)

    @property
    def alert_ids(self) -> tuple[int, ...]:
        """Every alert this message lists (its metadata names them all)."""
        return tuple(i for item in self.items for i in item.alert_ids)

    @property
    def alerts(self) -> tuple[Alert, ...]:
        """The listed alerts, in the order they appear."""
        return tuple(a for item in self.items for a in (item.alert, *item.also))


def group_items(alerts: Sequence[Alert], roots: Mapping[int, int | None]) -> list[DigestItem]:
    """Digest lines in id order; ``roots`` maps an alert to its story's first report.

    An alert whose story root is in ``alerts`` too is listed under that root.
    """
    present = {a.id for a in alerts}
    later: dict[int, list[Alert]] = {}
    heads: list[Alert] = []
    for alert in sorted(alerts, key=lambda a: a.id):
        root = roots.get(alert.id)
        if root is not None and root != alert.id and root in present:
            later.setdefault(root, []).append(alert)
        else:
            heads.append(alert)
    return [DigestItem(a, tuple(later.get(a.id, ()))) for a in heads]


def first_mention(alerts: Sequence[Alert]) -> str | None:
    """The digest's mention: the rule's, as recorded on its alerts (oldest first)."""
    return next((a.mention for a in sorted(alerts, key=lambda a: a.id) if a.mention), None)
