"""Helpers shared by the tests: rules directories on disk, `monitor` subprocesses, polls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from monitor.fetch import FetchLimits, make_client
from monitor.models import Feed
from monitor.pipeline import PollReport, PollSettings, poll_feed
from monitor.rules import RuleSet
from monitor.store import Store
from tests.slack_emulator import SlackEmulator

REPO = Path(__file__).resolve().parent.parent

SIMPLE_RULES = """
lists:
  bodies: [AI Safety Institute, AI Security Institute, AISI]
rules:
  - name: partnerships
    description: Institutes or labs agreeing to work together on AI safety.
    query: '(@bodies OR "AI safety") AND (partner* OR memorandum OR agreement OR collaborat*)'
"""


def write_rules_dir(
    root: Path,
    feeds: Sequence[Mapping[str, Any]],
    rules: str = SIMPLE_RULES,
    *,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``feeds.yaml`` and one rule file under ``root/rules``; return the directory."""
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "feeds.yaml").write_text(yaml.safe_dump({"feeds": list(feeds)}), "utf-8")
    (rules_dir / "rules.yaml").write_text(textwrap.dedent(rules), "utf-8")
    for name, text in (extra_files or {}).items():
        (rules_dir / name).write_text(textwrap.dedent(text), "utf-8")
    return rules_dir


def monitor_env(**extra: str) -> dict[str, str]:
    """This process's environment without Slack or monitor settings, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONITOR_"))}
    return {**base, "PYTHONPATH": str(REPO), **extra}


def bot_env(slack: SlackEmulator, **extra: str) -> dict[str, str]:
    """A ``monitor`` environment posting to the emulator with a bot token to #alerts."""
    return monitor_env(
        SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.api_url, SLACK_CHANNEL="#alerts", **extra
    )


def run_monitor(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitor ARGS`` to completion (default env: :func:`monitor_env`)."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else monitor_env(),
        cwd=cwd or REPO,
        timeout=timeout,
        check=False,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` every 0.1 s; fail the test if it is not true within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def poll_once(feed: Feed, store: Store, rules: RuleSet, now: datetime) -> PollReport:
    """One real poll of ``feed`` (short limits) at the fixed time ``now``."""
    limits = FetchLimits(deadline=5.0, connect_timeout=2.0, read_timeout=2.0)

    async def go() -> PollReport:
        async with make_client(limits) as client:
            return await poll_feed(
                feed,
                client=client,
                store=store,
                rules=rules,
                settings=PollSettings(limits=limits),
                now=lambda: now,
            )

    return asyncio.run(go())


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (reads /proc)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def child_pids(parent: int) -> set[int]:
    """The running (not zombie) child processes of ``parent`` (reads /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _proc_stat(entry.name)
        if fields is not None and fields[0] != "Z" and int(fields[1]) == parent:
            found.add(int(entry.name))
    return found
