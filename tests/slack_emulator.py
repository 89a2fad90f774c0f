"""A Slack Web API emulator on 127.0.0.1 for tests (real HTTP, real slack-sdk on the other end).

Typical use::

    def test_post(slack: SlackEmulator) -> None:
        client = WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[])
        client.chat_postMessage(channel="#alerts", text="hi")
        assert slack.messages[0].channel == "C0ALERTS"

Endpoints under ``/api/``: ``chat.postMessage`` (``thread_ts`` makes a reply),
``chat.update`` (edits the message in place, channel ID and ``ts`` required,
``message_not_found`` otherwise; every edit is kept in ``updates``),
``auth.test``, ``conversations.history`` (top-level messages only, newest
first; ``metadata`` only with ``include_all_metadata``;
``oldest``/``limit``/``cursor``; channel must be an ID, as on Slack),
``conversations.replies`` (the parent then its replies, oldest first, same
parameters plus ``ts``), ``conversations.list``. Incoming webhooks at
``/webhook/<path>`` answer ``200 ok`` as text.

Fault knobs act on the next N calls of any Slack endpoint (API or webhook), in
the order queued (``allow(n)`` lets n calls through first):
``rate_limit(n, retry_after=...)``, ``server_error(n)``, ``drop_after_read(n)``
(record the message, then close the socket without answering), ``hang(n)``
(record, then answer too late), ``fail(error, n)`` for an ``ok: false`` error
such as ``invalid_auth`` or ``channel_not_found``. ``down()`` stops listening
on the port; ``up()`` listens again on the same port.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["Fault", "PostedMessage", "SlackEmulator", "slack"]

DEFAULT_CHANNELS = {"#alerts": "C0ALERTS", "#policy": "C0POLICY", "#private": "G0PRIVATE"}


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """One message the emulator accepted (also those whose answer was dropped)."""

    channel: str  # channel ID
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    unfurl_links: Any
    unfurl_media: Any
    via: str  # "api" or "webhook"
    thread_ts: str | None = None  # set on a thread reply: the parent's ts
    edits: int = 0  # how many times chat.update changed it


@dataclass(slots=True)
class Fault:
    """One queued misbehaviour for the next call."""

    kind: str  # "rate_limit" | "server" | "drop" | "hang" | "error" | "none"
    retry_after: str = "1"
    status: int = 500
    error: str = ""


@dataclass(slots=True)
class _State:
    token: str
    channels: dict[str, str]
    webhooks: dict[str, str]
    clock: Callable[[], float]
    hang_seconds: float
    messages: list[PostedMessage] = field(default_factory=list)
    updates: list[PostedMessage] = field(default_factory=list)  # every chat.update, in order
    calls: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)  # exceptions inside the emulator
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    seq: int = 0


class SlackEmulator:
    """Threaded Slack Web API + incoming webhook emulator. See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token-0123456789",
        channels: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        hang_seconds: float = 3.0,
    ) -> None:
        chans = dict(DEFAULT_CHANNELS if channels is None else channels)
        self._state = _State(
            token=token,
            channels=chans,
            webhooks={"T000/B000/XXXXSECRETXXXX": chans.get("#alerts", "C0ALERTS")},
            clock=clock,
            hang_seconds=hang_seconds,
        )
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------
    def up(self) -> None:
        """Start listening (again, on the same port after :meth:`down`)."""
        handler = type("Handler", (_Handler,), {"state": self._state})
        server = _Server(("127.0.0.1", self.port), handler)
        self.port = server.server_address[1]
        self._state.stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop accepting connections: the port refuses until :meth:`up`."""
        if self._server is None:
            return
        self._state.stopping.set()  # wakes hanging handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    # -- configuration -----------------------------------------------------
    @property
    def token(self) -> str:
        """The only bearer token the emulator accepts."""
        return self._state.token

    @token.setter
    def token(self, value: str) -> None:
        self._state.token = value

    @property
    def api_url(self) -> str:
        """Pass as ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        """A valid incoming-webhook URL (posts to #alerts)."""
        return f"http://127.0.0.1:{self.port}/webhook/{next(iter(self._state.webhooks))}"

    @property
    def channels(self) -> dict[str, str]:
        """Channel name -> ID; edit to add or remove channels."""
        return self._state.channels

    @property
    def messages(self) -> list[PostedMessage]:
        """Every accepted message, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.messages)

    @property
    def calls(self) -> list[str]:
        """Every method called (``chat.postMessage``, ``webhook``, …), in order."""
        with self._state.lock:
            return list(self._state.calls)

    @property
    def bugs(self) -> list[str]:
        """Exceptions raised inside the emulator (the fixture fails the test if any)."""
        return list(self._state.bugs)

    @property
    def updates(self) -> list[PostedMessage]:
        """The message as it was after each accepted ``chat.update``, oldest first."""
        with self._state.lock:
            return list(self._state.updates)

    def messages_in(self, channel_id: str) -> list[PostedMessage]:
        """Accepted messages in one channel, oldest first (thread replies included)."""
        return [m for m in self.messages if m.channel == channel_id]

    def top_level(self, channel_id: str) -> list[PostedMessage]:
        """Messages in the channel itself (not thread replies), oldest first."""
        return [m for m in self.messages_in(channel_id) if m.thread_ts is None]

    def replies(self, ts: str) -> list[PostedMessage]:
        """Replies in the thread of the message ``ts``, oldest first."""
        return [m for m in self.messages if m.thread_ts == ts]

    # -- faults ------------------------------------------------------------
    def _queue(self, fault: Fault, n: int) -> None:
        with self._state.lock:
            self._state.faults.extend(Fault(**_fields(fault)) for _ in range(n))

    def allow(self, n: int = 1) -> None:
        """Let the next ``n`` calls through untouched (to aim a later fault at a later call)."""
        self._queue(Fault("none"), n)

    def rate_limit(self, n: int = 1, *, retry_after: str = "1") -> None:
        """Answer the next ``n`` calls 429 with this ``Retry-After`` (seconds or HTTP-date)."""
        self._queue(Fault("rate_limit", retry_after=retry_after), n)

    def server_error(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next ``n`` calls with a 5xx and an HTML body, like a load balancer."""
        self._queue(Fault("server", status=status), n)

    def drop_after_read(self, n: int = 1) -> None:
        """Record the next ``n`` messages as posted, then close the socket without answering."""
        self._queue(Fault("drop"), n)

    def hang(self, n: int = 1) -> None:
        """Record the next ``n`` messages, then answer only after ``hang_seconds``."""
        self._queue(Fault("hang"), n)

    def fail(self, error: str, n: int = 1) -> None:
        """Answer the next ``n`` calls ``{"ok": false, "error": error}`` (HTTP 200, as Slack)."""
        self._queue(Fault("error", error=error), n)


