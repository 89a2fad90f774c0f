"""The bot-token notifier against the Slack emulator: payloads, failure classes, lookup, verify."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.errors import DeliveryError
from monitor.notify import SlackBotNotifier, StdoutNotifier, WebhookNotifier, notifier_from_env
from monitor.notify.slack_web import EVENT_TYPE, retry_after_seconds
from tests.slack_emulator import SlackEmulator
from tests.test_blocks import BASE

NOW = datetime.now(UTC).replace(microsecond=0)
ALERT = replace(BASE, created_at=NOW)


def bot(
    emu: SlackEmulator,
    *,
    channel: str | None = "#alerts",
    timeout: float = 2.0,
    token: str | None = None,
) -> SlackBotNotifier:
    return SlackBotNotifier(token or emu.token, channel, base_url=emu.api_url, timeout=timeout)


def test_post_payload(slack: SlackEmulator) -> None:
    ts = bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    [msg] = slack.messages
    assert msg.ts == ts
    assert msg.channel == "C0ALERTS"
    assert msg.unfurl_links is False and msg.unfurl_media is False
    assert msg.metadata == {
        "event_type": EVENT_TYPE,
        "event_payload": {"alert_id": 7, "instance": "db-1"},
    }
    assert msg.text.startswith("New AI safety partnership: UK and US")
    assert msg.blocks is not None and msg.blocks[0]["type"] == "header"


def test_rule_channel_and_default(slack: SlackEmulator) -> None:
    notifier = bot(slack)
    assert notifier.channel_for(ALERT) == "#alerts"
    assert notifier.channel_for(replace(ALERT, channel="#policy")) == "#policy"
    with pytest.raises(DeliveryError) as info:
        bot(slack, channel=None).channel_for(ALERT)
    assert info.value.kind == "config" and "SLACK_CHANNEL" in str(info.value)


@pytest.mark.parametrize("retry_after", ["7", "date"])
def test_rate_limited(slack: SlackEmulator, retry_after: str) -> None:
    value = retry_after
    if retry_after == "date":  # the server's Date header is "now" to the second
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    slack.rate_limit(1, retry_after=value)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert info.value.kind == "rate_limited" and not info.value.maybe_sent
    assert info.value.retry_after is not None
    if retry_after == "7":
        assert info.value.retry_after == 7
    else:
        assert 17 <= info.value.retry_after <= 21
    assert slack.messages == []


def test_retry_after_parsing() -> None:
    date = "Tue, 21 May 2024 09:30:00 GMT"
    assert retry_after_seconds({"Retry-After": "3"}) == 3
    assert retry_after_seconds({"retry-after": ["2.5"]}) == 2.5
    assert retry_after_seconds({"Retry-After": "Tue, 21 May 2024 09:31:00 GMT", "Date": date}) == 60
    assert retry_after_seconds({"Retry-After": "Tue, 21 May 2024 09:29:00 GMT", "Date": date}) == 0
    assert retry_after_seconds({"Retry-After": "soon"}) == 60
    assert retry_after_seconds({}) == 60


def test_server_error(slack: SlackEmulator) -> None:
    slack.server_error(1, status=503)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.code, info.value.retryable) == ("server", "http_503", True)


@pytest.mark.parametrize(
    "error", ["invalid_auth", "token_revoked", "account_inactive", "not_authed"]
)
def test_auth_errors(slack: SlackEmulator, error: str) -> None:
    slack.fail(error)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.code) == ("auth", error)


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
def test_channel_errors(slack: SlackEmulator, error: str) -> None:
    slack.fail(error)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.code) == ("channel", error)


@pytest.mark.parametrize("error", ["invalid_blocks", "msg_too_long"])
def test_message_errors_not_retryable(slack: SlackEmulator, error: str) -> None:
    slack.fail(error)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert info.value.kind == "message" and not info.value.retryable


def test_unknown_channel_name(slack: SlackEmulator) -> None:
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#nope", instance_id="db-1")
    assert info.value.kind == "channel"


def test_refused_is_not_sent(slack: SlackEmulator) -> None:
    slack.down()
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.maybe_sent) == ("network", False)


def test_dropped_answer_is_maybe_sent(slack: SlackEmulator) -> None:
    slack.drop_after_read(1)
    with pytest.raises(DeliveryError) as info:
        bot(slack).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.maybe_sent) == ("network", True)
    assert len(slack.messages) == 1


def test_timeout_is_maybe_sent(slack: SlackEmulator) -> None:
    slack.hang(1)
    with pytest.raises(DeliveryError) as info:
        bot(slack, timeout=1).send(ALERT, "#alerts", instance_id="db-1")
    assert (info.value.kind, info.value.maybe_sent, info.value.code) == ("network", True, "timeout")


def test_find_sent(slack: SlackEmulator) -> None:
    notifier = bot(slack)
    assert notifier.find_sent(ALERT, "#alerts", instance_id="db-1") is None
    other = replace(ALERT, id=8)
    notifier.send(other, "#alerts", instance_id="db-1")
    ts = notifier.send(ALERT, "#alerts", instance_id="db-1")
    notifier.send(ALERT, "#alerts", instance_id="another-db")  # same id, other database
    fresh = bot(slack)  # no cached channel ID: resolves "#alerts" via conversations.list
    assert fresh.find_sent(ALERT, "#alerts", instance_id="db-1") == ts
    assert fresh.find_sent(replace(ALERT, id=9), "#alerts", instance_id="db-1") is None
    assert fresh.find_sent(ALERT, "C0ALERTS", instance_id="db-1") == ts
    assert "conversations.list" in slack.calls


def test_find_sent_pages(slack: SlackEmulator) -> None:
    notifier = bot(slack)
    ts = notifier.send(ALERT, "#alerts", instance_id="db-1")
    for i in range(450):  # newer noise, so the alert is on the third page
        notifier.send(replace(ALERT, id=1000 + i), "#alerts", instance_id="db-1")
    assert notifier.find_sent(ALERT, "#alerts", instance_id="db-1") == ts


def test_find_sent_ignores_messages_before_the_alert(slack: SlackEmulator) -> None:
    notifier = bot(slack)
    notifier.send(ALERT, "#alerts", instance_id="db-1")
    # The lookup starts LOOKUP_MARGIN (1 day, for clock skew) before the alert was created.
    later = replace(ALERT, created_at=NOW + timedelta(days=2))
    assert notifier.find_sent(later, "#alerts", instance_id="db-1") is None


def test_verify(slack: SlackEmulator) -> None:
    assert "authenticated as monitor-bot" in bot(slack).verify()
    with pytest.raises(DeliveryError) as info:
        bot(slack, token="xoxb-wrong-secret").verify()
    assert info.value.kind == "auth"
    assert "xoxb-wrong-secret" not in str(info.value) + repr(info.value)


def test_from_env(slack: SlackEmulator, tmp_path: Path) -> None:
    out = io.StringIO()
    assert isinstance(notifier_from_env({}, stdout=out), StdoutNotifier)
    env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_CHANNEL": "#alerts",
        "SLACK_API_URL": slack.api_url.rstrip("/"),
        "SLACK_WEBHOOK_URL": slack.webhook_url,
    }
    notifier = notifier_from_env(env, stdout=out)
    assert isinstance(notifier, SlackBotNotifier) and notifier.exactly_once
    assert slack.token not in repr(notifier)
    assert "authenticated" in notifier.verify()
    secret = tmp_path / "token"
    secret.write_text(slack.token + "\n")
    env = {"SLACK_BOT_TOKEN_FILE": str(secret), "SLACK_API_URL": slack.api_url}
    assert "authenticated" in notifier_from_env(env, stdout=out).verify()
    hook = tmp_path / "hook"
    hook.write_text(slack.webhook_url)
    by_file = notifier_from_env({"SLACK_WEBHOOK_URL_FILE": str(hook)}, stdout=out)
    assert isinstance(by_file, WebhookNotifier) and not by_file.exactly_once
    assert slack.webhook_url not in repr(by_file)
    with pytest.raises(DeliveryError) as info:
        notifier_from_env({"SLACK_BOT_TOKEN_FILE": str(tmp_path / "missing")}, stdout=out)
    assert info.value.kind == "config" and "SLACK_BOT_TOKEN_FILE" in str(info.value)
