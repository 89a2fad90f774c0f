"""Secrets (tokens, webhook URLs, also from ``*_FILE``) never reach logs, errors or stdout."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from monitor.logs import RedactSecrets, secret_values
from tests.feedserver import FeedServer, rss
from tests.slack_emulator import SlackEmulator
from tests.support import monitor_env, run_monitor, write_rules_dir

TOKEN = "xoxb-1111-2222-supersecrettoken"


def run_once(rules_dir: Path, state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_monitor(
        "once", "--backfill", "all", "--log-level", "DEBUG", "--rules", str(rules_dir),
        "--state", str(state), env=monitor_env(**env), timeout=60,
    )  # fmt: skip


def test_token_from_file_is_never_logged(
    tmp_path: Path, feed_server: FeedServer, slack: SlackEmulator
) -> None:
    feed_server.set(
        "/a.xml",
        rss(
            [
                {
                    "title": "AI Safety Institute partnership " + TOKEN,
                    "guid": "1",
                    "link": "https://gov.example/1",
                }
            ]
        ),
    )
    rules_dir = write_rules_dir(tmp_path, [{"name": "A", "url": feed_server.url("/a.xml")}])
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    result = run_once(
        rules_dir,
        tmp_path / "m.db",
        {
            "SLACK_BOT_TOKEN_FILE": str(secret),
            "SLACK_API_URL": slack.api_url,
            "SLACK_CHANNEL": "#alerts",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "invalid_auth" in result.stderr  # the emulator only knows its own token
    assert TOKEN not in result.stderr and TOKEN not in result.stdout
    assert "supersecret" not in result.stderr


def test_webhook_url_is_never_logged_even_when_unreachable(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set(
        "/a.xml",
        rss(
            [
                {
                    "title": "AI Safety Institute partnership",
                    "guid": "1",
                    "link": "https://gov.example/1",
                }
            ]
        ),
    )
    rules_dir = write_rules_dir(tmp_path, [{"name": "A", "url": feed_server.url("/a.xml")}])
    hook = "http://127.0.0.1:9/services/T000/B000/XXXXWEBHOOKSECRETXXXX"
    result = run_once(rules_dir, tmp_path / "m.db", {"SLACK_WEBHOOK_URL": hook})
    assert result.returncode == 0, result.stderr
    assert "XXXXWEBHOOKSECRETXXXX" not in result.stderr + result.stdout
    assert "1 undelivered" in run_monitor("outbox", "--state", str(tmp_path / "m.db")).stdout


def test_redaction_covers_messages_and_tracebacks(tmp_path: Path) -> None:
    secret = tmp_path / "hook"
    secret.write_text("https://hooks.slack.com/services/T/B/FILESECRET123\n")
    values = secret_values({"SLACK_BOT_TOKEN": TOKEN, "SLACK_WEBHOOK_URL_FILE": str(secret)})
    assert values == [TOKEN, "https://hooks.slack.com/services/T/B/FILESECRET123"]
    record: logging.LogRecord | None = None
    try:
        raise RuntimeError("failed calling https://hooks.slack.com/services/T/B/FILESECRET123")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token %s", (TOKEN,), sys.exc_info()
        )
    assert RedactSecrets(values).filter(record)
    text = logging.Formatter().format(record)
    assert TOKEN not in text and "FILESECRET123" not in text
    assert text.count("[redacted]") == 3  # the message, the source line, the exception


def test_json_log_lines_about_an_alert_carry_its_ids(
    tmp_path: Path, feed_server: FeedServer, slack: SlackEmulator
) -> None:
    import json as jsonlib

    feed_server.set(
        "/a.xml",
        rss(
            [
                {
                    "title": "AI Safety Institute partnership",
                    "guid": "1",
                    "link": "https://gov.example/1",
                }
            ]
        ),
    )
    rules_dir = write_rules_dir(tmp_path, [{"name": "A", "url": feed_server.url("/a.xml")}])
    slack.server_error(1, status=503)
    result = run_once(
        rules_dir,
        tmp_path / "m.db",
        {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.api_url,
            "SLACK_CHANNEL": "#alerts",
            "MONITOR_LOG_FORMAT": "json",
        },
    )
    records = [jsonlib.loads(line) for line in result.stderr.splitlines()]
    [retry] = [r for r in records if "retrying in" in r["message"]]
    assert retry["alert"] == 1 and retry["feed"] == "A" and retry["rule"] == "partnerships"
