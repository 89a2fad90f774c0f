"""`monitor once` with a bot token against the Slack emulator: each alert once, whatever happens.

These run the real command in a subprocess (so a crash is a real SIGKILL) against
the loopback feed server and Slack emulator.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.feedserver import FeedServer, rss
from tests.slack_emulator import SlackEmulator
from tests.support import REPO, bot_env, run_monitor, write_rules_dir

NOW = datetime.now(UTC)

STORIES = [
    ("UK and Canada AI Safety Institutes sign partnership on model testing", "uk-canada"),
    ("Japan AI Safety Institute and UK AI Security Institute agree memorandum", "uk-japan"),
    ("AI Safety Institute and Korea announce research collaboration", "korea"),
    ("Singapore and UK AI safety institutes sign agreement", "singapore"),
]
HOSTILE = (
    "<!channel> AI Safety Institute partnership <http://evil.example|click> &amp;lt;!here&amp;gt;"
)


def items() -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {
            "title": title,
            "guid": slug,
            "link": f"https://gov.example/{slug}",
            "description": "The institutes will collaborate on AI safety evaluations.",
            "pubDate": NOW - timedelta(hours=n + 1),
        }
        for n, (title, slug) in enumerate(STORIES)
    ]
    out.append(
        {
            "title": HOSTILE,
            "guid": "hostile",
            "link": "javascript:alert(1)",
            "description": "<@U123> and <#C999> want a partnership with the AI Safety Institute",
            "pubDate": NOW - timedelta(hours=9),
        }
    )
    out.append({"title": "Weather service opens office", "guid": "w", "pubDate": NOW})
    return out


@pytest.fixture
def rules_dir(tmp_path: Path, feed_server: FeedServer) -> Path:
    feed_server.set("/gov.xml", rss(items()))
    # Same story, same canonical link, another outlet: folded, not posted twice.
    feed_server.set(
        "/news.xml",
        rss(
            [
                {
                    "title": "Britain and Canada partner on AI safety testing",
                    "guid": "n1",
                    "link": "https://gov.example/uk-canada?utm_source=newsletter",
                    "pubDate": NOW - timedelta(hours=1),
                }
            ]
        ),
    )
    return write_rules_dir(
        tmp_path,
        [
            {"name": "Gov", "url": feed_server.url("/gov.xml")},
            {"name": "News", "url": feed_server.url("/news.xml")},
        ],
    )


@pytest.fixture
def slow_slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(hang_seconds=60.0)
    emulator.up()
    yield emulator
    emulator.down()


def env_for(slack: SlackEmulator) -> dict[str, str]:
    # MONITOR_CONCURRENCY=1: fixed feed order, so the Gov copy of a story wins.
    return bot_env(slack, MONITOR_CONCURRENCY="1")


def monitor(
    slack: SlackEmulator, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return run_monitor(*args, env=env_for(slack), timeout=timeout)


def expected_titles(rules_dir: Path, state: Path, slack: SlackEmulator) -> list[str]:
    dry = monitor(
        slack,
        "once",
        "--dry-run",
        "--backfill",
        "all",
        "--rules",
        str(rules_dir),
        "--state",
        str(state),
    )
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    return sorted(x["title"] for x in lines if "duplicate_of" not in x and not x.get("followup"))


def unescape(text: str) -> str:
    """Undo Slack escaping exactly once (the inverse of escape_mrkdwn)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def posted_alert_ids(slack: SlackEmulator) -> list[int]:
    ids = []
    for message in slack.messages_in("C0ALERTS"):
        assert message.metadata is not None
        ids.append(int(message.metadata["event_payload"]["alert_id"]))
    return ids


def assert_each_posted_once(slack: SlackEmulator, expected: int) -> None:
    ids = posted_alert_ids(slack)
    assert len(ids) == expected, ids
    assert len(set(ids)) == len(ids), f"duplicate posts: {ids}"


