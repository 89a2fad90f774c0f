"""Where alerts go: the :class:`Notifier` seam and the factory that picks one from the env.

Three modes, chosen by which setting is present (first wins):

- ``SLACK_BOT_TOKEN`` (or ``SLACK_BOT_TOKEN_FILE``): Web API, exactly once;
  ``SLACK_CHANNEL`` is the default channel, ``SLACK_API_URL`` the API base URL.
- ``SLACK_WEBHOOK_URL`` (or ``SLACK_WEBHOOK_URL_FILE``): incoming webhook, at
  least once.
- neither: alerts are printed to stdout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.notify.digest import DigestBatch
from monitor.notify.slack_web import SlackBotNotifier
from monitor.notify.stdout import StdoutNotifier
from monitor.notify.webhook import WebhookNotifier
from monitor.stories import StoryView

__all__ = ["Notifier", "SlackBotNotifier", "StdoutNotifier", "WebhookNotifier", "notifier_from_env"]


class Notifier(Protocol):
    """Sends one alert somewhere. All methods block: call them from a worker thread."""

    mode: str  # "slack-bot" | "slack-webhook" | "stdout"
    exactly_once: bool  # True only when find_sent can really look a message up
    threads: bool  # True when follow-ups can be thread replies and roots can be edited

    def channel_for(self, alert: Alert) -> str | None:
        """The channel this alert goes to (None: the notifier's only destination)."""
        ...

    def send(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Send; return the message ``ts`` when there is one. Raises :class:`DeliveryError`.

        ``story.followup`` with a ``thread_ts``: a reply in the root's thread.
        """
        ...

    def find_sent(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """The ``ts`` of this alert's message if it is already in the channel, else None."""
        ...

    def update_story(
        self, root: Alert, story: StoryView, channel: str, ts: str, *, instance_id: str
    ) -> None:
        """Edit the story's root message to show ``story`` (idempotent: safe to repeat)."""
        ...

    def send_batch(self, story: StoryView, alerts: list[Alert]) -> None:
        """Send several follow-ups of one story as one message (no threads)."""
        ...

    def send_digest(
        self, batch: DigestBatch, channel: str | None, *, instance_id: str
    ) -> str | None:
        """Send one digest message; return its ``ts`` when there is one.

        Raises :class:`DeliveryError`.
        """
        ...

    def find_digest(
        self, alerts: Sequence[Alert], channel: str | None, *, instance_id: str
    ) -> dict[int, str]:
        """Which of ``alerts`` a digest message in the channel already lists: id -> ``ts``."""
        ...

    def verify(self) -> str:
        """Check the settings without posting; one line for ``monitor check --slack``."""
        ...


def notifier_from_env(env: Mapping[str, str], *, stdout: TextIO, timeout: float = 15.0) -> Notifier:
    """Build the notifier the environment asks for. Raises :class:`DeliveryError` (kind config).

    Messages name the variable, never its value: tokens and webhook URLs are secrets.
    """
    token = _secret(env, "SLACK_BOT_TOKEN")
    if token:
        channel = (env.get("SLACK_CHANNEL") or "").strip() or None
        base_url = (env.get("SLACK_API_URL") or "").strip() or None
        if base_url and not base_url.endswith("/"):
            base_url += "/"  # slack-sdk joins "base_url + method"
        return SlackBotNotifier(token, channel, base_url=base_url, timeout=timeout)
    url = _secret(env, "SLACK_WEBHOOK_URL")
    if url:
        return WebhookNotifier(url, timeout=timeout)
    return StdoutNotifier(stdout)


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``NAME`` from the env, else the contents of the file named by ``NAME_FILE``."""
    value = (env.get(name) or "").strip()
    if value:
        return value
    path = (env.get(f"{name}_FILE") or "").strip()
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DeliveryError(
            f"{name}_FILE: cannot read {path} ({exc.strerror or type(exc).__name__})",
            kind="config",
            retryable=False,
        ) from None
    if not value:
        raise DeliveryError(f"{name}_FILE: {path} is empty", kind="config", retryable=False)
    return value
