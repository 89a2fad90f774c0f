"""``monitor run`` as a real process: schedules, alerts, and stops cleanly on signals."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.feedserver import FeedServer, RequestInfo, Responder, rss
from tests.support import (
    child_pids,
    monitor_env,
    pid_running,
    run_monitor,
    wait_for,
    write_rules_dir,
)


def start(rules_dir: Path, state: Path, **env: str) -> subprocess.Popen[str]:
    base = monitor_env(**{"MONITOR_HTTP_PORT": "0", **env})  # a test may set its own port
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--rules", str(rules_dir), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
    )


def feed_rows(state: Path) -> list[tuple[str, str | None]]:
    if not state.exists():
        return []
    try:
        with sqlite3.connect(state) as conn:
            return conn.execute("SELECT name, first_polled_at FROM feeds").fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_polls_then_stops_cleanly_on_signal(
    feed_server: FeedServer, tmp_path: Path, sig: signal.Signals
) -> None:
    feed_server.set("/a.xml", rss([{"title": "Old news", "guid": "1"}]))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": feed_server.url("/a.xml"), "interval": "10m"}]
    )
    state = tmp_path / "m.db"
    proc = start(rules_dir, state)
    try:
        wait_for(lambda: len(feed_rows(state)) == 1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in err and out == ""
    # The database was closed cleanly: it opens and the WAL holds nothing unexpected.
    with sqlite3.connect(state) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_run_alerts_on_new_entry_and_keeps_polling_past_a_hung_feed(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    feed_server.set(
        "/a.xml", rss([{"title": "Old news", "guid": "1", "pubDate": now - timedelta(days=1)}])
    )

    def hang(request: RequestInfo, responder: Responder) -> None:
        responder.wait(60)

    feed_server.route("/hung.xml", hang)
    rules_dir = write_rules_dir(
        tmp_path,
        [
            {"name": "A", "url": feed_server.url("/a.xml"), "interval": "10s"},
            {"name": "Hung", "url": feed_server.url("/hung.xml"), "interval": "10s"},
        ],
    )
    state = tmp_path / "m.db"
    proc = start(rules_dir, state, MONITOR_FETCH_DEADLINE="3")
    try:
        wait_for(lambda: feed_server.hits("/a.xml") >= 1)
        feed_server.set(
            "/a.xml",
            rss(
                [
                    {
                        "title": "UK and Korea AI Safety Institutes sign partnership",
                        "guid": "2",
                        "link": "https://gov.example/uk-korea",
                        "pubDate": now,
                    },
                    {"title": "Old news", "guid": "1", "pubDate": now - timedelta(days=1)},
                ]
            ),
        )
        wait_for(lambda: feed_server.hits("/a.xml") >= 2, timeout=40)
        wait_for(lambda: feed_server.hits("/hung.xml") >= 2, timeout=40)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=40)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.count("UK and Korea AI Safety Institutes sign partnership") == 1
    assert "Hung" in err  # the hung feed's failure was reported
    with sqlite3.connect(state) as conn:
        [(status,)] = conn.execute("SELECT status FROM alerts").fetchall()
    assert status == "delivered"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_health_and_metrics_endpoints_on_a_running_service(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss([{"title": "Old news", "guid": "1"}]))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": feed_server.url("/a.xml"), "interval": "10m"}]
    )
    port = free_port()
    env = {"MONITOR_HTTP_PORT": str(port), "MONITOR_HTTP_HOST": "127.0.0.1"}
    proc = start(rules_dir, tmp_path / "m.db", **env)
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> httpx.Response | None:
        try:
            return httpx.get(base + path, timeout=2)
        except httpx.HTTPError:
            return None

    try:
        wait_for(lambda: (r := get("/healthz")) is not None and r.status_code == 200)
        ready = get("/readyz")
        assert ready is not None and ready.status_code == 200
        wait_for(lambda: 'result="ok"' in (((r := get("/metrics")) and r.text) or ""))
        metrics = get("/metrics")
        assert metrics is not None
        for name in (
            'monitor_polls_total{feed="A",result="ok"}',
            "monitor_fetch_duration_seconds_bucket",
            'monitor_entries_parsed_total{feed="A"}',
            "monitor_alerts_pending",
            "monitor_feeds_failing",
            'monitor_feed_last_success_timestamp_seconds{feed="A"}',
            "monitor_rules_loaded 1.0",
        ):
            assert name in metrics.text, name
        probe = run_monitor("healthcheck", env=monitor_env(MONITOR_HTTP_PORT=str(port)))
        assert probe.returncode == 0, probe.stderr
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    down = run_monitor(
        "healthcheck", "--timeout", "1", env=monitor_env(MONITOR_HTTP_PORT=str(port))
    )
    assert down.returncode == 1 and "unhealthy" in down.stderr


def test_sigterm_during_a_poll_exits_within_the_grace_period(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    polled = threading.Event()

    def hang(request: RequestInfo, responder: Responder) -> None:
        polled.set()
        responder.wait(120)

    feed_server.route("/hung.xml", hang)
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "Hung", "url": feed_server.url("/hung.xml"), "interval": "10m"}]
    )
    state = tmp_path / "m.db"
    proc = start(rules_dir, state, MONITOR_SHUTDOWN_GRACE="2")
    try:
        assert polled.wait(30), "the poll never started"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "abandoned 1 task(s)" in err
    assert took < 10  # grace 2 s, plus interpreter shutdown; not a tight timing bound
    with sqlite3.connect(state) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_second_instance_on_the_same_state_refuses_to_start(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss([{"title": "Old news", "guid": "1"}]))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": feed_server.url("/a.xml"), "interval": "10m"}]
    )
    state = tmp_path / "m.db"
    first = start(rules_dir, state)
    try:
        wait_for(lambda: len(feed_rows(state)) == 1)
        env = monitor_env()
        for args in (["run"], ["once"], ["outbox", "--retry"]):
            where = ["--state", str(state)]
            if args[0] != "outbox":
                where += ["--rules", str(rules_dir)]
            second = run_monitor(*args, *where, env=env)
            assert second.returncode == 1, (args, second.stderr)
            assert f"another monitor (pid {first.pid})" in second.stderr
        # Read-only commands still work while the service runs.
        listing = run_monitor("outbox", "--state", str(state), env=env)
        assert listing.returncode == 0, listing.stderr
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    finally:
        first.kill()
    # Once the first has stopped, the lock is free again.
    again = run_monitor("once", "--rules", str(rules_dir), "--state", str(state), env=env)
    assert again.returncode == 0, again.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_run_with_parse_processes_alerts_and_leaves_no_worker_behind(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    old = {"title": "Old news", "guid": "1", "pubDate": now - timedelta(days=1)}
    feed_server.set("/a.xml", rss([old]))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": feed_server.url("/a.xml"), "interval": "10s"}]
    )
    state = tmp_path / "m.db"
    proc = start(rules_dir, state, MONITOR_PARSE_PROCESSES="2")
    try:
        wait_for(lambda: feed_server.hits("/a.xml") >= 1)
        workers = child_pids(proc.pid)
        assert len(workers) >= 2  # forked at start, before any other thread
        new = {
            "title": "UK and Korea AI Safety Institutes sign partnership",
            "guid": "2",
            "link": "https://gov.example/uk-korea",
            "pubDate": now,
        }
        feed_server.set("/a.xml", rss([new, old]))
        wait_for(lambda: feed_server.hits("/a.xml") >= 2, timeout=40)
        wait_for(lambda: _alerts_sent(state) == 1, timeout=20)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "UK and Korea AI Safety Institutes sign partnership" in out
    assert not [pid for pid in workers if pid_running(pid)]


def _alerts_sent(state: Path) -> int:
    try:
        with sqlite3.connect(state) as conn:
            return int(
                conn.execute("SELECT count(*) FROM alerts WHERE status = 'delivered'").fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_parse_workers_of_a_killed_monitor_exit_and_free_the_state(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/a.xml", rss([{"title": "Old news", "guid": "1"}]))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "A", "url": feed_server.url("/a.xml"), "interval": "10m"}]
    )
    state = tmp_path / "m.db"
    proc = start(rules_dir, state, MONITOR_PARSE_PROCESSES="2")
    try:
        wait_for(lambda: len(feed_rows(state)) == 1)
        workers = child_pids(proc.pid)
        assert len(workers) >= 2
        proc.kill()  # SIGKILL: no cleanup of any kind
        # The workers inherited its stdout and stderr: these end when the workers do too.
        proc.communicate(timeout=15)
    finally:
        proc.kill()
    # The orphaned workers notice their parent is gone and leave...
    wait_for(lambda: not [pid for pid in workers if pid_running(pid)], timeout=10)
    # ...and never held the state lock: the next monitor starts at once.
    result = run_monitor(
        "once", "--rules", str(rules_dir), "--state", str(state), env=monitor_env()
    )
    assert result.returncode == 0, result.stderr
