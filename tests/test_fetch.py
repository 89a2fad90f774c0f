"""The fetch stage against a real HTTP server on 127.0.0.1 (tests/feedserver.py)."""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import os
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from monitor.feedclient import FeedClient
from monitor.fetch import (
    USER_AGENT,
    FetchLimits,
    _BoundedDecoder,
    _Failed,
    fetch,
    make_client,
    parse_retry_after,
    redact_url,
)
from monitor.models import FetchResult, FetchStatus, Validators
from tests.feedserver import FeedServer, RequestInfo, Responder, http_date, rss

MB = 1024 * 1024
FAST = FetchLimits(max_bytes=MB, deadline=5.0, connect_timeout=2.0, read_timeout=3.0)
FEED = rss([{"title": "Hello", "link": "https://example.org/1", "guid": "1"}])
ERROR, OK = FetchStatus.ERROR, FetchStatus.OK


def do_fetch(
    url: str, validators: Validators | None = None, limits: FetchLimits = FAST
) -> FetchResult:
    async def go() -> FetchResult:
        async with make_client(limits) as client:
            return await fetch(client, url, validators or Validators(), limits)

    return asyncio.run(go())


def send_encoded(body: bytes, encoding: str) -> Callable[[RequestInfo, Responder], None]:
    def handler(_: RequestInfo, resp: Responder) -> None:
        resp.send(200, body, headers={"Content-Encoding": encoding})

    return handler


# -- success and conditional GET ---------------------------------------------------


