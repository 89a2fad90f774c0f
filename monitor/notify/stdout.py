"""Print alerts to a text stream: the out-of-the-box mode when no Slack setting is given."""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from datetime import UTC
from typing import TextIO

from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.notify.blocks import mention_label
from monitor.notify.digest import DigestBatch, DigestItem
from monitor.parties import describe_parties
from monitor.stories import StoryView

_WIDTH = 78
_SUMMARY_LIMIT = 600


class StdoutNotifier:
    """Writes one readable block per alert. Never fails on odd text."""

    mode = "stdout"
    exactly_once = False
    threads = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __repr__(self) -> str:
        return "StdoutNotifier()"

    def channel_for(self, alert: Alert) -> str | None:
        """Always None: there are no channels on stdout."""
        return None

    def send(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Print the alert (a follow-up as one "Also reported by" line); returns None."""
        text = format_followup(alert) if story and story.followup else format_alert(alert, story)
        self._write(text)
        return None

    def update_story(
        self, root: Alert, story: StoryView, channel: str, ts: str, *, instance_id: str
    ) -> None:
        """Nothing to edit on a stream."""

    def send_batch(self, story: StoryView, alerts: list[Alert]) -> None:
        """Print each follow-up's line."""
        self._write("".join(format_followup(a) for a in alerts))

    def send_digest(
        self, batch: DigestBatch, channel: str | None, *, instance_id: str
    ) -> str | None:
        """Print the digest as one block listing its reports; returns None."""
        self._write(format_digest(batch))
        return None

    def find_digest(
        self, alerts: Sequence[Alert], channel: str | None, *, instance_id: str
    ) -> dict[int, str]:
        """Nothing found: a stream cannot be read back."""
        return {}

    def _write(self, text: str) -> None:
        try:
            try:
                self._stream.write(text)
            except UnicodeEncodeError:  # e.g. an ASCII-only terminal and an emoji title
                encoding = getattr(self._stream, "encoding", None) or "ascii"
                self._stream.write(text.encode(encoding, "replace").decode(encoding))
            self._stream.flush()
        except OSError as exc:  # a closed pipe (`monitor once | head`), a full disk
            raise DeliveryError(
                f"stdout is not writable ({exc.strerror or exc}); alerts stay in the outbox",
                kind="network",
                retryable=True,
                maybe_sent=True,
            ) from None

    def find_sent(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Always None: a stream cannot be read back."""
        return None

    def verify(self) -> str:
        """Nothing to check."""
        return "stdout: no Slack setting; alerts are printed to standard output"


def format_followup(alert: Alert) -> str:
    """One line (and its link) for a later report of a story already printed."""
    line = f"   Also reported by {_plain(alert.source)}: {_plain(alert.title) or '(untitled)'}\n"
    if alert.link:
        line += f"   {_plain(alert.link)}\n"
    return line + "\n"


def format_digest(batch: DigestBatch) -> str:
    """The text block printed for one digest message (ends with a blank line)."""
    head = f"Digest for rule {_plain(batch.rule)}: {batch.total} item(s)"
    if batch.parts > 1:
        head += f", part {batch.part} of {batch.parts}"
    lines = ["=" * _WIDTH, head]
    mention = mention_label(batch.mention)
    if mention:
        lines.append(mention)
    for item in batch.items:
        lines.extend(_digest_lines(item))
    return "\n".join(lines) + "\n\n"


def _digest_lines(item: DigestItem) -> list[str]:
    alert = item.alert
    published = alert.published.astimezone(UTC).strftime("%Y-%m-%d")
    lines = [
        f"- {_plain(alert.title) or '(untitled)'}",
        f"  {_plain(alert.source)} · {published}",
    ]
    if alert.link:
        lines.append(f"  {_plain(alert.link)}")
    if item.also:
        names = ", ".join(dict.fromkeys(_plain(a.source) for a in item.also))
        lines.append(f"  also reported by {names}")
    return lines


def format_alert(alert: Alert, story: StoryView | None = None) -> str:
    """The text block printed for one alert (ends with a blank line)."""
    published = alert.published.astimezone(UTC).strftime("%Y-%m-%d")
    rules = ", ".join(alert.rules) or alert.rule
    mention = mention_label(alert.mention)
    lines = [
        "=" * _WIDTH,
        *([mention] if mention else []),
        _plain(alert.title) or "(untitled)",
        f"{_plain(alert.source)} · {published} · rule: {_plain(rules)}",
    ]
    if alert.matched_terms:
        lines.append("matched: " + _plain(", ".join(alert.matched_terms)))
    if story is not None and story.agreement:
        lines.append("agreement: " + _plain(story.agreement))
    if story is not None and story.parties:
        lines.append("parties: " + _plain(describe_parties(story.parties)))
    if alert.link:
        lines.append(_plain(alert.link))
    summary = _plain(alert.summary)
    if summary:
        if len(summary) > _SUMMARY_LIMIT:
            summary = summary[:_SUMMARY_LIMIT].rsplit(" ", 1)[0] + "…"
        lines.append("")
        lines.extend(textwrap.wrap(summary, _WIDTH, break_long_words=True) or [summary])
    return "\n".join(lines) + "\n\n"


def _plain(text: str) -> str:
    """One line, no control characters (a feed must not move the operator's cursor)."""
    kept = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text)
    return " ".join(kept.split())
