"""Slack Web API delivery (bot token, ``chat.postMessage``): the exactly-once mode.

slack-sdk's retry handlers are switched off (``retry_handlers=[]``): its
connection-error handler re-sends blindly (a double post when Slack got the
first one) and its rate-limit handler crashes on a date-form ``Retry-After``.
The deliverer owns the retry policy; this module only says what happened.

Every alert carries ``metadata`` with its id and the database's instance id,
so after a send whose answer was lost, :meth:`SlackBotNotifier.find_sent` can
look in ``conversations.history`` and settle whether it reached the channel.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import re
import urllib.error
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.notify.blocks import build_digest, build_followup, build_message, escape_mrkdwn
from monitor.notify.digest import DigestBatch
from monitor.stories import StoryView

EVENT_TYPE = "ai_safety_partnership_alert"
DIGEST_EVENT_TYPE = "ai_safety_partnership_digest"
LOOKUP_MARGIN = timedelta(days=1)  # our clock may run ahead of Slack's; pages are capped anyway
LOOKUP_PAGES = 20  # x 200 messages: beyond that the lookup is inconclusive
DEFAULT_RETRY_AFTER = 60.0  # a 429 without a usable Retry-After

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
    }
)
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "cannot_reply_to_message",
        "team_access_not_granted",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
    }
)
SERVER_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_ERROR_CODE = re.compile(r"^[a-z0-9_.]{1,80}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


def sdk_logger() -> logging.Logger:
    """A private, silent logger for slack-sdk: its debug lines can carry a webhook URL.

    We log outcomes ourselves, without secrets. The logger is not registered with
    :mod:`logging`, so nothing the application configures can turn it on.
    """
    logger = logging.Logger("monitor.notify.sdk", level=logging.CRITICAL + 1)
    logger.addHandler(logging.NullHandler())
    return logger


def network_error(exc: BaseException, what: str) -> DeliveryError:
    """Classify an exception raised by urllib inside slack-sdk.

    urllib wraps failures while connecting and writing the request in ``URLError``:
    the request never fully left, so it cannot have been posted. Anything after
    the request was written (timeout, reset, closed without answer) may have
    been posted; so may anything we cannot recognise.
    """
    name = type(exc).__name__
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = type(exc.reason).__name__ if isinstance(exc.reason, BaseException) else "error"
        return DeliveryError(
            f"{what}: could not reach Slack ({reason})",
            kind="network",
            retryable=True,
            maybe_sent=False,
            code="unreachable",
        )
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return DeliveryError(
            f"{what}: Slack did not answer in time; the message may have been posted",
            kind="network",
            retryable=True,
            maybe_sent=True,
            code="timeout",
        )
    if isinstance(exc, OSError | http.client.HTTPException):
        return DeliveryError(
            f"{what}: connection lost before Slack answered ({name}); the "
            "message may have been posted",
            kind="network",
            retryable=True,
            maybe_sent=True,
            code="connection_lost",
        )
    return DeliveryError(
        f"{what}: unexpected failure ({name}); the message may have been posted",
        kind="network",
        retryable=True,
        maybe_sent=True,
        code="unexpected",
    )


def retry_after_seconds(headers: Mapping[str, Any]) -> float:
    """Seconds to wait from ``Retry-After`` (delta-seconds or HTTP-date).

    A date is measured against the response's own ``Date`` header, so no local
    clock is involved; without one we fall back to :data:`DEFAULT_RETRY_AFTER`.
    """
    lower = {k.lower(): (v[0] if isinstance(v, list) and v else v) for k, v in headers.items()}
    value = str(lower.get("retry-after") or "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = email.utils.parsedate_to_datetime(value)
        date = email.utils.parsedate_to_datetime(str(lower.get("date") or ""))
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    return max(0.0, (until - date).total_seconds())


def classify(status: int, error: str, headers: Mapping[str, Any], what: str) -> DeliveryError:
    """Turn an HTTP status and Slack error code into a :class:`DeliveryError`."""
    if status == 429 or error in ("ratelimited", "rate_limited"):
        wait = retry_after_seconds(headers)
        return DeliveryError(
            f"{what}: rate limited by Slack; retry after {wait:.0f} s",
            kind="rate_limited",
            retryable=True,
            retry_after=wait,
            code="ratelimited",
        )
    if status >= 500 or error in SERVER_ERRORS:
        retry = retry_after_seconds(headers) if _has(headers, "retry-after") else None
        return DeliveryError(
            f"{what}: Slack server error (HTTP {status}{', ' + error if error else ''})",
            kind="server",
            retryable=True,
            retry_after=retry,
            code=error or f"http_{status}",
        )
    if error in AUTH_ERRORS or (status in (401, 403) and error in ("", "invalid_token")):
        return DeliveryError(
            f"{what}: Slack rejected the credentials ({error or status})",
            kind="auth",
            retryable=True,
            code=error or f"http_{status}",
        )
    if error in CHANNEL_ERRORS:
        return DeliveryError(
            f"{what}: Slack refused the channel ({error})",
            kind="channel",
            retryable=True,
            code=error,
        )
    return DeliveryError(
        f"{what}: Slack refused the message ({error or 'HTTP ' + str(status)})",
        kind="message",
        retryable=False,
        code=error or f"http_{status}",
    )


def _has(headers: Mapping[str, Any], name: str) -> bool:
    return any(k.lower() == name for k in headers)


class SlackBotNotifier:
    """Posts alerts with ``chat.postMessage``; can look them up again (exactly once)."""

    mode = "slack-bot"
    exactly_once = True
    threads = True

    def __init__(
        self,
        token: str,
        default_channel: str | None,
        *,
        base_url: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        # Imported here: slack-sdk costs ~20 ms to import, and most commands never post.
        from slack_sdk import WebClient

        kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
        self._client = WebClient(
            token=token,
            timeout=int(max(1, timeout)),
            retry_handlers=[],
            logger=sdk_logger(),
            **kwargs,
        )
        self.default_channel = default_channel
        self._ids: dict[str, str] = {}  # channel name -> ID, learned from answers and lookups

    def __repr__(self) -> str:
        return f"SlackBotNotifier(default_channel={self.default_channel!r})"

    def channel_for(self, alert: Alert) -> str | None:
        """The rule's channel, else the default; config error when there is neither."""
        return self._default(alert)

    def _default(self, alert: Alert) -> str:
        channel = alert.channel or self.default_channel
        if not channel:
            raise DeliveryError(
                f"alert {alert.id}: rule '{alert.rule}' has no channel and SLACK_CHANNEL is not "
                "set: set SLACK_CHANNEL (e.g. #ai-safety) or give the rule a channel",
                kind="config",
                retryable=True,
                code="no_channel",
            )
        return channel

    def send(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Post one alert (a follow-up as a reply in its story's thread); return its ``ts``.

        Raises :class:`DeliveryError`.
        """
        reply = story is not None and story.followup and story.thread_ts is not None
        message = (
            build_followup(alert, story)  # a thread reply never pings
            if reply
            else build_message(alert, story, mention=alert.mention)
        )
        body: dict[str, Any] = {
            "channel": channel or self._default(alert),
            **message,
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
            "metadata": _metadata(alert.id, instance_id),
        }
        if reply and story is not None:
            body["thread_ts"] = story.thread_ts
        data = self._call(f"alert {alert.id}", "chat.postMessage", json=body)
        if channel and isinstance(data.get("channel"), str):
            self._ids[channel] = data["channel"]
        return str(data["ts"]) if data.get("ts") is not None else None

    def update_story(
        self, root: Alert, story: StoryView, channel: str, ts: str, *, instance_id: str
    ) -> None:
        """``chat.update`` the root message with the story's sources. Idempotent.

        Raises :class:`DeliveryError`.
        """
        what = f"story {story.story} update"
        body = {
            "channel": self._resolve(channel, what),  # chat.update takes IDs, not names
            "ts": ts,
            **build_message(root, story),
            "link_names": False,
            "metadata": _metadata(root.id, instance_id),  # keep the root findable
        }
        self._call(what, "chat.update", json=body)

    def send_batch(self, story: StoryView, alerts: list[Alert]) -> None:
        """Not used in bot mode (follow-ups are thread replies)."""
        raise NotImplementedError("the bot replies in threads; batches are for webhooks")

    def send_digest(
        self, batch: DigestBatch, channel: str | None, *, instance_id: str
    ) -> str | None:
        """Post one digest message; its metadata lists every alert in it. Returns its ``ts``.

        Raises :class:`DeliveryError`.
        """
        first = batch.items[0].alert
        body: dict[str, Any] = {
            "channel": channel or self._default(first),
            **build_digest(batch),
            "unfurl_links": False,
            "unfurl_media": False,
            "link_names": False,
            "metadata": _digest_metadata(batch, instance_id),
        }
        data = self._call(_digest_what(batch), "chat.postMessage", json=body)
        if channel and isinstance(data.get("channel"), str):
            self._ids[channel] = data["channel"]
        return str(data["ts"]) if data.get("ts") is not None else None

    def find_digest(
        self, alerts: Sequence[Alert], channel: str | None, *, instance_id: str
    ) -> dict[int, str]:
        """Which of ``alerts`` a digest message in the channel's history lists: id -> ``ts``.

        Reads ``conversations.history`` from (a margin before) the oldest alert's
        creation. Raises :class:`DeliveryError` (kind ``lookup``) when the history is
        too long to settle the question.
        """
        if not alerts:
            return {}
        what = f"digest lookup ({len(alerts)} alerts of rule {alerts[0].digest or alerts[0].rule})"
        channel_id = self._resolve(channel or self._default(alerts[0]), what)
        oldest = (min(a.created_at for a in alerts) - LOOKUP_MARGIN).timestamp()
        wanted = {a.id for a in alerts}
        found: dict[int, str] = {}
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            params: dict[str, Any] = {
                "channel": channel_id,
                "oldest": f"{oldest:.6f}",
                "limit": 200,
                "include_all_metadata": True,
            }
            if cursor:
                params["cursor"] = cursor
            data = self._call(what, "conversations.history", params=params, http_verb="GET")
            for message in data.get("messages") or []:
                for alert_id in _digest_ids(message, instance_id) & wanted:
                    found[alert_id] = str(message["ts"])
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or len(found) == len(wanted):
                return found
        raise DeliveryError(
            f"{what}: more than {LOOKUP_PAGES * 200} messages since the alerts were created; "
            "cannot tell whether the digest was posted. Check the channel, then run "
            "`monitor outbox --retry` to post it",
            kind="lookup",
            retryable=False,
            code="lookup_inconclusive",
        )

    def find_sent(
        self,
        alert: Alert,
        channel: str | None,
        *,
        instance_id: str,
        story: StoryView | None = None,
    ) -> str | None:
        """Look the alert up in the channel's recent history; its ``ts``, or None if absent.

        A thread reply is looked up in its thread (``conversations.replies``), since
        ``conversations.history`` lists only top-level messages.
        Raises :class:`DeliveryError` (kind ``lookup`` when the history is too long
        to settle the question) rather than guessing "not sent".
        """
        what = f"alert {alert.id} lookup"
        channel_id = self._resolve(channel or self._default(alert), what)
        oldest = (alert.created_at - LOOKUP_MARGIN).timestamp()
        thread = story.thread_ts if story is not None and story.followup else None
        method = "conversations.replies" if thread else "conversations.history"
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            params: dict[str, Any] = {
                "channel": channel_id,
                "oldest": f"{oldest:.6f}",
                "limit": 200,
                "include_all_metadata": True,
            }
            if thread:
                params["ts"] = thread
            if cursor:
                params["cursor"] = cursor
            data = self._call(what, method, params=params, http_verb="GET")
            for message in data.get("messages") or []:
                if _is_ours(message, alert.id, instance_id):
                    return str(message["ts"])
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        raise DeliveryError(
            f"{what}: more than {LOOKUP_PAGES * 200} messages since the alert was created; "
            "cannot tell whether it was posted. Check the channel, then run "
            "`monitor outbox --retry` to post it",
            kind="lookup",
            retryable=False,
            code="lookup_inconclusive",
        )

    def post_text(self, channel: str, text: str) -> str | None:
        """Post a short plain message (operator notices); feed text in it is escaped."""
        data = self._call(
            "notice",
            "chat.postMessage",
            json={
                "channel": channel,
                "text": escape_mrkdwn(text),
                "unfurl_links": False,
                "unfurl_media": False,
                "link_names": False,
            },
        )
        return str(data["ts"]) if data.get("ts") is not None else None

    def verify(self) -> str:
        """``auth.test``: one line saying who we are. Raises :class:`DeliveryError`."""
        data = self._call("auth.test", "auth.test")
        where = (
            f"default channel {self.default_channel}"
            if self.default_channel
            else "no default channel (every rule needs a channel)"
        )
        return f"slack-bot: authenticated as {data.get('user')} in {data.get('team')}; {where}"

    def _resolve(self, channel: str, what: str) -> str:
        """A channel ID for ``conversations.history`` (which does not take names)."""
        if _CHANNEL_ID.match(channel):
            return channel
        if channel in self._ids:
            return self._ids[channel]
        name = channel.lstrip("#")
        cursor = ""
        for _ in range(50):
            params: dict[str, Any] = {
                "types": "public_channel,private_channel",
                "limit": 1000,
                "exclude_archived": True,
            }
            if cursor:
                params["cursor"] = cursor
            data = self._call(what, "conversations.list", params=params, http_verb="GET")
            for item in data.get("channels") or []:
                if item.get("name") == name:
                    self._ids[channel] = str(item["id"])
                    return self._ids[channel]
            cursor = str((data.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        raise DeliveryError(
            f"{what}: channel {channel} not found (or the bot cannot see it)",
            kind="channel",
            retryable=True,
            code="channel_not_found",
        )

    def _call(self, what: str, method: str, **kwargs: Any) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError  # loaded with WebClient in __init__

        try:
            response = self._client.api_call(method, **kwargs)
        except SlackApiError as exc:
            resp = exc.response
            data = resp.data if isinstance(resp.data, dict) else {}
            error = str(data.get("error") or "")
            # slack-sdk reports a non-JSON body (a proxy's 502 page) as a sentence, not a code
            code = error if _ERROR_CODE.match(error) else ""
            raise classify(resp.status_code, code, resp.headers, what) from None
        except Exception as exc:  # urllib / http.client: classify, never echo the request
            raise network_error(exc, what) from None
        return response.data if isinstance(response.data, dict) else {}


def _metadata(alert_id: int, instance_id: str) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"alert_id": alert_id, "instance": instance_id},
    }


def _digest_what(batch: DigestBatch) -> str:
    return f"digest {batch.rule} part {batch.part}/{batch.parts}"


def _digest_metadata(batch: DigestBatch, instance_id: str) -> dict[str, Any]:
    return {
        "event_type": DIGEST_EVENT_TYPE,
        "event_payload": {
            "digest": batch.rule,
            "alert_ids": list(batch.alert_ids),
            "instance": instance_id,
        },
    }


def _digest_ids(message: Mapping[str, Any], instance_id: str) -> set[int]:
    """The alert ids a digest message of this database lists (empty for anything else)."""
    meta = message.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("event_type") != DIGEST_EVENT_TYPE:
        return set()
    payload = meta.get("event_payload")
    if not isinstance(payload, Mapping) or payload.get("instance") != instance_id:
        return set()
    ids = payload.get("alert_ids")
    if not isinstance(ids, list):
        return set()
    return {int(i) for i in ids if isinstance(i, int) or (isinstance(i, str) and i.isdigit())}


def _is_ours(message: Mapping[str, Any], alert_id: int, instance_id: str) -> bool:
    meta = message.get("metadata")
    if not isinstance(meta, Mapping) or meta.get("event_type") != EVENT_TYPE:
        return False
    payload = meta.get("event_payload")
    return (
        isinstance(payload, Mapping)
        and str(payload.get("alert_id")) == str(alert_id)
        and payload.get("instance") == instance_id
    )