def test_200_returns_body_headers_and_validators(feed_server: FeedServer) -> None:
    feed_server.set(
        "/feed.xml",
        FEED,
        etag='"v1"',
        last_modified="Wed, 01 Jan 2025 00:00:00 GMT",
        headers={"X-Custom": "yes"},
    )
    result = do_fetch(feed_server.url("/feed.xml"))
    assert result.status is OK, result.error
    assert result.http_status == 200
    assert result.body == FEED.encode()
    assert result.validators == Validators('"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.headers["x-custom"] == "yes"
    assert all(k == k.lower() for k in result.headers)
    assert result.headers["content-location"] == feed_server.url("/feed.xml")
    assert result.url == result.final_url == feed_server.url("/feed.xml")
    assert result.moved_to is None and result.error is None
    assert result.elapsed > 0


def test_second_fetch_is_conditional_and_gets_304(feed_server: FeedServer) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    feed_server.set("/feed.xml", FEED, etag='"v1"', last_modified=lm)
    first = do_fetch(feed_server.url("/feed.xml"))
    second = do_fetch(feed_server.url("/feed.xml"), first.validators)
    sent = feed_server.last_request("/feed.xml").headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == lm
    assert second.status is FetchStatus.NOT_MODIFIED
    assert second.http_status == 304
    assert second.body == b""
    assert second.validators == first.validators


def test_304_from_last_modified_alone(feed_server: FeedServer) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    feed_server.set("/feed.xml", FEED, last_modified=lm)
    result = do_fetch(feed_server.url("/feed.xml"), Validators(last_modified=lm))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.validators == Validators(last_modified=lm)
    assert "if-none-match" not in feed_server.last_request().headers


def test_changed_feed_gives_new_body_and_validators(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED, etag='"v1"')
    first = do_fetch(feed_server.url("/feed.xml"))
    newer = rss([{"title": "Second", "guid": "2"}])
    feed_server.set("/feed.xml", newer, etag='"v2"')
    second = do_fetch(feed_server.url("/feed.xml"), first.validators)
    assert second.status is OK
    assert second.body == newer.encode()
    assert second.validators == Validators(etag='"v2"')


def test_first_fetch_sends_no_validators(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    do_fetch(feed_server.url("/feed.xml"))
    headers = feed_server.last_request().headers
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_unsendable_stored_validator_is_skipped_not_fatal(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    result = do_fetch(feed_server.url("/feed.xml"), Validators(etag='"caf\u00e9"\r\nX: y'))
    assert result.status is OK
    assert "if-none-match" not in feed_server.last_request().headers


def test_user_agent_and_accept_headers_are_sent(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    do_fetch(feed_server.url("/feed.xml"))
    headers = feed_server.last_request().headers
    assert headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("ai-safety-partnership-monitor/")
    assert headers["accept-encoding"] == "gzip, deflate"
    assert "application/rss+xml" in headers["accept"]


def test_cookies_a_feed_sets_are_never_sent_back(feed_server: FeedServer) -> None:
    # One client serves every feed of a cycle (and a service runs for months): a cookie
    # one feed sets must not follow later polls of it or of its neighbours on the host.
    cookie = {"Set-Cookie": "session=abc123; Path=/"}
    feed_server.set("/a.xml", FEED, headers=cookie)
    feed_server.set("/b.xml", FEED, headers=cookie)

    async def go() -> None:
        async with make_client(FAST) as client:
            for path in ("/a.xml", "/a.xml", "/b.xml"):
                result = await fetch(client, feed_server.url(path), Validators(), FAST)
                assert result.status is OK

    asyncio.run(go())
    assert len(feed_server.requests) == 3
    assert [r.headers.get("cookie") for r in feed_server.requests] == [None, None, None]


def test_204_is_ok_with_empty_body(feed_server: FeedServer) -> None:
    feed_server.set("/empty", b"", status=204)
    result = do_fetch(feed_server.url("/empty"))
    assert result.status is OK and result.body == b""


# -- status codes ------------------------------------------------------------------


def test_404_is_an_error_with_the_status_line(feed_server: FeedServer) -> None:
    result = do_fetch(feed_server.url("/missing"))
    assert result.status is ERROR
    assert result.http_status == 404
    assert result.error == "HTTP 404 Not Found"


def test_410_is_gone(feed_server: FeedServer) -> None:
    feed_server.set("/old", b"", status=410)
    result = do_fetch(feed_server.url("/old"))
    assert result.status is FetchStatus.GONE
    assert result.http_status == 410
    assert result.error is not None and result.error.startswith("HTTP 410 Gone")


def test_429_with_retry_after_seconds(feed_server: FeedServer) -> None:
    feed_server.set("/busy", b"slow down", status=429, headers={"Retry-After": "120"})
    result = do_fetch(feed_server.url("/busy"))
    assert result.status is FetchStatus.RETRY_LATER
    assert result.retry_after == 120.0
    assert result.error == "HTTP 429 Too Many Requests; the server asked to wait 120s"


def test_503_with_http_date_retry_after(feed_server: FeedServer) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    feed_server.set("/down", b"", status=503, headers={"Retry-After": http_date(when)})
    result = do_fetch(feed_server.url("/down"))
    assert result.status is FetchStatus.RETRY_LATER
    assert result.http_status == 503
    assert result.retry_after is not None
    assert 3500 < result.retry_after <= 3600


def test_429_without_retry_after(feed_server: FeedServer) -> None:
    feed_server.set("/busy", b"", status=429)
    result = do_fetch(feed_server.url("/busy"))
    assert result.status is FetchStatus.RETRY_LATER
    assert result.retry_after is None


def test_500_is_an_error_and_keeps_retry_after(feed_server: FeedServer) -> None:
    feed_server.set("/boom", b"oops", status=500, headers={"Retry-After": "7"})
    result = do_fetch(feed_server.url("/boom"))
    assert result.status is ERROR
    assert result.error == "HTTP 500 Internal Server Error"
    assert result.retry_after == 7.0


def test_unknown_status_code_uses_a_clean_reason(feed_server: FeedServer) -> None:
    feed_server.route(
        "/odd",
        lambda _, resp: resp.raw(
            b"HTTP/1.1 599 Weird\x7f Stuff\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    result = do_fetch(feed_server.url("/odd"))
    assert result.status is ERROR
    assert result.error == "HTTP 599 Weird Stuff"


# -- network failures and the deadline ---------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    result = do_fetch(f"http://127.0.0.1:{closed_port()}/feed.xml")
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("connection refused")
    assert result.http_status is None


def test_tls_error_is_reported_as_such(feed_server: FeedServer) -> None:
    # An https request to a plain-HTTP port fails the TLS handshake.
    result = do_fetch(feed_server.url("/feed.xml").replace("http://", "https://"))
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("TLS error: ")


def never_answer(_: RequestInfo, resp: Responder) -> None:
    resp.wait(60)  # returns early when the server stops at the end of the test


@pytest.mark.timeout(20)
def test_server_that_never_answers_hits_the_deadline(feed_server: FeedServer) -> None:
    feed_server.route("/hang", never_answer)
    limits = replace(FAST, deadline=1.0, read_timeout=30.0)
    result = do_fetch(feed_server.url("/hang"), limits=limits)
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("timed out after 1s")


@pytest.mark.timeout(20)
def test_silent_server_trips_the_read_timeout(feed_server: FeedServer) -> None:
    feed_server.route("/hang", never_answer)
    limits = replace(FAST, deadline=10.0, read_timeout=0.3)
    result = do_fetch(feed_server.url("/hang"), limits=limits)
    assert result.status is ERROR
    assert result.error == "the server sent nothing for 0.3s (read timeout)"


@pytest.mark.timeout(20)
def test_slow_drip_is_cut_off_by_the_deadline(feed_server: FeedServer) -> None:
    def drip(_: RequestInfo, resp: Responder) -> None:
        resp.start(200, {"Content-Type": "application/rss+xml"})
        while resp.wait(0.2) and resp.write(b"<"):
            pass

    feed_server.route("/drip", drip)
    # Each byte arrives well within the read timeout: only the overall deadline can stop it.
    limits = replace(FAST, deadline=1.0, read_timeout=5.0)
    result = do_fetch(feed_server.url("/drip"), limits=limits)
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("timed out after 1s")


def test_dropped_connection(feed_server: FeedServer) -> None:
    feed_server.route("/drop", lambda _, resp: resp.drop())
    result = do_fetch(feed_server.url("/drop"))
    assert result.status is ERROR
    assert result.error


def test_body_cut_short(feed_server: FeedServer) -> None:
    def short(_: RequestInfo, resp: Responder) -> None:
        resp.start(200, {"Content-Length": "1000"})
        resp.write(b"<rss>")
        resp.drop()

    feed_server.route("/short", short)
    result = do_fetch(feed_server.url("/short"))
    assert result.status is ERROR
    assert result.error


def test_garbage_instead_of_http(feed_server: FeedServer) -> None:
    feed_server.route("/junk", lambda _, resp: resp.raw(b"SSH-2.0-OpenSSH\r\n\r\n"))
    result = do_fetch(feed_server.url("/junk"))
    assert result.status is ERROR
    assert result.error is not None and "invalid HTTP" in result.error


# -- size caps and decoding ---------------------------------------------------------


def test_body_over_the_cap_announced_by_content_length(feed_server: FeedServer) -> None:
    feed_server.set("/big", b"x" * (MB + 1))
    result = do_fetch(feed_server.url("/big"))
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("body larger than 1 MB cap")
    assert result.body == b""


def test_streamed_body_over_the_cap_stops_reading(feed_server: FeedServer) -> None:
    outcome: list[str] = []
    handler_done = threading.Event()

    def endless(_: RequestInfo, resp: Responder) -> None:
        resp.start(200, {"Content-Type": "application/rss+xml"})  # no length: streamed
        chunk = b"x" * 65536
        for _chunk in range(1024):  # 64 MB: more than loopback socket buffers can swallow
            if not resp.write(chunk):
                outcome.append("client hung up")
                break
        else:
            outcome.append("client read it all")
        handler_done.set()

    feed_server.route("/endless", endless)
    result = do_fetch(feed_server.url("/endless"))
    assert result.status is ERROR
    assert result.error == "body larger than 1 MB cap"
    assert handler_done.wait(10)
    assert outcome == ["client hung up"]


def test_body_exactly_at_the_cap_is_fine(feed_server: FeedServer) -> None:
    feed_server.set("/edge", b"x" * MB, gzip=True)
    result = do_fetch(feed_server.url("/edge"))
    assert result.status is OK
    assert len(result.body) == MB


@functools.cache
def bomb(coding: str) -> bytes:
    zeros = b"\0" * (50 * MB)
    if coding == "gzip":
        return gzip.compress(zeros, compresslevel=9, mtime=0)
    return zlib.compress(zeros, 9)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compression_bomb_stops_at_the_cap_in_bounded_memory(
    feed_server: FeedServer, coding: str
) -> None:
    body = bomb(coding)  # ~50 KB on the wire, 50 MB once inflated
    feed_server.route("/bomb", send_encoded(body, coding))
    tracemalloc.start()
    try:
        result = do_fetch(feed_server.url("/bomb"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status is ERROR
    assert result.error == f"body larger than 1 MB cap once decompressed ({coding})"
    # Inflating it all would allocate 50 MB; bounded inflation holds about the 1 MB cap.
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB"


def test_compressed_body_over_the_cap(feed_server: FeedServer) -> None:
    noise = os.urandom(2 * MB)  # does not compress
    feed_server.set("/noise", noise, gzip=True)
    result = do_fetch(feed_server.url("/noise"))
    assert result.status is ERROR
    assert result.error is not None
    assert result.error.startswith("compressed (gzip) body larger than 1 MB cap")


def test_gzip_body_is_decoded(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED, gzip=True)
    result = do_fetch(feed_server.url("/feed.xml"))
    assert result.status is OK
    assert result.body == FEED.encode()
    assert "content-encoding" not in result.headers
    assert "content-length" not in result.headers


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", raw_deflate),  # what some servers send instead
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("identity", bytes),
    ],
    ids=["zlib-deflate", "raw-deflate", "x-gzip", "upper-case", "identity"],
)
def test_other_encodings_are_decoded(
    feed_server: FeedServer, encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    feed_server.route("/feed.xml", send_encoded(compress(FEED.encode()), encoding))
    result = do_fetch(feed_server.url("/feed.xml"))
    assert result.status is OK, result.error
    assert result.body == FEED.encode()


def test_multi_member_gzip_is_decoded_whole(feed_server: FeedServer) -> None:
    body = gzip.compress(b"<rss>") + gzip.compress(b"</rss>")
    feed_server.route("/feed.xml", send_encoded(body, "gzip"))
    result = do_fetch(feed_server.url("/feed.xml"))
    assert result.body == b"<rss></rss>"


def test_corrupt_gzip_is_a_decompression_error(feed_server: FeedServer) -> None:
    feed_server.route("/bad", send_encoded(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip"))
    result = do_fetch(feed_server.url("/bad"))
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("decompression failed (gzip)")


def test_truncated_gzip_is_a_decompression_error(feed_server: FeedServer) -> None:
    feed_server.route("/cut", send_encoded(gzip.compress(FEED.encode())[:-12], "gzip"))
    result = do_fetch(feed_server.url("/cut"))
    assert result.status is ERROR
    assert result.error == "decompression failed (gzip): the compressed body is cut short"


def test_unknown_content_encoding_is_refused(feed_server: FeedServer) -> None:
    feed_server.route("/br", send_encoded(b"\x0b\x02\x80hello\x03", "br"))
    result = do_fetch(feed_server.url("/br"))
    assert result.status is ERROR
    assert result.error is not None and "Content-Encoding 'br'" in result.error


ABC = b"abc" * 1000


@pytest.mark.parametrize(
    ("coding", "body", "expected"),
    [
        ("gzip", gzip.compress(ABC) + gzip.compress(b"xyz"), ABC + b"xyz"),
        ("gzip", gzip.compress(ABC) + b"\0\0\0\0", ABC),  # zero padding after the stream
        ("gzip", gzip.compress(ABC) + b"<html>junk", ABC),
        ("deflate", zlib.compress(ABC) + b"xyz", ABC),
        ("deflate", raw_deflate(ABC), ABC),
        ("deflate", zlib.compress(ABC), ABC),
        ("identity", ABC, ABC),
    ],
    ids=["gzip-members", "gzip-padding", "gzip-junk", "zlib-trailing", "raw", "zlib", "identity"],
)
def test_decoder_is_indifferent_to_chunk_boundaries(
    coding: str, body: bytes, expected: bytes
) -> None:
    for size in (1, 2, 7, len(body)):
        decoder = _BoundedDecoder(coding, MB)
        for start in range(0, len(body), size):
            decoder.feed(body[start : start + size])
        assert decoder.finish() == expected, f"chunks of {size}"


def test_decoder_stops_inflating_once_past_the_cap() -> None:
    decoder = _BoundedDecoder("gzip", 1000)
    with pytest.raises(_Failed, match="larger than 1000 bytes cap"):
        decoder.feed(gzip.compress(b"\0" * 1_000_000))
    assert decoder._z is not None and decoder._z.unconsumed_tail  # input left unread
    assert len(decoder._out) <= 1000


# -- redirects ---------------------------------------------------------------------


def test_permanent_redirect_chain_sets_moved_to(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", feed_server.url("/b"), status=301)
    feed_server.redirect("/b", "/c", status=308)  # relative Location
    feed_server.set("/c", FEED)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is OK
    assert result.moved_to == feed_server.url("/c")
    assert result.final_url == feed_server.url("/c")
    assert result.url == feed_server.url("/a")
    assert result.headers["content-location"] == feed_server.url("/c")
    assert [r.path for r in feed_server.requests] == ["/a", "/b", "/c"]


def test_temporary_hop_anywhere_means_no_moved_to(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/b", status=301)
    feed_server.redirect("/b", "/c", status=302)
    feed_server.set("/c", FEED)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is OK
    assert result.moved_to is None
    assert result.final_url == feed_server.url("/c")


@pytest.mark.parametrize("status", [302, 303, 307])
def test_single_temporary_redirect(feed_server: FeedServer, status: int) -> None:
    feed_server.redirect("/a", "/c", status=status)
    feed_server.set("/c", FEED)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is OK and result.moved_to is None


def test_permanent_redirect_to_an_error_does_not_move_the_feed(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/nowhere", status=301)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is ERROR
    assert result.http_status == 404
    assert result.moved_to is None
    assert result.final_url == feed_server.url("/nowhere")


def test_permanent_redirect_then_304(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/c", status=301)
    feed_server.set("/c", FEED, etag='"v1"')
    result = do_fetch(feed_server.url("/a"), Validators(etag='"v1"'))
    assert result.status is FetchStatus.NOT_MODIFIED
    assert result.moved_to == feed_server.url("/c")


def test_redirect_loop_is_an_error(feed_server: FeedServer) -> None:
    feed_server.redirect("/l1", "/l2", status=302)
    feed_server.redirect("/l2", "/l1", status=302)
    result = do_fetch(feed_server.url("/l1"))
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("redirect loop: ")
    assert feed_server.hits("/l1") + feed_server.hits("/l2") == FAST.max_redirects + 1


def test_too_many_redirects(feed_server: FeedServer) -> None:
    for n in range(7):
        feed_server.redirect(f"/r{n}", f"/r{n + 1}", status=301)
    feed_server.set("/r7", FEED)
    result = do_fetch(feed_server.url("/r0"), limits=replace(FAST, max_redirects=5))
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("too many redirects (more than 5)")
    assert feed_server.hits("/r6") == 0


def test_exactly_max_redirects_is_fine(feed_server: FeedServer) -> None:
    for n in range(3):
        feed_server.redirect(f"/r{n}", f"/r{n + 1}", status=301)
    feed_server.set("/r3", FEED)
    result = do_fetch(feed_server.url("/r0"), limits=replace(FAST, max_redirects=3))
    assert result.status is OK
    assert result.moved_to == feed_server.url("/r3")


def test_zero_redirects_allowed(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/c", status=301)
    feed_server.set("/c", FEED)
    result = do_fetch(feed_server.url("/a"), limits=replace(FAST, max_redirects=0))
    assert result.status is ERROR
    assert feed_server.hits("/c") == 0


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://example.org/feed", "javascript:alert(1)"]
)
def test_redirect_to_a_non_http_url_is_refused(feed_server: FeedServer, target: str) -> None:
    feed_server.redirect("/a", target, status=301)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is ERROR
    assert result.error is not None and "redirected to" in result.error
    assert result.moved_to is None


def test_redirect_with_an_unusable_location(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "http://[::1", status=301)
    result = do_fetch(feed_server.url("/a"))
    assert result.status is ERROR
    assert result.error is not None and "location" in result.error.lower()


def test_any_client_gets_only_encodings_we_decode(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)

    async def go() -> FetchResult:
        client = FeedClient(timeout=httpx.Timeout(5.0), headers={"Accept-Encoding": "br, zstd"})
        async with client:
            return await fetch(client, feed_server.url("/feed.xml"), Validators(), FAST)

    assert asyncio.run(go()).status is OK
    assert feed_server.last_request().headers["accept-encoding"] == "gzip, deflate"


# -- URLs and secrets --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/feed.xml",
        "javascript:alert(1)",
        "example.org/feed.xml",
        "http://",
        "",
    ],
)
def test_non_http_url_is_refused_without_a_request(url: str) -> None:
    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was made to {request.url}")

    async def go() -> FetchResult:
        transport = httpx.MockTransport(no_network)
        async with FeedClient(timeout=httpx.Timeout(5.0), transport=transport) as client:
            return await fetch(client, url, Validators(), FAST)

    result = asyncio.run(go())
    assert result.status is ERROR
    assert result.error
    assert result.url == url


def test_credentials_never_appear_in_errors(feed_server: FeedServer) -> None:
    feed_server.redirect("/l1", "/l2?token=hunter2", status=302)
    feed_server.redirect("/l2", "/l1", status=302)
    url = feed_server.url("/l1").replace("http://", "http://alice:s3cret@") + "?token=hunter2"
    result = do_fetch(url)
    assert result.status is ERROR
    assert result.error is not None and result.error.startswith("redirect loop")
    assert "s3cret" not in result.error and "hunter2" not in result.error
    assert "alice" not in result.error


def test_credentials_are_not_passed_on_as_content_location(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml").replace("http://", "http://alice:s3cret@")
    result = do_fetch(url)
    assert result.status is OK
    assert result.headers["content-location"] == feed_server.url("/feed.xml")
    # The userinfo still authenticates the request itself.
    assert feed_server.last_request().headers["authorization"].startswith("Basic ")


def test_credentials_in_the_url_are_sent_as_basic_auth(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    url = feed_server.url("/feed.xml").replace("http://", "http://alice%40corp:s3cr%3At@")
    assert do_fetch(url).status is OK
    sent = feed_server.last_request().headers["authorization"]
    assert sent == "Basic " + base64.b64encode(b"alice@corp:s3cr:t").decode()


def test_a_redirect_to_another_host_drops_the_credentials(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", FEED)
    # Same server, other name: the credentials were written for 127.0.0.1 only.
    elsewhere = feed_server.url("/feed.xml").replace("127.0.0.1", "localhost")
    feed_server.redirect("/old.xml", elsewhere, status=301)
    url = feed_server.url("/old.xml").replace("http://", "http://alice:s3cret@")
    assert do_fetch(url).status is OK
    first, second = feed_server.requests
    assert first.headers["authorization"].startswith("Basic ")
    assert second.path == "/feed.xml" and "authorization" not in second.headers


# -- proxies -----------------------------------------------------------------------


def test_the_proxy_the_environment_names_is_used(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The feed server plays the proxy: a proxied GET names the whole URL in its request line.
    feed_server.set("/feed.xml", FEED)
    monkeypatch.setenv("HTTP_PROXY", feed_server.base_url)
    result = do_fetch("http://feeds.example.invalid/feed.xml")
    assert result.status is OK, result.error
    assert feed_server.last_request().target == "http://feeds.example.invalid/feed.xml"


def test_no_proxy_hosts_are_fetched_directly(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_server.set("/feed.xml", FEED)
    with socket.socket() as dead:  # bound, never listening: a proxied GET would be refused
        dead.bind(("127.0.0.1", 0))
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead.getsockname()[1]}")
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        result = do_fetch(feed_server.url("/feed.xml"))
    assert result.status is OK, result.error
    assert feed_server.last_request().target == "/feed.xml"


def test_a_proxy_that_cannot_be_used_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy.example.invalid:21")
    result = do_fetch("https://feeds.example.invalid/feed.xml")
    assert result.status is ERROR
    assert result.error is not None and "cannot use the proxy" in result.error


def test_redact_url() -> None:
    text = "see https://bob:pw@host.example:8443/a/b?token=x#frag and http://plain.example/feed"
    assert redact_url(text) == (
        "see https://host.example:8443/a/b?…#frag and http://plain.example/feed"
    )


# -- many at once ------------------------------------------------------------------


def test_concurrent_fetches_share_a_small_pool(feed_server: FeedServer) -> None:
    for n in range(20):
        feed_server.set(f"/f{n}", rss([{"title": f"item {n}", "guid": str(n)}]), delay=0.02)

    async def go() -> list[FetchResult]:
        async with make_client(FAST, max_connections=3) as client:
            return await asyncio.gather(
                *(fetch(client, feed_server.url(f"/f{n}"), Validators(), FAST) for n in range(20))
            )

    results = asyncio.run(go())
    assert [r.status for r in results] == [OK] * 20
    assert all(f"item {n}".encode() in r.body for n, r in enumerate(results))


# -- limits and Retry-After --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_bytes": -1},
        {"max_bytes": 1.5},
        {"deadline": 0},
        {"deadline": float("inf")},
        {"deadline": float("nan")},
        {"connect_timeout": -1},
        {"read_timeout": 0},
        {"max_redirects": -1},
        {"max_redirects": True},
        {"deadline": "30"},
    ],
)
def test_fetch_limits_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="FetchLimits"):
        FetchLimits(**kwargs)  # type: ignore[arg-type]


def test_make_client_refuses_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        make_client(FAST, max_connections=0)


NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("1.5", 1.5),
        ("Sat, 01 Mar 2025 12:10:00 GMT", 600.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past
        ("Saturday, 01-Mar-25 12:01:00 GMT", 60.0),  # RFC 850 form
        ("Sat Mar  1 12:00:30 2025", 30.0),  # asctime form, no zone: UTC
        (None, None),
        ("", None),
        ("soon", None),
        ("12 minutes", None),
        ("9" * 400, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_with_naive_now() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Sat, 01 Mar 2025 12:10:00 GMT", naive) == 600.0
