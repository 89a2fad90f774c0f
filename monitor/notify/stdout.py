"""Print alerts to a text stream: the out-of-the-box mode when no Slack setting is given."""

from __future__ import annotations

import textwrap
import unicodedata
from datetime import UTC
from typing import TextIO

from monitor.models import Alert

_WIDTH = 78
_SUMMARY_LIMIT = 600


class StdoutNotifier:
    """Writes one readable block per alert. Never fails on odd text."""

    mode = "stdout"
    exactly_once = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __repr__(self) -> str:
        return "StdoutNotifier()"

    def channel_for(self, alert: Alert) -> str | None:
        """Always None: there are no channels on stdout."""
        return None

    def send(self, alert: Alert, channel: str | None, *, instance_id: str) -> str | None:
        """Print the alert; returns None."""
        text = format_alert(alert)
        try:
            self._stream.write(text)
        except UnicodeEncodeError:  # e.g. an ASCII-only terminal and an emoji title
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            self._stream.write(text.encode(encoding, "replace").decode(encoding))
        self._stream.flush()
        return None

    def find_sent(self, alert: Alert, channel: str | None, *, instance_id: str) -> str | None:
        """Always None: a stream cannot be read back."""
        return None

    def verify(self) -> str:
        """Nothing to check."""
        return "stdout: no Slack setting; alerts are printed to standard output"


def format_alert(alert: Alert) -> str:
    """The text block printed for one alert (ends with a blank line)."""
    published = alert.published.astimezone(UTC).strftime("%Y-%m-%d")
    rules = ", ".join(alert.rules) or alert.rule
    lines = [
        "=" * _WIDTH,
        _plain(alert.title) or "(untitled)",
        f"{_plain(alert.source)} · {published} · rule: {_plain(rules)}",
    ]
    if alert.matched_terms:
        lines.append("matched: " + _plain(", ".join(alert.matched_terms)))
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
