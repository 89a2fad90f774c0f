"""A real HTTP feed server on 127.0.0.1 for tests, plus small RSS/Atom builders.

Typical use::

    def test_poll(feed_server: FeedServer) -> None:
        feed_server.set("/feed.xml", rss([{"title": "Hello", "guid": "1"}]), etag='"v1"')
        url = feed_server.url("/feed.xml")
        ...
        feed_server.set("/feed.xml", rss([...]))   # change the feed between polls
        assert feed_server.hits("/feed.xml") == 2

``set()`` covers ordinary feeds (status, headers, validators, gzip, delay).
``redirect()`` adds a hop. ``route()`` is the escape hatch: the handler gets the
request and a :class:`Responder` that can drip bytes, write raw bytes, or drop
the connection. Handlers that wait should use ``responder.wait(seconds)``,
which returns early when the server stops, so no thread outlives a test.

Routes are looked up by the full request target (``/feed?token=x``) first,
then by the path alone (``/feed``). Anything unknown answers 404.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip as gzip_module
import http.server
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

import pytest

__all__ = [
    "FeedServer",
    "RequestInfo",
    "Responder",
    "atom",
    "feed_server",
    "http_date",
    "rss",
]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """One request the server received. ``headers`` has lower-case keys."""

    method: str
    path: str  # without the query string
    query: str  # without the "?", "" when absent
    headers: Mapping[str, str]
    target: str  # the request target as sent: path plus "?query"
    peer: tuple[str, int] = ("", 0)  # the client's address: one per connection


Handler = Callable[[RequestInfo, "Responder"], object]  # the return value is ignored


class Responder:
    """What a ``route()`` handler uses to answer.

    Either call :meth:`send` once, or :meth:`start` then :meth:`write` as often
    as you like (a response started without ``Content-Length`` closes the
    connection at the end, which is how the client knows the body is over).
    :meth:`raw` writes bytes straight to the socket; :meth:`drop` closes the
    connection abruptly. Write errors (the client went away) are swallowed and
    reported through :attr:`client_gone`.
    """

    def __init__(self, handler: _RequestHandler, stopping: threading.Event) -> None:
        self._handler = handler
        self._stopping = stopping
        self.client_gone = False

    def send(
        self,
        status: int = 200,
        body: bytes | str = b"",
        *,
        content_type: str | None = "application/rss+xml; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response with ``Content-Length``."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        merged = dict(headers or {})
        if content_type is not None:
            merged.setdefault("Content-Type", content_type)
        merged["Content-Length"] = str(len(data))
        self.start(status, merged)
        if self._handler.command != "HEAD":
            self.write(data)

    def start(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Send the status line and headers; the body follows with :meth:`write`."""
        headers = dict(headers or {})
        if not any(k.lower() == "content-length" for k in headers):
            headers.setdefault("Connection", "close")
            self._handler.close_connection = True
        try:
            self._handler.send_response(status)
            for name, value in headers.items():
                self._handler.send_header(name, value)
            self._handler.end_headers()
            self._handler.wfile.flush()
        except OSError:
            self._gone()

    def write(self, data: bytes) -> bool:
        """Write body bytes now. Returns False once the client has gone."""
        if self.client_gone:
            return False
        try:
            self._handler.wfile.write(data)
            self._handler.wfile.flush()
        except OSError:
            self._gone()
            return False
        return True

    def raw(self, data: bytes) -> bool:
        """Write bytes straight to the socket (no status line added): for broken responses."""
        self._handler.close_connection = True
        return self.write(data)

    def drop(self) -> None:
        """Close the connection at once, with a TCP reset, without any response."""
        self._handler.close_connection = True
        sock = self._handler.connection
        with contextlib.suppress(OSError):
            # SO_LINGER with a zero timeout turns close() into a reset.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self.client_gone = True

    def wait(self, seconds: float) -> bool:
        """Sleep, but wake early when the server stops. True if the full time passed."""
        return not self._stopping.wait(seconds)

    @property
    def stopping(self) -> bool:
        """True once the server is shutting down: long-running handlers should return."""
        return self._stopping.is_set()

    def _gone(self) -> None:
        self.client_gone = True
        self._handler.close_connection = True


@dataclass(slots=True)
class _Static:
    body: bytes
    status: int
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None
    delay: float = 0.0


