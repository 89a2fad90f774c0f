"""Slack incoming-webhook delivery: at-least-once.

A webhook cannot read the channel back, so when a send's answer is lost
(timeout, connection dropped after the request was written) nobody can tell
whether Slack posted it. The deliverer then sends again: a rare duplicate is
the price of never losing an alert. Use a bot token for exactly-once.

The webhook URL is a secret (anyone holding it can post): it is never put in
a message, an exception or a repr, and slack-sdk gets a silent logger because
its debug lines print the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.notify.blocks import build_batch, build_digest, build_message
from monitor.notify.digest import DigestBatch
from monitor.notify.slack_web import classify, network_error, sdk_logger
from monitor.stories import StoryView

# Webhook errors come back as text bodies with an HTTP status.
_LIVE_PROBE_ANSWERS = frozenset(
    {"no_text", "invalid_payload", "missing_text_or_fallback_or_attachments"}
)
_KIND_BY_BODY = {
    "invalid_token": "auth",
    "no_service": "auth",  # the webhook was removed / the app uninstalled
    "no_team": "auth",
    "team_disabled": "auth",
    "action_prohibited": "channel",
    "channel_not_found": "channel",
    "channel_is_archived": "channel",
    "posting_to_general_channel_denied": "channel",
}


class WebhookNotifier:
    """Posts alerts to one incoming webhook (its channel is fixed by Slack)."""

    mode = "slack-webhook"
    exactly_once = False
    threads = False  # follow-ups are batched or dropped by the deliverer (docs/slack.md)

    def __init__(self, url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(
                "SLACK_WEBHOOK_URL is not an http(s) URL", kind="config", retryable=False
            )
        from slack_sdk.webhook import WebhookClient  # ~20 ms: only when a webhook is used

        self._client = WebhookClient(
            url, timeout=int(max(1, timeout)), retry_handlers=[], logger=sdk_logger()
        )

    def __repr__(self) -> str:
        return "WebhookNotifier(url=<redacted>)"

    def channel_for(self, alert: Alert) -> str | None:
        """Always None: the webhook decides the channel (rule channels are ignored)."""
        return None

    def send(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Post one alert. Returns None (webhooks give no ``ts``). Raises :class:`DeliveryError`."""
        root = story if story is None or not story.followup else None
        body = {
            **build_message(alert, root, mention=alert.mention),
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
        }
        self._post(f"alert {alert.id}", body)
        return None

    def send_batch(self, story: StoryView, alerts: list[Alert]) -> None:
        """Post several follow-ups of one story as one message. Raises :class:`DeliveryError`."""
        body = {
            **build_batch(story, alerts),
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
        }
        self._post(f"story {story.story} follow-ups", body)

    def send_digest(
        self, batch: DigestBatch, channel: str | None, *, instance_id: str
    ) -> str | None:
        """Post one digest message (at least once). Raises :class:`DeliveryError`."""
        body = {
            **build_digest(batch),
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
        }
        self._post(f"digest {batch.rule} part {batch.part}/{batch.parts}", body)
        return None

    def find_digest(
        self, alerts: Sequence[Alert], channel: str | None, *, instance_id: str
    ) -> dict[int, str]:
        """Webhooks cannot read history: nothing found (hence at-least-once)."""
        return {}

    def update_story(
        self, root: Alert, story: StoryView, channel: str, ts: str, *, instance_id: str
    ) -> None:
        """Webhooks cannot edit a message: nothing to do."""

    def find_sent(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Webhooks cannot read history: always None (hence at-least-once)."""
        return None

    def verify(self) -> str:
        """Probe the URL with an empty payload, which Slack refuses without posting anything.

        ``no_text``/``invalid_payload`` means the webhook exists; ``no_service``,
        ``invalid_token`` and friends mean it does not.
        """
        try:
            self._post("webhook check", {})
        except DeliveryError as exc:
            if exc.code in _LIVE_PROBE_ANSWERS:
                return (
                    "slack-webhook: the webhook URL is live (empty probe refused; nothing posted)"
                )
            raise
        # A 200 to an empty payload is not Slack; say so rather than claim success.
        raise DeliveryError(
            "webhook check: the URL answered an empty payload with 200 ok; it "
            "does not look like a Slack incoming webhook",
            kind="config",
            retryable=False,
        )

    def _post(self, what: str, body: dict[str, object]) -> None:
        try:
            response = self._client.send_dict(body)
        except Exception as exc:  # urllib: classify; `from None` keeps the URL out of tracebacks
            raise network_error(exc, what) from None
        text = (response.body or "").strip()
        if response.status_code == 200:  # Slack says "ok"; any 200 means it took the post
            return
        code = text if text.replace("_", "").isalnum() and len(text) < 60 else ""
        kind = _KIND_BY_BODY.get(code)
        if kind is not None and response.status_code < 500:
            raise DeliveryError(
                f"{what}: Slack refused the webhook post ({code})",
                kind=kind,
                retryable=True,
                code=code,
            )
        raise classify(response.status_code, code, response.headers, what)
