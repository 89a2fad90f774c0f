"""The health server over real HTTP on 127.0.0.1, with an injected monotonic clock."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.errors import ConfigError
from monitor.health import HealthServer, HealthState, beat, host_from_env, port_from_env
from monitor.metrics import Metrics
from monitor.pipeline import PollReport


class Clock:
    """A monotonic clock the test moves by hand (read from the server's threads)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response with a Content-Length, however it was split into segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length, "more bytes than Content-Length"
    return head + b"\r\n\r\n" + body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state() -> HealthState:
    return HealthState(stale_after=60.0)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(state: HealthState, metrics: Metrics, clock: Clock) -> Iterator[HealthServer]:
    srv = HealthServer(state, metrics, host="127.0.0.1", port=0, clock=clock)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: HealthServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as c:
        yield c


def test_healthz_fails_until_the_scheduler_runs_and_the_loop_beats(
    client: httpx.Client, state: HealthState, clock: Clock
) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "fail",
        "checks": {
            "scheduler": {"ok": False},
            "heartbeat": {"ok": False, "detail": "no heartbeat yet"},
        },
    }

    state.mark_heartbeat(clock())
    assert client.get("/healthz").status_code == 503  # beating, but no scheduler

    state.set_scheduler_running(True)
    clock.t += 59
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"scheduler": {"ok": True}, "heartbeat": {"ok": True, "age_seconds": 59.0}},
    }


def test_healthz_fails_when_the_heartbeat_is_stale_and_recovers(
    client: httpx.Client, state: HealthState, clock: Clock
) -> None:
    state.set_scheduler_running(True)
    state.mark_heartbeat(clock())
    clock.t += 61
    response = client.get("/healthz")
    assert response.status_code == 503
    heartbeat = response.json()["checks"]["heartbeat"]
    assert heartbeat["ok"] is False
    assert heartbeat["age_seconds"] == 61.0
    assert "silent for more than 60 s" in heartbeat["detail"]

    state.mark_heartbeat(clock())
    assert client.get("/healthz").status_code == 200

    state.set_scheduler_running(False)  # shutting down
    assert client.get("/healthz").status_code == 503


def test_heartbeat_from_another_clock_is_not_taken_as_fresh(
    client: httpx.Client, state: HealthState, clock: Clock
) -> None:
    state.set_scheduler_running(True)
    state.mark_heartbeat(time.time())  # wall clock, far ahead of the monotonic one
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "one monotonic clock" in response.json()["checks"]["heartbeat"]["detail"]


def test_healthz_answers_while_the_event_loop_is_blocked(
    server: HealthServer, state: HealthState, clock: Clock
) -> None:
    url = f"http://127.0.0.1:{server.port}/healthz"

    async def main() -> list[int]:
        state.set_scheduler_running(True)
        task = asyncio.create_task(beat(state, clock=clock, period=0.01))
        await asyncio.sleep(0.05)
        # From here on the loop is blocked: these calls are synchronous on its thread.
        codes = [httpx.get(url, timeout=5).status_code]
        clock.t += 120
        codes.append(httpx.get(url, timeout=5).status_code)
        await asyncio.sleep(0.05)  # unblocked: the beat catches up
        codes.append(httpx.get(url, timeout=5).status_code)
        task.cancel()
        return codes

    assert asyncio.run(main()) == [200, 503, 200]


def test_readyz_reflects_config_and_database(client: httpx.Client, state: HealthState) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {
            "config": {"ok": False, "detail": "not loaded yet"},
            "database": {"ok": False, "detail": "not checked yet"},
        },
    }

    state.set_config_loaded(True)
    state.set_database_writable(False, "state/monitor.db: disk I/O error")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "config": {"ok": True},
        "database": {"ok": False, "detail": "state/monitor.db: disk I/O error"},
    }

    state.set_database_writable(True)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"config": {"ok": True}, "database": {"ok": True}},
    }


def test_metrics_serves_the_registry(client: httpx.Client, metrics: Metrics) -> None:
    metrics.observe_poll(PollReport("nist", "ok", entries=3, elapsed=0.2), datetime.now(UTC))
    metrics.set_rules_loaded(5)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == metrics.render()[1]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert found[("monitor_polls_total", (("feed", "nist"), ("result", "ok")))] == 1
    assert found[("monitor_entries_parsed_total", (("feed", "nist"),))] == 3
    assert found[("monitor_rules_loaded", ())] == 5


