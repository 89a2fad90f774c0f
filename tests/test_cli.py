"""The ``monitor`` command as a person runs it: real processes, real feed server, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import build_parser
from tests.feedserver import FeedServer, rss
from tests.slack_emulator import SlackEmulator
from tests.support import REPO, monitor_env, run_monitor, write_rules_dir

COMMANDS = ["run", "once", "check", "outbox", "feeds", "explain", "backtest", "healthcheck", "demo"]


def monitor(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_monitor(*args, env=monitor_env(**(env or {})), cwd=cwd, timeout=timeout)


def recent(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


ITEMS = [
    {
        "title": "UK and Japan AI Safety Institutes sign memorandum on joint testing",
        "link": "https://gov.example/uk-japan?utm_source=rss",
        "guid": "g1",
        "description": "<p>The institutes will <b>collaborate</b> on model evaluations.</p>",
        "pubDate": recent(1),
    },
    {
        "title": "Weather office opens new building",
        "link": "https://gov.example/weather",
        "guid": "g2",
        "description": "Nothing to see.",
        "pubDate": recent(2),
    },
]


@pytest.fixture
def rules_dir(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.set("/a.xml", rss(ITEMS), etag='"v1"')
    return write_rules_dir(
        tmp_path, [{"name": "Gov A", "url": feed_server.url("/a.xml"), "tags": ["government"]}]
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = monitor(command, "--help")
    assert result.returncode == 0
    sub = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert sub.description and sub.description.split()[0] in result.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    for command in COMMANDS:
        assert f"monitor {command}" in readme, command


def test_check_passes_on_the_shipped_config() -> None:
    result = monitor("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ") and "delivery: stdout" in result.stdout


def test_check_fails_naming_file_rule_and_reason(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(
        tmp_path,
        [{"name": "A", "url": "https://a.example/"}],
        "rules:\n  - name: broken\n    query: 'partner* AND'\n",
    )
    result = monitor("check", "--rules", str(rules_dir))
    assert result.returncode == 1
    assert "rules.yaml" in result.stderr and "rule 'broken'" in result.stderr
    assert "1 config error(s)" in result.stderr and result.stdout == ""


def test_rules_dir_from_environment(tmp_path: Path) -> None:
    result = monitor("check", env={"MONITOR_RULES_DIR": str(tmp_path / "nowhere")})
    assert result.returncode == 1 and "nowhere" in result.stderr


def test_dry_run_prints_json_lines_and_writes_no_state(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "monitor.db"
    result = monitor(
        "once", "--dry-run", "--backfill", "all", "--rules", str(rules_dir), "--state", str(state)
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    [alert] = lines
    assert alert["rule"] == "partnerships" and alert["source"] == "Gov A"
    assert alert["title"] == ITEMS[0]["title"]
    assert alert["link"] == "https://gov.example/uk-japan"
    assert alert["published"].endswith("Z") and alert["matched_terms"]
    assert "duplicate_of" not in alert
    assert not state.exists() and not state.parent.exists()


def test_dry_run_without_backfill_alerts_on_nothing(rules_dir: Path, tmp_path: Path) -> None:
    result = monitor(
        "once", "--dry-run", "--rules", str(rules_dir), "--state", str(tmp_path / "m.db")
    )
    assert result.returncode == 0 and result.stdout == ""


def test_once_prints_alerts_then_second_run_prints_nothing(
    rules_dir: Path, tmp_path: Path, feed_server: FeedServer
) -> None:
    state = tmp_path / "m.db"
    first = monitor("once", "--backfill", "7d", "--rules", str(rules_dir), "--state", str(state))
    assert first.returncode == 0, first.stderr
    assert ITEMS[0]["title"] in first.stdout and "Weather" not in first.stdout
    assert "https://gov.example/uk-japan" in first.stdout
    second = monitor("once", "--rules", str(rules_dir), "--state", str(state))
    assert second.returncode == 0 and second.stdout == ""
    # A new item appears: only it is alerted.
    feed_server.set(
        "/a.xml",
        rss(
            [
                *ITEMS,
                {
                    "title": "Canada and UK AI safety institutes announce research partnership",
                    "link": "https://gov.example/uk-canada",
                    "guid": "g3",
                    "pubDate": recent(0),
                },
            ]
        ),
    )
    third = monitor("once", "--rules", str(rules_dir), "--state", str(state))
    assert "uk-canada" in third.stdout and "uk-japan" not in third.stdout
    outbox = monitor("outbox", "--state", str(state))
    assert "outbox is empty" in outbox.stdout


def test_state_path_from_environment(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "env" / "monitor.db"
    result = monitor("once", "--rules", str(rules_dir), env={"MONITOR_STATE": str(state)})
    assert result.returncode == 0, result.stderr
    assert state.exists()


def test_bad_backfill_is_a_clear_error(rules_dir: Path, tmp_path: Path) -> None:
    result = monitor(
        "once", "--backfill", "lots", "--rules", str(rules_dir), "--state", str(tmp_path / "m.db")
    )
    assert result.returncode == 1 and "--backfill" in result.stderr


def test_corrupt_state_is_refused(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "m.db"
    state.write_bytes(b"garbage" * 1000)
    result = monitor("once", "--rules", str(rules_dir), "--state", str(state))
    assert result.returncode == 1 and "state error" in result.stderr
    assert state.read_bytes() == b"garbage" * 1000


def test_logs_go_to_stderr_and_stdout_stays_clean(rules_dir: Path, tmp_path: Path) -> None:
    result = monitor(
        "once",
        "--dry-run",
        "--rules",
        str(rules_dir),
        "--state",
        str(tmp_path / "m.db"),
        "--log-level",
        "DEBUG",
    )
    assert result.stdout == "" and "polled 1 feeds" in result.stderr


def test_json_logs(rules_dir: Path, tmp_path: Path) -> None:
    result = monitor(
        "once",
        "--dry-run",
        "--rules",
        str(rules_dir),
        "--state",
        str(tmp_path / "m.db"),
        env={"MONITOR_LOG_FORMAT": "json"},
    )
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert any("polled 1 feeds" in r["message"] for r in records)


def test_demo_runs_offline_and_prints_alerts() -> None:
    result = monitor("demo")
    assert result.returncode == 0, result.stderr
    assert "UK and Japan AI Security Institutes" in result.stdout
    assert "appoints" not in result.stdout and "export rules" not in result.stdout
    assert "demo: 3 sample feeds" in result.stdout


def test_feeds_shows_health_of_each_feed(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set("/a.xml", rss(ITEMS))
    feed_server.set("/b.xml", "denied", status=403, content_type="text/plain")
    rules_dir = write_rules_dir(
        tmp_path,
        [
            {"name": "Good", "url": feed_server.url("/a.xml")},
            {"name": "Blocked", "url": feed_server.url("/b.xml")},
        ],
    )
    state = tmp_path / "m.db"
    assert monitor("once", "--rules", str(rules_dir), "--state", str(state)).returncode == 0
    result = monitor("feeds", "--rules", str(rules_dir), "--state", str(state))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    [good] = [line for line in lines if line.startswith("Good")]
    [blocked] = [line for line in lines if line.startswith("Blocked")]
    assert "never" not in good and "HTTP 403" in blocked and "never" in blocked
    assert lines[-1] == "2 feeds, 1 failing"


def test_check_reports_delivery_mode_and_verifies_slack(slack: SlackEmulator) -> None:
    env = {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.api_url}
    missing = monitor("check", env=env)
    assert missing.returncode == 1 and "SLACK_CHANNEL is not set" in missing.stderr
    env["SLACK_CHANNEL"] = "#alerts"
    ok = monitor("check", "--slack", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "delivery: slack-bot" in ok.stdout
    assert slack.messages == []  # verifying posts nothing
    bad = monitor("check", "--slack", env={**env, "SLACK_BOT_TOKEN": "xoxb-wrong-token-000"})
    assert bad.returncode == 1 and "invalid_auth" in bad.stderr
    assert "xoxb-wrong-token-000" not in bad.stderr + bad.stdout
    hook = monitor("check", "--slack", env={"SLACK_WEBHOOK_URL": slack.webhook_url})
    assert hook.returncode == 0 and "delivery: slack-webhook" in hook.stdout
    assert slack.webhook_url not in hook.stdout + hook.stderr


def test_explain_text_shows_each_rule_and_the_terms_that_fired(rules_dir: Path) -> None:
    result = monitor(
        "explain",
        "--rules",
        str(rules_dir),
        "--text",
        "UK and Japan AI Safety Institutes sign memorandum",
    )
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("✓ partnerships: matches") and "memorandum" in first
    miss = monitor("explain", "--rules", str(rules_dir), "--text", "Weather office opens")
    assert miss.stdout.splitlines()[0].startswith("✗ partnerships")


def test_explain_link_of_a_stored_entry(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "m.db"
    assert monitor("once", "--rules", str(rules_dir), "--state", str(state)).returncode == 0
    result = monitor(
        "explain",
        "--rules",
        str(rules_dir),
        "--state",
        str(state),
        "--link",
        "https://gov.example/uk-japan?utm_source=rss",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("✓ partnerships")
    missing = monitor(
        "explain",
        "--rules",
        str(rules_dir),
        "--state",
        str(state),
        "--link",
        "https://gov.example/nothing",
    )
    assert missing.returncode == 1 and "no stored entry" in missing.stderr


def test_backtest_shows_what_an_edit_adds_and_removes(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "m.db"
    assert monitor("once", "--rules", str(rules_dir), "--state", str(state)).returncode == 0
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "feeds.yaml").write_text((rules_dir / "feeds.yaml").read_text())
    (edited / "rules.yaml").write_text("rules:\n  - name: weather\n    query: weather\n")
    result = monitor(
        "backtest",
        "--since",
        "30d",
        "--rules",
        str(edited),
        "--live",
        str(rules_dir),
        "--state",
        str(state),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("2 stored entries checked")
    added = out.split("+ added")[1].split("- removed")[0]
    removed = out.split("- removed")[1]
    assert "Weather office opens new building" in added
    assert "UK and Japan AI Safety Institutes" in removed


def test_feeds_discover_prints_ready_to_paste_entries(feed_server: FeedServer) -> None:
    feed_server.set("/news.xml", rss(ITEMS, title="Gov news"))
    page = (
        "<html><head><title>Gov</title>"
        f'<link rel="alternate" type="application/rss+xml" title="Gov news" '
        f'href="{feed_server.url("/news.xml")}"></head><body>Hello</body></html>'
    )
    feed_server.set("/", page, content_type="text/html; charset=utf-8")
    result = monitor("feeds", "discover", feed_server.url("/"))
    assert result.returncode == 0, result.stderr
    assert "- name:" in result.stdout and feed_server.url("/news.xml") in result.stdout
    nothing = monitor("feeds", "discover", "http://127.0.0.1:9/")
    assert nothing.returncode == 1 and "error" in nothing.stderr


def test_feeds_export_then_import_round_trip(tmp_path: Path) -> None:
    source = write_rules_dir(
        tmp_path / "a",
        [
            {"name": "Gov A", "url": "https://a.example/feed.xml", "tags": ["government"]},
            {"name": "News B", "url": "https://b.example/rss", "interval": "30m"},
        ],
    )
    opml = tmp_path / "feeds.opml"
    exported = monitor("feeds", "export", "--rules", str(source), "--output", str(opml))
    assert exported.returncode == 0, exported.stderr
    assert b"<opml" in opml.read_bytes()
    target = write_rules_dir(
        tmp_path / "b", [{"name": "Gov A", "url": "https://a.example/feed.xml"}]
    )
    imported = monitor("feeds", "import", str(opml), "--rules", str(target))
    assert imported.returncode == 0, imported.stderr
    assert "already in feeds.yaml: Gov A" in imported.stderr
    assert "name: News B" in imported.stdout and "Gov A" not in imported.stdout
    assert "interval: 30m" in imported.stdout


def test_closed_stdout_keeps_alerts_in_the_outbox(rules_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "m.db"
    env = monitor_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "once",
            "--backfill",
            "all",
            "--rules",
            str(rules_dir),
            "--state",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away before anything was printed
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert "Traceback" not in err
    listed = monitor("outbox", "--state", str(state))
    assert "1 undelivered" in listed.stdout
    delivered = monitor("outbox", "--retry", "--state", str(state))
    assert ITEMS[0]["title"] in delivered.stdout