@dataclass(slots=True)
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    routes: dict[str, _Static | Handler] = field(default_factory=dict)
    requests: list[RequestInfo] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    connections: set[socket.socket] = field(default_factory=set)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (tests do it on purpose) is not news; a broken handler is.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real feed servers
    server_version = "FeedServer/1"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection ends after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the client may have gone already
            super().finish()
        with self.server.state.lock:
            self.server.state.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read ``requests`` instead of a log on stderr

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch()

    def _dispatch(self) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        info = RequestInfo(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            target=self.path,
            peer=(str(self.client_address[0]), int(self.client_address[1])),
        )
        with state.lock:
            state.requests.append(info)
            route = state.routes.get(info.target) or state.routes.get(info.path)
        responder = Responder(self, state.stopping)
        if route is None:
            responder.send(404, b"not found\n", content_type="text/plain; charset=utf-8")
        elif isinstance(route, _Static):
            _serve_static(route, info, responder)
        else:
            route(info, responder)


def _serve_static(route: _Static, info: RequestInfo, responder: Responder) -> None:
    if route.delay and not responder.wait(route.delay):
        return
    validators: dict[str, str] = {}
    if route.etag is not None:
        validators["ETag"] = route.etag
    if route.last_modified is not None:
        validators["Last-Modified"] = route.last_modified
    if _not_modified(route, info.headers):
        # A 304 has no body, so it carries no Content-* headers of its own.
        kept = {k: v for k, v in route.headers.items() if not k.lower().startswith("content-")}
        responder.send(304, b"", content_type=None, headers={**kept, **validators})
        return
    responder.send(
        route.status,
        route.body,
        content_type=None,
        headers={**route.headers, **validators},
    )


def _not_modified(route: _Static, headers: Mapping[str, str]) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if route.etag is None:
            return False
        tags = [t.strip() for t in if_none_match.split(",")]
        weak = route.etag.removeprefix("W/")
        return "*" in tags or any(t.removeprefix("W/") == weak for t in tags)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is None or route.last_modified is None:
        return False
    if if_modified_since == route.last_modified:
        return True
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
        modified = email.utils.parsedate_to_datetime(route.last_modified)
    except (TypeError, ValueError):
        return False
    return modified <= since