def test_metrics_follows_prometheus_content_negotiation(client: httpx.Client) -> None:
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_head_gives_headers_without_a_body(client: httpx.Client, state: HealthState) -> None:
    state.set_config_loaded(True)
    state.set_database_writable(True)
    for path, code in (("/healthz", 503), ("/readyz", 200), ("/metrics", 200), ("/nope", 404)):
        full = client.get(path)
        head = client.head(path)
        assert (head.status_code, full.status_code) == (code, code)
        assert head.content == b""
        assert head.headers["content-type"] == full.headers["content-type"]
    length = client.head("/readyz").headers["content-length"]
    assert int(length) == len(client.get("/readyz").content)


def test_query_string_is_ignored_but_other_paths_are_404(client: httpx.Client) -> None:
    assert client.get("/readyz?verbose=1").status_code == 503
    for path in ("/", "/healthz/", "/health", "/metrics/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"status": "not found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_methods_other_than_get_and_head_are_405(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/healthz", content=b"x" * 100)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["connection"] == "close"
    # The connection was dropped, so the unread body cannot confuse the next request.
    assert client.get("/readyz").status_code == 503


def test_keep_alive_connection_is_reused(server: HealthServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        request = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(3):
            sock.sendall(request)
            assert read_response(sock).startswith(b"HTTP/1.1 503")


def test_stop_is_prompt_and_drops_idle_keep_alive_connections(
    state: HealthState, metrics: Metrics
) -> None:
    srv = HealthServer(state, metrics, host="127.0.0.1", port=0)
    srv.start()
    port = srv.port
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
        socket.create_connection(("127.0.0.1", port), timeout=5) as idle,
    ):
        assert client.get("/readyz").status_code == 503  # pooled keep-alive connection
        idle.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle).startswith(b"HTTP/1.1 503")  # now idle on keep-alive

        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2

        assert idle.recv(4096) == b""  # the server closed the held connection
        assert not [t for t in threading.enumerate() if t.name == "health-http"]
        with pytest.raises(httpx.TransportError):
            client.get("/readyz")
    srv.stop()  # a second stop is harmless


def test_nothing_is_written_to_stderr(
    client: httpx.Client, server: HealthServer, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get("/healthz")
    client.get("/nope")
    client.post("/healthz")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert b"400 - Bad request syntax" in sock.recv(4096)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        # Hang up with a reset in the middle of a request.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    assert client.get("/readyz").status_code == 503
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_port_in_use_is_a_config_error(server: HealthServer, state: HealthState) -> None:
    other = HealthServer(state, Metrics(), host="127.0.0.1", port=server.port)
    with pytest.raises(ConfigError, match="MONITOR_HTTP_PORT=0 to turn the health server off"):
        other.start()
    other.stop()


def test_start_twice_and_port_before_start_are_errors(state: HealthState) -> None:
    srv = HealthServer(state, Metrics(), host="127.0.0.1", port=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.port
    srv.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            srv.start()
    finally:
        srv.stop()


def test_port_from_env() -> None:
    assert port_from_env({}) == 8080
    assert port_from_env({"MONITOR_HTTP_PORT": ""}) == 8080
    assert port_from_env({"MONITOR_HTTP_PORT": " 9100 "}) == 9100
    assert port_from_env({"MONITOR_HTTP_PORT": "0"}) is None
    for bad in ("http", "-1", "65536", "80.5"):
        with pytest.raises(ConfigError, match=f"MONITOR_HTTP_PORT='{bad}' is invalid"):
            port_from_env({"MONITOR_HTTP_PORT": bad})


def test_host_from_env() -> None:
    assert host_from_env({}) == "0.0.0.0"
    assert host_from_env({"MONITOR_HTTP_HOST": ""}) == "0.0.0.0"
    assert host_from_env({"MONITOR_HTTP_HOST": "127.0.0.1"}) == "127.0.0.1"
    with pytest.raises(ConfigError, match="MONITOR_HTTP_HOST"):
        host_from_env({"MONITOR_HTTP_HOST": "127.0.0.1 ::1"})