def test_every_dry_run_alert_arrives_once_as_block_kit(
    rules_dir: Path, tmp_path: Path, slack: SlackEmulator
) -> None:
    state = tmp_path / "m.db"
    titles = expected_titles(rules_dir, state, slack)
    assert len(titles) == len(STORIES) + 1  # the hostile item matches too
    first = monitor(
        slack, "once", "--backfill", "all", "--rules", str(rules_dir), "--state", str(state)
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""  # Slack mode prints nothing on stdout
    assert_each_posted_once(slack, len(titles))
    for message in slack.messages:
        assert message.blocks and message.blocks[0]["type"] == "header"
        assert message.unfurl_links is False and message.unfurl_media is False
        body = json.dumps(message.blocks) + message.text
        for raw in ("<!channel>", "<!here>", "<@U123>", "<#C999>", "<http://evil", "javascript:"):
            assert raw not in body, raw
    headers = sorted(unescape(m.blocks[0]["text"]["text"]) for m in slack.messages if m.blocks)
    assert headers == titles
    second = monitor(slack, "once", "--rules", str(rules_dir), "--state", str(state))
    assert second.returncode == 0, second.stderr
    assert_each_posted_once(slack, len(titles))
    assert "token" not in second.stderr.lower() or slack.token not in second.stderr


def test_rate_limits_and_5xx_end_with_each_alert_once(
    rules_dir: Path, tmp_path: Path, slack: SlackEmulator
) -> None:
    state = tmp_path / "m.db"
    expected = len(expected_titles(rules_dir, state, slack))
    slack.rate_limit(2, retry_after="1")
    slack.server_error(2, status=503)
    first = monitor(
        slack, "once", "--backfill", "all", "--rules", str(rules_dir), "--state", str(state)
    )
    assert first.returncode == 0, first.stderr
    for _ in range(3):  # whatever is left is retried; nothing is posted twice
        if len(slack.messages) == expected:
            break
        monitor(slack, "outbox", "--retry", "--state", str(state))
    assert_each_posted_once(slack, expected)
    outbox = monitor(slack, "outbox", "--state", str(state))
    assert "outbox is empty" in outbox.stdout


def test_slack_down_loses_nothing(rules_dir: Path, tmp_path: Path, slack: SlackEmulator) -> None:
    state = tmp_path / "m.db"
    expected = len(expected_titles(rules_dir, state, slack))
    slack.down()
    first = monitor(
        slack, "once", "--backfill", "all", "--rules", str(rules_dir), "--state", str(state)
    )
    assert first.returncode == 0, first.stderr
    listed = monitor(slack, "outbox", "--state", str(state))
    assert f"{expected} undelivered" in listed.stdout
    slack.up()
    retried = monitor(slack, "outbox", "--retry", "--state", str(state))
    assert retried.returncode == 0, retried.stderr
    assert_each_posted_once(slack, expected)


def test_kill_between_post_and_record_does_not_double_post(
    rules_dir: Path, tmp_path: Path, slow_slack: SlackEmulator
) -> None:
    state = tmp_path / "m.db"
    expected = len(expected_titles(rules_dir, state, slow_slack))
    slow_slack.hang(1)  # Slack records the first message, then never answers in time
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
        env=env_for(slow_slack),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not slow_slack.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow_slack.messages, "the monitor never reached Slack"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert len(slow_slack.messages) == 1
    again = monitor(slow_slack, "once", "--rules", str(rules_dir), "--state", str(state))
    assert again.returncode == 0, again.stderr
    assert_each_posted_once(slow_slack, expected)


def test_one_story_from_five_sources_is_one_message_with_four_replies(
    tmp_path: Path, feed_server: FeedServer, slack: SlackEmulator
) -> None:
    from tests.test_threads import US_UK

    feeds = []
    for n, (outlet, title, summary) in enumerate(US_UK):
        path = f"/outlet{n}.xml"
        feed_server.set(
            path,
            rss(
                [
                    {
                        "title": title,
                        "guid": f"{outlet}-1",
                        "link": f"https://{outlet.lower().replace('.', '')}.example/us-uk",
                        "description": summary,
                        "pubDate": NOW - timedelta(hours=5 - n),
                    }
                ]
            ),
        )
        feeds.append({"name": outlet, "url": feed_server.url(path)})
    rules_dir = write_rules_dir(tmp_path, feeds)
    (rules_dir / "parties.yaml").write_text(
        (REPO / "rules" / "parties.yaml").read_text("utf-8"), "utf-8"
    )
    state = tmp_path / "m.db"
    dry = monitor(
        slack,
        "once",
        "--dry-run",
        "--backfill",
        "all",
        "--rules",
        str(rules_dir),
        "--state",
        str(state),
    )
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert len(lines) == 5 and len({x["story"] for x in lines}) == 1
    assert [bool(x.get("followup")) for x in lines] == [False, True, True, True, True]
    assert lines[0]["parties"] == ["United Kingdom", "United States"]
    assert all(x["story_reason"] for x in lines[1:])
    result = monitor(
        slack, "once", "--backfill", "all", "--rules", str(rules_dir), "--state", str(state)
    )
    assert result.returncode == 0, result.stderr
    [root] = slack.top_level("C0ALERTS")
    assert len(slack.replies(root.ts)) == 4
    assert "Also reported by" in slack.replies(root.ts)[0].text
    assert "Parties:" in json.dumps(root.blocks)
    assert "Reported by 5 sources" in json.dumps(root.blocks) + json.dumps(
        [u.blocks for u in slack.updates]
    )
    again = monitor(slack, "once", "--rules", str(rules_dir), "--state", str(state))
    assert again.returncode == 0 and len(slack.messages) == 5


def test_two_events_by_the_same_institute_are_two_stories(
    tmp_path: Path, feed_server: FeedServer, slack: SlackEmulator
) -> None:
    feed_server.set(
        "/gov.xml",
        rss(
            [
                {
                    "title": "UK AI Security Institute signs memorandum with Canada on AI safety",
                    "guid": "1",
                    "link": "https://gov.example/uk-canada",
                    "description": "The UK and Canada will collaborate on AI safety research.",
                    "pubDate": NOW - timedelta(days=2),
                },
                {
                    "title": "UK AI Security Institute signs memorandum with Japan on AI safety",
                    "guid": "2",
                    "link": "https://gov.example/uk-japan",
                    "description": "The UK and Japan will collaborate on AI safety research.",
                    "pubDate": NOW - timedelta(days=1),
                },
            ]
        ),
    )
    rules_dir = write_rules_dir(tmp_path, [{"name": "Gov", "url": feed_server.url("/gov.xml")}])
    (rules_dir / "parties.yaml").write_text(
        (REPO / "rules" / "parties.yaml").read_text("utf-8"), "utf-8"
    )
    dry = monitor(
        slack,
        "once",
        "--dry-run",
        "--backfill",
        "all",
        "--rules",
        str(rules_dir),
        "--state",
        str(tmp_path / "m.db"),
    )
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["story"] != lines[1]["story"]
    assert not any(x.get("followup") for x in lines)
