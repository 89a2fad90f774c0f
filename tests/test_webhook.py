"""The incoming-webhook notifier against the emulator: payload, errors, probe, no leaked URL."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest

from monitor.errors import DeliveryError
from monitor.notify import SlackBotNotifier, StdoutNotifier, WebhookNotifier
from tests.slack_emulator import SlackEmulator
from tests.test_blocks import BASE, HOSTILE


def hook(emu: SlackEmulator, url: str | None = None) -> WebhookNotifier:
    return WebhookNotifier(url or emu.webhook_url, timeout=1)


def _secret_free(exc: BaseException, url: str) -> None:
    secret = url.rsplit("/webhook/", 1)[1]
    for text in (str(exc), repr(exc), str(exc.__cause__), str(exc.__context__)):
        assert secret not in text


def test_post(slack: SlackEmulator) -> None:
    notifier = hook(slack)
    assert notifier.channel_for(replace(BASE, channel="#policy")) is None
    assert notifier.send(BASE, None, instance_id="db") is None
    [msg] = slack.messages
    assert (msg.via, msg.channel, msg.unfurl_links, msg.unfurl_media) == (
        "webhook",
        "C0ALERTS",
        False,
        False,
    )
    assert msg.text.startswith("New AI safety partnership:")
    assert notifier.find_sent(BASE, None, instance_id="db") is None  # cannot look back


@pytest.mark.parametrize(
    ("setup", "kind", "maybe_sent"),
    [
        (lambda e: e.rate_limit(1, retry_after="4"), "rate_limited", False),
        (lambda e: e.server_error(1, status=502), "server", False),
        (lambda e: e.drop_after_read(1), "network", True),
        (lambda e: e.down(), "network", False),
        (lambda e: e.channels.pop("#alerts"), "channel", False),
    ],
    ids=["429", "502", "dropped", "down", "archived"],
)
def test_errors(slack: SlackEmulator, setup: object, kind: str, maybe_sent: bool) -> None:
    url = slack.webhook_url
    setup(slack)  # type: ignore[operator]
    with pytest.raises(DeliveryError) as info:
        hook(slack, url).send(BASE, None, instance_id="db")
    assert (info.value.kind, info.value.maybe_sent) == (kind, maybe_sent)
    if kind == "rate_limited":
        assert info.value.retry_after == 4
    _secret_free(info.value, url)


def test_removed_webhook_is_auth(slack: SlackEmulator) -> None:
    url = slack.webhook_url.replace("XXXXSECRETXXXX", "GONE")
    with pytest.raises(DeliveryError) as info:
        hook(slack, url).send(BASE, None, instance_id="db")
    assert (info.value.kind, info.value.code) == ("auth", "no_service")
    _secret_free(info.value, url)


def test_verify_posts_nothing(slack: SlackEmulator) -> None:
    assert "live" in hook(slack).verify()
    bad = slack.webhook_url.replace("XXXXSECRETXXXX", "WRONG")
    with pytest.raises(DeliveryError) as info:
        hook(slack, bad).verify()
    assert info.value.kind == "auth"
    _secret_free(info.value, bad)
    assert slack.messages == []


def test_verify_unreachable(slack: SlackEmulator) -> None:
    url = slack.webhook_url
    slack.down()
    with pytest.raises(DeliveryError) as info:
        hook(slack, url).verify()
    assert info.value.kind == "network"
    _secret_free(info.value, url)


def test_not_a_url() -> None:
    with pytest.raises(DeliveryError) as info:
        WebhookNotifier("file:///etc/passwd")
    assert info.value.kind == "config" and "passwd" not in str(info.value)


def test_stdout_prints_readable_block() -> None:
    out = io.StringIO()
    notifier = StdoutNotifier(out)
    notifier.send(HOSTILE, None, instance_id="db")
    notifier.send(
        replace(BASE, title="a\x1b[31mred\x00\ud800", summary="x " * 2000), None, instance_id="db"
    )
    text = out.getvalue()
    assert "<!channel> <!here>" in text  # stdout is not Slack: shown as written
    assert "\x1b" not in text and "\x00" not in text and "\ud800" not in text
    assert "rule: <!channel>" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "stdout" in notifier.verify()


def test_stdout_survives_ascii_stream() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    StdoutNotifier(stream).send(replace(BASE, title="emoji 🤝 and Ω"), None, instance_id="db")
    assert b"emoji ? and ?" in raw.getvalue()


def test_no_secret_in_debug_logs(slack: SlackEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # even with everything on, slack-sdk's own lines stay out
    hook(slack).send(BASE, None, instance_id="db")
    SlackBotNotifier(slack.token, "#alerts", base_url=slack.api_url).send(
        BASE, None, instance_id="db"
    )
    slack.drop_after_read(1)
    with pytest.raises(DeliveryError):
        hook(slack).send(BASE, None, instance_id="db")
    secret = slack.webhook_url.rsplit("/", 1)[1]
    assert secret not in caplog.text and slack.token not in caplog.text