class FeedServer:
    """A threaded HTTP server on 127.0.0.1 with an ephemeral port. See the module docstring."""

    def __init__(self) -> None:
        self._state = _State()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FeedServer:
        """Bind 127.0.0.1:0 and serve in a background thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("FeedServer already started")
        server = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
        server.state = self._state
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="feed-server"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection, wake waiting handlers."""
        if self._server is None:
            return
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._state.lock:
            open_connections = list(self._state.connections)
        for sock in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FeedServer is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server (a leading "/" is added if missing)."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    # -- content ---------------------------------------------------------------

    def set(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/rss+xml; charset=utf-8",
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Serve ``body`` at ``path``, replacing whatever was there.

        With ``etag`` / ``last_modified`` the response carries them and a
        request with a matching ``If-None-Match`` / ``If-Modified-Since`` gets
        304. ``gzip`` compresses the body and sends ``Content-Encoding: gzip``.
        ``delay`` waits that many seconds before answering. ``headers`` are
        sent as given and win over the defaults.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        merged = {"Content-Type": content_type}
        if gzip:
            data = gzip_module.compress(data, mtime=0)
            merged["Content-Encoding"] = "gzip"
        merged.update(headers or {})
        static = _Static(data, status, merged, etag, last_modified, delay)
        with self._state.lock:
            self._state.routes[_route_key(path)] = static

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        """Answer ``path`` with a redirect to ``to`` (absolute URL or a path on this server)."""
        static = _Static(b"", status, {"Location": to}, None, None)
        with self._state.lock:
            self._state.routes[_route_key(path)] = static

    def route(self, path: str, handler: Handler) -> None:
        """Answer ``path`` by calling ``handler(request, responder)`` in the server thread."""
        with self._state.lock:
            self._state.routes[_route_key(path)] = handler

    def remove(self, path: str) -> None:
        """Forget ``path``: it answers 404 from now on."""
        with self._state.lock:
            self._state.routes.pop(_route_key(path), None)

    # -- what happened ---------------------------------------------------------

    @property
    def requests(self) -> list[RequestInfo]:
        """A snapshot of every request received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def hits(self, path: str) -> int:
        """How many requests asked for ``path`` (matched on the full target or the path)."""
        key = _route_key(path)
        return sum(1 for r in self.requests if key in (r.target, r.path))

    def last_request(self, path: str | None = None) -> RequestInfo:
        """The most recent request (for ``path`` when given). Fails if there was none."""
        key = None if path is None else _route_key(path)
        for r in reversed(self.requests):
            if key is None or key in (r.target, r.path):
                return r
        raise AssertionError(f"no request for {path!r}" if path else "no request at all")


def _route_key(path: str) -> str:
    return path if path.startswith("/") else "/" + path


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started :class:`FeedServer`, stopped after the test."""
    with FeedServer() as server:
        yield server


# -- feed builders -------------------------------------------------------------

Date = datetime | str


def http_date(when: datetime) -> str:
    """RFC 9110 / RFC 2822 date in GMT, for Last-Modified, Retry-After and RSS pubDate."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


def _rfc3339(when: Date) -> str:
    if isinstance(when, str):
        return when
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rss_date(when: Date) -> str:
    return when if isinstance(when, str) else http_date(when)


def _categories(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _text(tag: str, value: object, attrs: str = "") -> str:
    return f"<{tag}{attrs}>{escape(str(value))}</{tag}>"


def rss(
    items: Sequence[Mapping[str, Any]],
    title: str = "Test feed",
    *,
    link: str = "https://example.org/",
    description: str = "A feed for tests",
) -> str:
    """A small RSS 2.0 document. All text is XML-escaped.

    Item keys (all optional): ``title``, ``link``, ``guid`` (sent with
    ``isPermaLink="false"`` unless ``guid_is_permalink`` is true),
    ``description`` (HTML goes in as escaped text, as RSS carries it),
    ``pubDate`` (``datetime`` or a ready string; alias ``published``),
    ``category`` (a string or a list), ``author``, and ``extra``: raw XML
    inserted into the item unescaped, for hostile or unusual markup.
    """
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0">',
        "<channel>",
        _text("title", title),
        _text("link", link),
        _text("description", description),
    ]
    for item in items:
        parts.append("<item>")
        for key in ("title", "link", "description", "author"):
            if item.get(key) is not None:
                parts.append(_text(key, item[key]))
        if item.get("guid") is not None:
            permalink = "true" if item.get("guid_is_permalink") else "false"
            parts.append(_text("guid", item["guid"], f" isPermaLink={quoteattr(permalink)}"))
        date = item.get("pubDate", item.get("published"))
        if date is not None:
            parts.append(_text("pubDate", _rss_date(date)))
        parts.extend(_text("category", c) for c in _categories(item.get("category")))
        if item.get("extra"):
            parts.append(str(item["extra"]))
        parts.append("</item>")
    parts += ["</channel>", "</rss>", ""]
    return "\n".join(parts)


def atom(
    items: Sequence[Mapping[str, Any]],
    title: str = "Test feed",
    *,
    link: str = "https://example.org/",
    feed_id: str = "urn:test:feed",
    updated: Date = "2024-01-01T00:00:00Z",
) -> str:
    """A small Atom 1.0 document. All text is XML-escaped.

    Entry keys (all optional): ``title``, ``link``, ``id`` (alias ``guid``;
    default ``link``, else ``urn:test:entry:N``), ``summary`` (alias
    ``description``; add ``summary_type`` "html" or "text", default "html"),
    ``content`` (type "html"), ``updated`` and ``published`` (``datetime`` or a
    ready RFC 3339 string; omitted when not given, so a test can make an entry
    without dates), ``category`` (a string or a list of terms), ``author``,
    and ``extra``: raw XML inserted into the entry unescaped.
    """
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        _text("title", title),
        f"<link href={quoteattr(link)}/>",
        _text("id", feed_id),
        _text("updated", _rfc3339(updated)),
    ]
    for n, item in enumerate(items, start=1):
        parts.append("<entry>")
        if item.get("title") is not None:
            parts.append(_text("title", item["title"]))
        if item.get("link") is not None:
            parts.append(f'<link rel="alternate" href={quoteattr(str(item["link"]))}/>')
        entry_id = item.get("id", item.get("guid")) or item.get("link") or f"urn:test:entry:{n}"
        parts.append(_text("id", entry_id))
        for key in ("updated", "published"):
            if item.get(key) is not None:
                parts.append(_text(key, _rfc3339(item[key])))
        summary = item.get("summary", item.get("description"))
        if summary is not None:
            kind = item.get("summary_type", "html")
            parts.append(_text("summary", summary, f" type={quoteattr(kind)}"))
        if item.get("content") is not None:
            parts.append(_text("content", item["content"], ' type="html"'))
        if item.get("author") is not None:
            parts.append(f"<author>{_text('name', item['author'])}</author>")
        parts.extend(f"<category term={quoteattr(c)}/>" for c in _categories(item.get("category")))
        if item.get("extra"):
            parts.append(str(item["extra"]))
        parts.append("</entry>")
    parts += ["</feed>", ""]
    return "\n".join(parts)
