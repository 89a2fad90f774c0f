"""``/healthz``, ``/readyz`` and ``/metrics`` over HTTP, served from a thread of their own.

The server runs in a daemon thread, not on the event loop, so it keeps
answering when the loop is stuck; ``/healthz`` then turns 503 because the
loop's heartbeat goes stale, and the orchestrator restarts the container.

The service (loop thread) writes :class:`HealthState`; request threads read
it. Both sides take its lock for a few attribute reads or writes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from monitor.errors import ConfigError
from monitor.metrics import Metrics

log = logging.getLogger("monitor.health")

DEFAULT_PORT = 8080
DEFAULT_HOST = "0.0.0.0"  # all interfaces: the container's port must be reachable
IDLE_TIMEOUT = 15.0  # seconds an idle keep-alive connection may hold a thread
_DETAIL_LIMIT = 300  # characters of a check's detail served to anyone who can connect
_CLOCK_SKEW = 1.0  # seconds a heartbeat may seem to lie in the future (thread race)


@dataclass
class HealthState:
    """What the health endpoints report; thread-safe.

    ``mark_heartbeat`` and ``liveness`` must be given times from the same
    monotonic clock (the server's ``clock``). Details are served over HTTP:
    put no secret in them.
    """

    stale_after: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _heartbeat: float | None = field(default=None, init=False)
    _scheduler_running: bool = field(default=False, init=False)
    _config: tuple[bool, str] = field(default=(False, "not loaded yet"), init=False)
    _database: tuple[bool, str] = field(default=(False, "not checked yet"), init=False)

    def mark_heartbeat(self, now: float) -> None:
        """Record that the event loop ran at ``now``; call every few seconds from the loop."""
        with self._lock:
            self._heartbeat = now

    def set_scheduler_running(self, running: bool) -> None:
        """Record whether the scheduler is started (False again on shutdown)."""
        with self._lock:
            self._scheduler_running = running

    def set_config_loaded(self, ok: bool, detail: str = "") -> None:
        """Record whether a usable config is in force, with a reason when not."""
        with self._lock:
            self._config = (ok, detail[:_DETAIL_LIMIT])

    def set_database_writable(self, ok: bool, detail: str = "") -> None:
        """Record whether the state database accepted its last write."""
        with self._lock:
            self._database = (ok, detail[:_DETAIL_LIMIT])

    def liveness(self, now: float) -> tuple[bool, dict[str, object]]:
        """Alive: the scheduler is running and the loop's heartbeat is fresh at ``now``."""
        with self._lock:
            running, beat = self._scheduler_running, self._heartbeat
        if beat is None:
            heartbeat: dict[str, object] = {"ok": False, "detail": "no heartbeat yet"}
        else:
            age = now - beat
            # A beat far in the future means the two sides use different clocks:
            # fail loudly rather than report "alive" for ever.
            fresh = -_CLOCK_SKEW <= age <= self.stale_after
            heartbeat = {"ok": fresh, "age_seconds": round(age, 3)}
            if not fresh:
                heartbeat["detail"] = (
                    f"event loop silent for more than {self.stale_after:g} s"
                    if age > 0
                    else "heartbeat is in the future: use one monotonic clock for both sides"
                )
        checks: dict[str, object] = {"scheduler": {"ok": running}, "heartbeat": heartbeat}
        return running and bool(heartbeat["ok"]), checks

    def readiness(self) -> tuple[bool, dict[str, object]]:
        """Ready: the config is loaded and the database is writable."""
        with self._lock:
            config, database = self._config, self._database
        checks: dict[str, object] = {"config": _check(*config), "database": _check(*database)}
        return config[0] and database[0], checks


def _check(ok: bool, detail: str) -> dict[str, object]:
    return {"ok": ok, "detail": detail} if detail else {"ok": ok}


async def beat(
    state: HealthState, *, clock: Callable[[], float] = time.monotonic, period: float = 5.0
) -> None:
    """Mark a heartbeat every ``period`` seconds until cancelled (run as a loop task)."""
    while True:
        state.mark_heartbeat(clock())
        await asyncio.sleep(period)


class HealthServer:
    """Serves the health endpoints and the metrics from a daemon thread."""

    def __init__(
        self,
        state: HealthState,
        metrics: Metrics,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.host = host
        self._requested_port = port
        self.clock = clock
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); only after :meth:`start`."""
        if self._server is None:
            raise RuntimeError("HealthServer is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread; raise ConfigError when the port is unusable."""
        if self._server is not None:
            raise RuntimeError("HealthServer is already started")
        try:
            server = _Server(self, (self.host, self._requested_port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve health checks on {self.host}:{self._requested_port} "
                f"({exc.strerror or exc}): set MONITOR_HTTP_HOST/MONITOR_HTTP_PORT to a free "
                "address, or MONITOR_HTTP_PORT=0 to turn the health server off"
            ) from exc
        self._server = server
        # A short poll interval makes stop() prompt; the cost is a wake-up every 0.1 s.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="health-http"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("health and metrics on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and drop open connections; returns within about a second."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # ends serve_forever; the thread then exits
        server.close_connections()  # wakes request threads blocked on idle keep-alives
        server.server_close()
        thread.join(timeout=5)
        server.wait_for_connections(timeout=1)
        self._server = self._thread = None


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so stop can close them."""

    daemon_threads = True  # a stuck request thread must never keep the process alive

    def __init__(self, owner: HealthServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_changed = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that
        # can stall start-up for seconds in a container; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_changed:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_changed:
            self._open.discard(request)
            self._open_changed.notify_all()
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_changed:
            for sock in self._open:
                with contextlib.suppress(OSError):  # the client may have gone already
                    sock.shutdown(socket.SHUT_RDWR)

    def wait_for_connections(self, timeout: float) -> None:
        with self._open_changed:
            self._open_changed.wait_for(lambda: not self._open, timeout=timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up is no news.
        log.debug("health request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD of three paths; everything else is 404 or 405."""

    protocol_version = "HTTP/1.1"  # keep-alive for Prometheus scrapes
    server_version = "monitor"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def parse_request(self) -> bool:
        # http.server answers 501 for a method without a do_* handler; we answer
        # 405 to every method but GET and HEAD, including ones it never heard of.
        if not super().parse_request():
            return False
        if self.command in ("GET", "HEAD"):
            return True
        self.close_connection = True  # an unread request body would corrupt the next request
        self._send(405, {"status": "method not allowed"}, head=False, extra={"Allow": "GET, HEAD"})
        return False

    def _route(self, *, head: bool) -> None:
        owner = cast(_Server, self.server).owner
        path = urlsplit(self.path).path
        if path == "/healthz":
            alive, checks = owner.state.liveness(owner.clock())
            self._send(200 if alive else 503, _status(alive, checks), head=head)
        elif path == "/readyz":
            ready, checks = owner.state.readiness()
            self._send(200 if ready else 503, _status(ready, checks), head=head)
        elif path == "/metrics":
            try:
                body, content_type = owner.metrics.render(self.headers.get("Accept", ""))
            except Exception:  # a broken collector must not take the health server down
                log.exception("rendering metrics failed")
                self._send(500, {"status": "metrics unavailable"}, head=head)
                return
            self._write(200, body, content_type, head=head)
        else:
            self._send(404, {"status": "not found"}, head=head)

    def _send(
        self,
        code: int,
        payload: Mapping[str, object],
        *,
        head: bool,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload, sort_keys=True).encode() + b"\n"
        self._write(code, body, "application/json", head=head, extra=extra)

    def _write(
        self,
        code: int,
        body: bytes,
        content_type: str,
        *,
        head: bool,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes hit these paths every few seconds: keep them out of the logs.
        log.debug("%s " + format, self.address_string(), *args)


def _status(ok: bool, checks: dict[str, object]) -> dict[str, object]:
    return {"status": "ok" if ok else "fail", "checks": checks}


def port_from_env(env: Mapping[str, str]) -> int | None:
    """``MONITOR_HTTP_PORT`` (default 8080); ``0`` turns the health server off (None)."""
    raw = env.get("MONITOR_HTTP_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"MONITOR_HTTP_PORT={raw!r} is invalid: give a port number from 1 to 65535, "
            "or 0 to turn the health server off"
        )
    return port or None


def host_from_env(env: Mapping[str, str]) -> str:
    """``MONITOR_HTTP_HOST``: the address to listen on (default 0.0.0.0, every interface)."""
    raw = env.get("MONITOR_HTTP_HOST", "").strip()
    if any(c.isspace() for c in raw):
        raise ConfigError(
            f"MONITOR_HTTP_HOST={raw!r} is invalid: give one address such as 0.0.0.0 or ::1"
        )
    return raw or DEFAULT_HOST
