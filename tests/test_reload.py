"""Hot reload in `monitor run`: good edits take effect, bad edits leave the last good config."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from monitor.models import Feed
from monitor.reload import diff_feeds, fingerprint, try_reload
from tests.feedserver import FeedServer, rss
from tests.support import monitor_env, wait_for, write_rules_dir


class Output:
    """Collects a process's stream lines in a thread, so the test can wait on them."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def join(self) -> None:
        self._thread.join(timeout=10)

    def text(self) -> str:
        return "".join(self.lines)


def write_feeds(rules_dir: Path, feeds: list[dict[str, object]]) -> None:
    (rules_dir / "feeds.yaml").write_text(yaml.safe_dump({"feeds": feeds}))


def test_fingerprint_and_diff(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(tmp_path, [{"name": "A", "url": "https://a/"}])
    before = fingerprint(rules_dir)
    (rules_dir / "more.yaml").write_text("rules: []\n")
    assert fingerprint(rules_dir) != before
    a, b = Feed("A", "https://a/"), Feed("B", "https://b/")
    changes = diff_feeds([a, b], [Feed("A", "https://a2/"), Feed("C", "https://c/")])
    assert [f.name for f in changes.added] == ["C"]
    assert [f.name for f in changes.removed] == ["B"]
    assert [f.url for f in changes.changed] == ["https://a2/"]


def test_try_reload_reports_problems(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(tmp_path, [{"name": "A", "url": "https://a/"}])
    config, problems = try_reload(rules_dir)
    assert config is not None and problems == []
    (rules_dir / "rules.yaml").write_text("rules:\n  - name: r\n    query: '(broken'\n")
    config, problems = try_reload(rules_dir)
    assert config is None and "rule 'r'" in problems[0]


def test_run_reloads_good_edits_and_keeps_last_good_config(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss([{"title": "Weather office opens", "guid": "1"}]))
    feed_server.set("/b.xml", rss([{"title": "Old", "guid": "1"}]))
    a = {"name": "A", "url": feed_server.url("/a.xml"), "interval": "10m"}
    rules_dir = write_rules_dir(tmp_path, [a])
    env = monitor_env(MONITOR_HTTP_PORT="0", MONITOR_RELOAD_INTERVAL="0.3")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--rules",
            str(rules_dir),
            "--state",
            str(tmp_path / "m.db"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = Output(proc.stdout), Output(proc.stderr)
    try:
        wait_for(lambda: feed_server.hits("/a.xml") == 1)
        # A broken edit: refused, the service keeps running on the last good config.
        (rules_dir / "rules.yaml").write_text("rules:\n  - name: r\n    query: 'weather AND'\n")
        wait_for(lambda: "config reload refused" in err.text())
        assert proc.poll() is None
        # A good edit: a new feed gets its first poll, a new rule applies to new entries.
        (rules_dir / "rules.yaml").write_text("rules:\n  - name: weather\n    query: weather\n")
        feed_server.set(
            "/a.xml",
            rss(
                [
                    {"title": "Weather office opens", "guid": "1"},
                    {"title": "Weather warning issued", "guid": "2"},
                ]
            ),
        )
        write_feeds(
            rules_dir, [{**a, "interval": "11m"}, {"name": "B", "url": feed_server.url("/b.xml")}]
        )
        wait_for(lambda: "config reloaded: 2 feeds (1 added, 0 removed, 1 changed)" in err.text())
        wait_for(lambda: feed_server.hits("/b.xml") == 1)
        wait_for(lambda: "Weather warning issued" in out.text())
        # Removing a feed stops its polling.
        write_feeds(rules_dir, [{"name": "B", "url": feed_server.url("/b.xml")}])
        wait_for(lambda: "1 removed" in err.text())
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        out.join()
        err.join()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == 0
    assert "Weather office opens" not in out.text()  # seen before the reload: never alerted