def _fields(fault: Fault) -> dict[str, Any]:
    return {
        "kind": fault.kind,
        "retry_after": fault.retry_after,
        "status": fault.status,
        "error": fault.error,
    }


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and leave are part of the tests: stay quiet."""


class _Handler(http.server.BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        try:
            self._dispatch()
        except Exception as exc:  # an emulator bug must not look like a dropped connection
            self.state.bugs.append(repr(exc))
            self._answer(500, b"emulator bug", "text/plain")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        params = _params(url.query, raw, self.headers.get("Content-Type", ""))
        if params is None:  # e.g. slack-sdk sends `null` for an empty webhook payload
            if url.path.startswith("/webhook/"):
                known = url.path[len("/webhook/") :] in self.state.webhooks
                status, text = (400, b"invalid_payload") if known else (404, b"no_service")
                self._answer(status, text, "text/plain")
            else:
                self._json(200, {"ok": False, "error": "invalid_json"})
            return
        if url.path.startswith("/webhook/"):
            method = "webhook"
        elif url.path.startswith("/api/"):
            method = url.path[len("/api/") :]
        else:
            self._answer(404, b"not found", "text/plain")
            return
        st = self.state
        with st.lock:
            st.calls.append(method)
            fault = st.faults.pop(0) if st.faults else None
        if fault is not None and fault.kind == "none":
            fault = None
        if fault is not None and fault.kind == "rate_limit":
            self._json(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": fault.retry_after}
            )
            return
        if fault is not None and fault.kind == "server":
            self._answer(fault.status, b"<html>upstream connect error</html>", "text/html")
            return
        if method == "webhook":
            self._webhook(url.path[len("/webhook/") :], params, fault)
            return
        token = params.get("token") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        if fault is not None and fault.kind == "error":
            self._json(200, {"ok": False, "error": fault.error})
        elif not token:
            self._json(200, {"ok": False, "error": "not_authed"})
        elif token != st.token:
            self._json(200, {"ok": False, "error": "invalid_auth"})
        elif method == "auth.test":
            self._json(
                200,
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": "Example",
                    "user": "monitor-bot",
                    "team_id": "T000",
                    "user_id": "U0BOT",
                },
            )
        elif method == "chat.postMessage":
            self._post(method, params, fault)
        elif method == "chat.update":
            self._update(params, fault)
        elif method == "conversations.history":
            self._history(params)
        elif method == "conversations.replies":
            self._replies(params)
        elif method == "conversations.list":
            self._list(params)
        else:
            self._json(200, {"ok": False, "error": "unknown_method"})

    # -- endpoints ---------------------------------------------------------
    def _post(self, method: str, params: dict[str, Any], fault: Fault | None) -> None:
        channel = self._channel_id(str(params.get("channel", "")), allow_name=True)
        if channel is None:
            self._json(200, {"ok": False, "error": "channel_not_found"})
            return
        if not params.get("text") and not params.get("blocks"):
            self._json(200, {"ok": False, "error": "no_text"})
            return
        msg = self._record(channel, params, "api")
        if self._faulted(fault):
            return
        body = {
            "ok": True,
            "channel": channel,
            "ts": msg.ts,
            "message": {"type": "message", "text": msg.text, "ts": msg.ts, "bot_id": "B0BOT"},
        }
        self._json(200, body)

    def _update(self, params: dict[str, Any], fault: Fault | None) -> None:
        channel = self._channel_id(str(params.get("channel", "")), allow_name=False)
        if channel is None:
            self._json(200, {"ok": False, "error": "channel_not_found"})
            return
        ts = str(params.get("ts", ""))
        st = self.state
        with st.lock:
            index = next(
                (i for i, m in enumerate(st.messages) if m.channel == channel and m.ts == ts), None
            )
            if index is not None:
                old = st.messages[index]
                blocks = params.get("blocks", old.blocks)
                if isinstance(blocks, str):
                    blocks = json.loads(blocks)
                metadata = params.get("metadata", old.metadata)
                if isinstance(metadata, str):
                    metadata = json.loads(metadata)
                new = replace(
                    old,
                    text=str(params.get("text", old.text)),
                    blocks=blocks,
                    metadata=metadata,
                    edits=old.edits + 1,
                )
                st.messages[index] = new
                st.updates.append(new)
        if index is None:
            self._json(200, {"ok": False, "error": "message_not_found"})
            return
        if self._faulted(fault):
            return
        self._json(200, {"ok": True, "channel": channel, "ts": ts, "text": new.text})

    def _replies(self, params: dict[str, Any]) -> None:
        channel = self._channel_id(str(params.get("channel", "")), allow_name=False)
        if channel is None:
            self._json(200, {"ok": False, "error": "channel_not_found"})
            return
        parent = str(params.get("ts", ""))
        with self.state.lock:
            thread = [
                m
                for m in self.state.messages
                if m.channel == channel and (m.ts == parent or m.thread_ts == parent)
            ]
        if not any(m.ts == parent for m in thread):
            self._json(200, {"ok": False, "error": "thread_not_found"})
            return
        oldest = float(params.get("oldest") or 0)
        # Slack always returns the parent first, whatever `oldest` says.
        msgs = [m for m in thread if m.ts == parent or float(m.ts) > oldest]
        self._page(msgs, params, thread=True)

    def _webhook(self, path: str, params: dict[str, Any], fault: Fault | None) -> None:
        channel = self.state.webhooks.get(path)
        if channel is None:
            self._answer(404, b"no_service", "text/plain")
        elif not params.get("text") and not params.get("blocks"):
            self._answer(400, b"no_text", "text/plain")
        elif channel not in self.state.channels.values():
            self._answer(404, b"channel_not_found", "text/plain")
        else:
            self._record(channel, params, "webhook")
            if not self._faulted(fault):
                self._answer(200, b"ok", "text/plain")

    def _history(self, params: dict[str, Any]) -> None:
        channel = self._channel_id(str(params.get("channel", "")), allow_name=False)
        if channel is None:
            self._json(200, {"ok": False, "error": "channel_not_found"})
            return
        oldest = float(params.get("oldest") or 0)
        with self.state.lock:
            msgs = [
                m
                for m in reversed(self.state.messages)
                if m.channel == channel and float(m.ts) > oldest and m.thread_ts is None
            ]
        self._page(msgs, params, thread=False)

    def _page(self, msgs: list[PostedMessage], params: dict[str, Any], *, thread: bool) -> None:
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = msgs[start : start + limit]
        with_meta = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        out = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if thread:
                item["thread_ts"] = m.thread_ts or m.ts
            if with_meta and m.metadata is not None:
                item["metadata"] = m.metadata
            out.append(item)
        more = start + limit < len(msgs)
        self._json(
            200,
            {
                "ok": True,
                "messages": out,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            },
        )

    def _list(self, params: dict[str, Any]) -> None:
        chans = [
            {"id": cid, "name": name.lstrip("#"), "is_archived": False}
            for name, cid in self.state.channels.items()
        ]
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        more = start + limit < len(chans)
        self._json(
            200,
            {
                "ok": True,
                "channels": chans[start : start + limit],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            },
        )

    # -- helpers -----------------------------------------------------------
    def _channel_id(self, value: str, *, allow_name: bool) -> str | None:
        ids = self.state.channels.values()
        if value in ids:
            return value
        if allow_name:
            return self.state.channels.get(value if value.startswith("#") else f"#{value}")
        return None

    def _record(self, channel: str, params: dict[str, Any], via: str) -> PostedMessage:
        st = self.state
        with st.lock:
            st.seq += 1
            ts = f"{int(st.clock())}.{st.seq:06d}"
            blocks = params.get("blocks")
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            metadata = params.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            msg = PostedMessage(
                channel,
                ts,
                str(params.get("text", "")),
                blocks,
                metadata,
                params.get("unfurl_links"),
                params.get("unfurl_media"),
                via,
                str(params["thread_ts"]) if params.get("thread_ts") else None,
            )
            st.messages.append(msg)
        return msg

    def _faulted(self, fault: Fault | None) -> bool:
        """Apply drop/hang after the message was recorded; True if no normal answer follows."""
        if fault is None or fault.kind not in ("drop", "hang"):
            return False
        if fault.kind == "hang":
            self.state.stopping.wait(self.state.hang_seconds)
        self.close_connection = True  # no answer at all: the client sees the socket close
        return True

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

    def _answer(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timeout tests)
        self.close_connection = True


def _params(query: str, raw: bytes, ctype: str) -> dict[str, Any] | None:
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if not raw:
        return params
    if "json" in ctype:
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        params.update(body)
    elif "multipart" in ctype:
        pass  # file uploads are not emulated
    else:
        params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
    return params


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    """A running :class:`SlackEmulator` with #alerts, #policy and #private channels."""
    emulator = SlackEmulator()
    emulator.up()
    try:
        yield emulator
    finally:
        emulator.down()
    assert not emulator.bugs, f"Slack emulator errors: {emulator.bugs}"
