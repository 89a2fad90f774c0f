"""A feed farm on 127.0.0.1: N RSS feeds × M items of realistic size, for benchmarks.

Usage::

    .venv/bin/python bench/farm.py --feeds 1000 [--items 30] [--latency 0.05] [--gzip]

prints ``listening on http://127.0.0.1:PORT`` and serves until the parent
process goes away, ``--max-seconds`` pass (default 2 h), or SIGTERM/SIGINT.

Routes:

- ``GET /feeds/<i>.xml`` — feed ``i`` (0 ≤ i < N): RSS 2.0 with M items,
  each ~1.15 KB (title, link, date and ~0.9 KB of escaped HTML summary: ≈ 35 KB
  for 30 items; feedparser needs ~12 ms of CPU for one), an ``ETag`` and a
  ``Last-Modified``; ``If-None-Match`` / ``If-Modified-Since`` give ``304``.
  ``--latency`` delays every feed answer without blocking the server.
- ``POST /_bump?fraction=F[&first=A&count=B][&matching=P][&feeds=1,2]`` — add
  one new item to every feed ``i`` in ``[A, A+B)`` with ``i*F`` crossing an
  integer (so exactly ``round(B*F)`` feeds, spread evenly), or to the listed
  feeds. A share ``P`` of the new items (default 0.3) get a title that the
  shipped rules match. Answers JSON: ``{"feeds": [...], "titles": [...]}``.
- ``GET /_stats`` — request counts (``requests``, ``ok``, ``not_modified``,
  ``bytes``) and per-feed hit counts ``hits``.

The server is one asyncio ``Protocol`` (HTTP/1.1 keep-alive, no pipelining
needed by any client here) in its own process, so it does not share a GIL
with the program measured. Bodies are built once per feed version and
cached; serving costs a dictionary lookup and a socket write. The module
also has :class:`FarmProcess`, which the harness uses to run the farm as a
child process and to drive it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gzip
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

HOST = "127.0.0.1"

# -- content ---------------------------------------------------------------------

_WORDS = [
    "government",
    "ministry",
    "agency",
    "department",
    "regulator",
    "institute",
    "research",
    "programme",
    "framework",
    "assessment",
    "evaluation",
    "standards",
    "testing",
    "model",
    "models",
    "frontier",
    "systems",
    "capabilities",
    "risks",
    "safety",
    "security",
    "public",
    "consultation",
    "guidance",
    "report",
    "review",
    "international",
    "cooperation",
    "partners",
    "industry",
    "developers",
    "data",
    "compute",
    "infrastructure",
    "innovation",
    "economy",
    "skills",
    "funding",
    "grants",
    "universities",
    "laboratories",
    "scientists",
    "announced",
    "today",
    "week",
    "month",
    "year",
    "plans",
    "measures",
    "commitments",
    "principles",
    "governance",
    "transparency",
    "accountability",
    "oversight",
    "incidents",
    "benchmarks",
    "open",
    "source",
    "deployment",
    "cyber",
    "resilience",
    "critical",
    "sectors",
    "health",
    "education",
    "transport",
    "energy",
    "climate",
    "officials",
    "minister",
    "secretary",
    "director",
    "chief",
    "executive",
    "spokesperson",
    "statement",
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "on",
    "with",
    "by",
    "from",
    "at",
    "as",
    "that",
    "this",
    "which",
    "will",
    "has",
    "have",
    "said",
]
_COUNTRIES = [
    "UK",
    "US",
    "Canada",
    "France",
    "Germany",
    "Japan",
    "Korea",
    "India",
    "Singapore",
    "Australia",
    "Kenya",
    "Brazil",
    "Italy",
    "Spain",
    "Netherlands",
    "Sweden",
    "Norway",
    "Finland",
    "Denmark",
    "Ireland",
]
_PLAIN_TITLES = (
    "{a} publishes {w1} {w2} guidance",
    "{a} minister outlines {w1} plans for {w2}",
    "{a} announces funding for {w1} {w2}",
    "Consultation opens on {w1} {w2} in {a}",
    "{a} regulator reviews {w1} {w2}",
    "New report on {w1} and {w2} from {a}",
)
# Titles the shipped rules (rules/ai-safety-partnerships.yaml) alert on.
_MATCHING_TITLES = (
    "{a} and {b} AI Safety Institutes sign partnership on frontier model testing",
    "{a} joins International Network of AI Safety Institutes",
    "{a} AI Safety Institute signs agreement with Anthropic and OpenAI on safety testing",
    "AI safety institutes from {a} and {b} announce joint research programme",
)


def _takes(n: int, share: float) -> bool:
    """True for the ``n``-th of a run when ``share`` of the run is taken, spread evenly
    (the first one always is, for any share above 0)."""
    return math.ceil((n + 1) * share) > math.ceil(n * share)


def _summary_pool(size: int, target_bytes: int, seed: int = 7) -> list[str]:
    """``size`` XML-escaped HTML summaries of about ``target_bytes`` each (escaped form)."""
    rng = random.Random(seed)
    pool = []
    for n in range(size):
        paragraphs = []
        length = 0
        while length < target_bytes * 0.8:
            words = rng.choices(_WORDS, k=rng.randint(25, 45))
            words[0] = words[0].capitalize()
            link = f' <a href="https://news.example/ref/{n}-{len(paragraphs)}">more</a>'
            text = "<p>" + " ".join(words) + "." + link + "</p>"
            paragraphs.append(text)
            length += len(escape(text))
        pool.append(escape("".join(paragraphs)))
    return pool


@dataclass(slots=True)
class FeedFarm:
    """The farm's state: how many items each feed has gained, and body generation.

    Feed ``i`` at version ``v`` holds items ``v .. v+M-1`` of its own
    sequence (newest first); :meth:`bump` adds item ``v+M`` and drops the oldest.
    """

    feeds: int
    items: int = 30
    summary_bytes: int = 900
    gzip: bool = False
    backlog_match_every: int = 15  # one backlog title in this many matches the rules
    started: float = field(default_factory=time.time)
    versions: list[int] = field(init=False)
    _bumped_at: dict[tuple[int, int], float] = field(init=False, default_factory=dict)
    _matching: set[tuple[int, int]] = field(init=False, default_factory=set)
    _cache: dict[int, tuple[int, bytes, bytes | None, str, str]] = field(
        init=False, default_factory=dict
    )
    _pool: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.feeds < 1 or self.items < 1:
            raise ValueError("a farm needs at least one feed and one item per feed")
        self.versions = [0] * self.feeds
        self._pool = _summary_pool(256, self.summary_bytes)

    # -- items -----------------------------------------------------------------
    def _published(self, feed: int, k: int) -> float:
        stamp = self._bumped_at.get((feed, k))
        if stamp is not None:
            return stamp
        # The backlog: one item an hour before the farm started, newest last.
        return self.started - (self.items - k) * 3600.0 - feed % 3600

    def _title(self, feed: int, k: int) -> str:
        rng = random.Random(feed * 1_000_003 + k)
        a, b = rng.sample(_COUNTRIES, 2)
        matching = (feed, k) in self._matching or (
            k < self.items and (feed + k) % self.backlog_match_every == 0
        )
        template = rng.choice(_MATCHING_TITLES if matching else _PLAIN_TITLES)
        return template.format(a=a, b=b, w1=rng.choice(_WORDS), w2=rng.choice(_WORDS))

    def _item(self, feed: int, k: int) -> str:
        link = f"https://news.example/f{feed}/{k}"
        date = email.utils.formatdate(self._published(feed, k), usegmt=True)
        summary = self._pool[(feed * 31 + k) % len(self._pool)]
        return (
            f"<item><title>{escape(self._title(feed, k))}</title><link>{link}</link>"
            f'<guid isPermaLink="false">farm-{feed}-{k}</guid><pubDate>{date}</pubDate>'
            f"<category>news</category><description>{summary}</description></item>\n"
        )

    def title(self, feed: int, k: int) -> str:
        """The title of item ``k`` of ``feed`` (what an alert about it will carry)."""
        return self._title(feed, k)

    # -- bodies ----------------------------------------------------------------
    def body(self, feed: int) -> tuple[bytes, bytes | None, str, str]:
        """``(body, gzipped body or None, etag, last_modified)`` of ``feed`` now."""
        version = self.versions[feed]
        cached = self._cache.get(feed)
        if cached is not None and cached[0] == version:
            return cached[1:]
        newest = version + self.items - 1
        items = "".join(self._item(feed, k) for k in range(newest, version - 1, -1))
        text = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<rss version="2.0"><channel>'
            f"<title>Farm feed {feed}</title><link>https://news.example/f{feed}/</link>"
            f"<description>Benchmark feed {feed} of {self.feeds}</description>"
            "<language>en</language>\n"
            f"{items}</channel></rss>\n"
        )
        data = text.encode("utf-8")
        packed = gzip.compress(data, compresslevel=6) if self.gzip else None
        etag = f'"{feed}-{version}"'
        modified = email.utils.formatdate(self._published(feed, newest), usegmt=True)
        self._cache[feed] = (version, data, packed, etag, modified)
        return data, packed, etag, modified

    # -- changes ---------------------------------------------------------------
    def pick(self, fraction: float, first: int = 0, count: int | None = None) -> list[int]:
        """Feeds in ``[first, first+count)`` that a bump of ``fraction`` touches, spread evenly."""
        count = self.feeds - first if count is None else count
        if first < 0 or count < 0 or first + count > self.feeds:
            raise ValueError(f"feeds {first}..{first + count - 1} are not all in the farm")
        return [first + i for i in range(count) if _takes(i, fraction)]

    def bump(self, feeds: Sequence[int], matching: float = 0.3) -> list[str]:
        """Add one new item to each of ``feeds``; returns the new items' titles.

        Every ``1/matching``-th bumped feed (spread evenly) gets a title the rules match.
        """
        now = time.time()
        titles = []
        for n, feed in enumerate(feeds):
            self.versions[feed] += 1
            k = self.versions[feed] + self.items - 1
            self._bumped_at[(feed, k)] = now
            if _takes(n, matching):
                self._matching.add((feed, k))
            titles.append(self._title(feed, k))
            self.body(feed)  # build it now, not while a measured client waits
        return titles

    def warm(self) -> None:
        """Build every body up front, so the first client measured does not pay for it."""
        for feed in range(self.feeds):
            self.body(feed)


# -- the HTTP server ---------------------------------------------------------------


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    ok: int = 0
    not_modified: int = 0
    bytes: int = 0
    hits: dict[int, int] = field(default_factory=dict)


class _FarmProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 server side: GET/HEAD/POST without request bodies beyond Content-Length."""

    MAX_HEAD = 16 * 1024

    def __init__(self, farm: FeedFarm, stats: _Stats, latency: float) -> None:
        self.farm = farm
        self.stats = stats
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > self.MAX_HEAD:
                    self._close()
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._close()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # wait for the rest of the request body
            self.buffer = self.buffer[end + 4 + length :]
            keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
            self._answer(method, target, headers, keep)

    def _answer(self, method: str, target: str, headers: dict[str, str], keep: bool) -> None:
        parts = urlsplit(target)
        self.stats.requests += 1
        if parts.path.startswith("/feeds/") and parts.path.endswith(".xml"):
            response = self._feed(parts.path[7:-4], headers, method == "HEAD")
            if self.latency > 0:
                loop = asyncio.get_running_loop()
                loop.call_later(self.latency, self._write, response, keep)
                return
        elif parts.path == "/_bump" and method == "POST":
            response = self._bump(parse_qs(parts.query))
        elif parts.path == "/_stats":
            stats = {
                "requests": self.stats.requests,
                "ok": self.stats.ok,
                "not_modified": self.stats.not_modified,
                "bytes": self.stats.bytes,
                "hits": {str(k): v for k, v in sorted(self.stats.hits.items())},
            }
            response = _response(200, json.dumps(stats).encode(), "application/json")
        else:
            response = _response(404, b"not found\n", "text/plain")
        self._write(response, keep)

    def _feed(self, name: str, headers: dict[str, str], head_only: bool) -> bytes:
        if not name.isdigit() or int(name) >= self.farm.feeds:
            return _response(404, b"no such feed\n", "text/plain")
        feed = int(name)
        self.stats.hits[feed] = self.stats.hits.get(feed, 0) + 1
        body, packed, etag, modified = self.farm.body(feed)
        match = headers.get("if-none-match")
        since = headers.get("if-modified-since")
        fresh = (
            etag in [t.strip() for t in match.split(",")]
            if match is not None
            else since == modified
        )
        extra = {"ETag": etag, "Last-Modified": modified}
        if fresh:
            self.stats.not_modified += 1
            return _response(304, b"", None, extra)
        if packed is not None and "gzip" in headers.get("accept-encoding", ""):
            body = packed
            extra["Content-Encoding"] = "gzip"
        extra["Vary"] = "Accept-Encoding"
        self.stats.ok += 1
        self.stats.bytes += len(body)
        return _response(200, b"" if head_only else body, "application/rss+xml", extra, len(body))

    def _bump(self, query: dict[str, list[str]]) -> bytes:
        try:
            matching = float(query.get("matching", ["0.3"])[0])
            if "feeds" in query:
                feeds = [int(x) for x in query["feeds"][0].split(",") if x]
                if any(not 0 <= f < self.farm.feeds for f in feeds):
                    raise ValueError("feed index out of range")
            else:
                fraction = float(query.get("fraction", ["0.1"])[0])
                first = int(query.get("first", ["0"])[0])
                count = int(query["count"][0]) if "count" in query else None
                feeds = self.farm.pick(fraction, first, count)
        except (ValueError, KeyError) as exc:
            return _response(400, f"{exc}\n".encode(), "text/plain")
        titles = self.farm.bump(feeds, matching)
        answer = json.dumps({"feeds": feeds, "titles": titles}).encode()
        return _response(200, answer, "application/json")

    def _write(self, response: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(response)
        if not keep:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _response(
    status: int,
    body: bytes,
    content_type: str | None,
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if status != 304:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def serve(
    farm: FeedFarm,
    *,
    port: int = 0,
    latency: float = 0.0,
    max_seconds: float = 7200.0,
    ready: asyncio.Future[int] | None = None,
) -> None:
    """Serve ``farm`` on 127.0.0.1 until the parent dies, ``max_seconds`` pass or a signal."""
    loop = asyncio.get_running_loop()
    stats = _Stats()
    server = await loop.create_server(
        lambda: _FarmProtocol(farm, stats, latency), HOST, port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{HOST}:{bound}", flush=True)
    if ready is not None:
        ready.set_result(bound)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not in the main thread (tests): rely on the deadline and the parent check.
        with contextlib.suppress(RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds
    async with server:
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


# -- driving a farm from another process -----------------------------------------


class FarmProcess:
    """Run ``bench/farm.py`` as a child process; bump feeds and read stats over HTTP.

    Use as a context manager: the child is terminated (then killed) on exit,
    and it also exits by itself when this process goes away.
    """

    def __init__(
        self,
        feeds: int,
        *,
        items: int = 30,
        latency: float = 0.0,
        gzip: bool = False,
        max_seconds: float = 7200.0,
    ) -> None:
        self.feeds = feeds
        self._args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--feeds",
            str(feeds),
            "--items",
            str(items),
            "--latency",
            str(latency),
            "--max-seconds",
            str(max_seconds),
            *(["--gzip"] if gzip else []),
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""

    def __enter__(self) -> FarmProcess:
        self.proc = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.close()
            raise RuntimeError(f"the feed farm did not start: {line!r}")
        self.base = line.removeprefix("listening on ")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the farm (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    @property
    def pid(self) -> int:
        """The farm's process id."""
        assert self.proc is not None
        return self.proc.pid

    def url(self, feed: int) -> str:
        """The URL of feed number ``feed``."""
        return f"{self.base}/feeds/{feed}.xml"

    def urls(self, count: int | None = None) -> list[str]:
        """The URLs of the first ``count`` feeds (all by default)."""
        return [self.url(i) for i in range(self.feeds if count is None else count)]

    def bump(
        self,
        fraction: float = 0.1,
        *,
        count: int | None = None,
        feeds: Sequence[int] | None = None,
        matching: float = 0.3,
    ) -> dict[str, list[object]]:
        """Add one new item to a ``fraction`` of the first ``count`` feeds (or to ``feeds``)."""
        query = f"matching={matching}"
        if feeds is not None:
            query += "&feeds=" + ",".join(str(f) for f in feeds)
        else:
            query += f"&fraction={fraction}" + (f"&count={count}" if count is not None else "")
        return self._call("POST", f"/_bump?{query}")

    def stats(self) -> dict[str, object]:
        """The farm's request counters."""
        return self._call("GET", "/_stats")

    def _call(self, method: str, path: str) -> dict[str, object]:
        request = urllib.request.Request(self.base + path, method=method, data=b"")
        if method == "GET":
            request = urllib.request.Request(self.base + path)
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read())
        assert isinstance(data, dict)
        return data


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve a farm until the parent exits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100, help="number of feeds (default 100)")
    parser.add_argument("--items", type=int, default=30, help="items per feed (default 30)")
    parser.add_argument(
        "--summary-bytes", type=int, default=900, help="summary size per item (default 900)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every feed answer"
    )
    parser.add_argument("--gzip", action="store_true", help="gzip bodies for clients that ask")
    parser.add_argument(
        "--max-seconds", type=float, default=7200.0, help="exit after this long (default 2 h)"
    )
    args = parser.parse_args(argv)
    farm = FeedFarm(args.feeds, args.items, args.summary_bytes, gzip=args.gzip)
    farm.warm()
    asyncio.run(serve(farm, port=args.port, latency=args.latency, max_seconds=args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
