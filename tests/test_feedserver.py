"""The loopback feed server and the rss()/atom() builders other tests rely on."""

from __future__ import annotations

import gzip
import io
import threading
import time
from datetime import UTC, datetime

import feedparser
import httpx
import pytest

from tests.feedserver import FeedServer, RequestInfo, Responder, atom, http_date, rss

WHEN = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def get(url: str, **headers: str) -> httpx.Response:
    with httpx.Client() as client:
        return client.get(url, headers=headers)


def parse(text: str) -> feedparser.FeedParserDict:
    return feedparser.parse(io.BytesIO(text.encode("utf-8")))


# -- builders ----------------------------------------------------------------------


def test_rss_builds_a_feed_feedparser_reads_cleanly() -> None:
    doc = rss(
        [
            {
                "title": "UK & US sign <AI> pact",
                "link": "https://example.org/a?x=1&y=2",
                "guid": "id-1",
                "description": "<p>Both sides &amp; more</p>",
                "pubDate": WHEN,
                "category": ["policy", "safety"],
                "author": "press@example.org (Press)",
            },
            {"title": "Second", "guid": "https://example.org/b", "guid_is_permalink": True},
            {"title": "No date"},
        ],
        title="Gov & news",
    )
    parsed = parse(doc)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Gov & news"
    first, second, third = parsed.entries
    assert first.title == "UK & US sign <AI> pact"
    assert first.link == "https://example.org/a?x=1&y=2"
    assert first.id == "id-1"
    assert first.summary == "<p>Both sides &amp; more</p>"
    assert first.published_parsed[:5] == (2025, 3, 1, 9, 30)
    assert [t.term for t in first.tags] == ["policy", "safety"]
    assert second.link == "https://example.org/b"  # a permalink guid doubles as the link
    assert "published_parsed" not in third


def test_rss_accepts_a_ready_date_string_and_raw_extra() -> None:
    doc = rss(
        [
            {
                "title": "x",
                "pubDate": "Sat, 01 Mar 2025 09:30:00 +0000",
                "extra": "<comments>https://example.org/c</comments>",
            }
        ]
    )
    entry = parse(doc).entries[0]
    assert entry.published_parsed[:5] == (2025, 3, 1, 9, 30)
    assert entry.comments == "https://example.org/c"


def test_atom_builds_a_feed_feedparser_reads_cleanly() -> None:
    doc = atom(
        [
            {
                "title": "Institutes <partner>",
                "link": "https://example.org/a?x=1&y=2",
                "id": "urn:x:1",
                "summary": "<b>bold</b> & more",
                "updated": WHEN,
                "published": "2025-02-28T08:00:00Z",
                "category": "safety",
                "author": "DSIT",
            },
            {
                "title": "Plain",
                "summary": "a < b",
                "summary_type": "text",
                "link": "https://example.org/p",
            },
        ]
    )
    parsed = parse(doc)
    assert not parsed.bozo, parsed.get("bozo_exception")
    first, second = parsed.entries
    assert first.title == "Institutes <partner>"
    assert first.link == "https://example.org/a?x=1&y=2"
    assert first.id == "urn:x:1"
    assert first.summary == "<b>bold</b> & more"
    assert first.updated_parsed[:5] == (2025, 3, 1, 9, 30)
    assert first.published_parsed[:3] == (2025, 2, 28)
    assert first.tags[0].term == "safety"
    assert first.author == "DSIT"
    assert second.summary == "a < b"
    assert second.id == "https://example.org/p"  # the link stands in for a missing id


def test_http_date() -> None:
    assert http_date(WHEN) == "Sat, 01 Mar 2025 09:30:00 GMT"


# -- serving -----------------------------------------------------------------------


def test_set_serves_and_can_be_replaced(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", "one")
    assert get(feed_server.url("/feed.xml")).text == "one"
    feed_server.set("feed.xml", "two", content_type="text/xml", headers={"X-A": "b"})
    response = get(feed_server.url("feed.xml"))
    assert response.text == "two"
    assert response.headers["content-type"] == "text/xml"
    assert response.headers["x-a"] == "b"
    assert feed_server.hits("/feed.xml") == 2


def test_unknown_and_removed_paths_are_404(feed_server: FeedServer) -> None:
    assert get(feed_server.url("/nope")).status_code == 404
    feed_server.set("/gone-soon", "x")
    feed_server.remove("/gone-soon")
    assert get(feed_server.url("/gone-soon")).status_code == 404


def test_status_and_gzip(feed_server: FeedServer) -> None:
    feed_server.set("/z", "zipped", gzip=True, status=203)
    with httpx.Client() as client, client.stream("GET", feed_server.url("/z")) as response:
        raw = b"".join(response.iter_raw())
    assert response.status_code == 203
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == b"zipped"


def test_etag_and_last_modified_give_304(feed_server: FeedServer) -> None:
    lm = http_date(WHEN)
    feed_server.set("/f", "body", etag='"v1"', last_modified=lm)
    first = get(feed_server.url("/f"))
    assert first.headers["etag"] == '"v1"' and first.headers["last-modified"] == lm
    assert get(feed_server.url("/f"), **{"If-None-Match": '"v1"'}).status_code == 304
    assert get(feed_server.url("/f"), **{"If-None-Match": 'W/"v1", "v0"'}).status_code == 304
    assert get(feed_server.url("/f"), **{"If-None-Match": '"v0"'}).status_code == 200
    assert get(feed_server.url("/f"), **{"If-Modified-Since": lm}).status_code == 304
    later = http_date(WHEN.replace(hour=10))
    assert get(feed_server.url("/f"), **{"If-Modified-Since": later}).status_code == 304
    earlier = http_date(WHEN.replace(hour=8))
    assert get(feed_server.url("/f"), **{"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since when both are sent.
    both = {"If-None-Match": '"v0"', "If-Modified-Since": lm}
    assert get(feed_server.url("/f"), **both).status_code == 200
    not_modified = get(feed_server.url("/f"), **{"If-None-Match": '"v1"'})
    assert not_modified.content == b"" and not_modified.headers["etag"] == '"v1"'


def test_no_validators_means_never_304(feed_server: FeedServer) -> None:
    feed_server.set("/f", "body")
    assert get(feed_server.url("/f"), **{"If-None-Match": "*"}).status_code == 200


def test_redirect(feed_server: FeedServer) -> None:
    feed_server.redirect("/old", "/new", status=308)
    feed_server.set("/new", "here")
    with httpx.Client(follow_redirects=True) as client:
        response = client.get(feed_server.url("/old"))
    assert response.text == "here"
    assert [r.status_code for r in response.history] == [308]


def test_requests_are_recorded_with_lower_case_headers(feed_server: FeedServer) -> None:
    feed_server.set("/f", "x")
    get(feed_server.url("/f?token=abc"), **{"X-Thing": "1"})
    request = feed_server.requests[-1]
    assert request == feed_server.last_request("/f")
    assert (request.method, request.path, request.query) == ("GET", "/f", "token=abc")
    assert request.target == "/f?token=abc"
    assert request.headers["x-thing"] == "1"
    assert feed_server.hits("/f") == feed_server.hits("/f?token=abc") == 1


def test_a_route_on_the_full_target_wins(feed_server: FeedServer) -> None:
    feed_server.set("/f", "any")
    feed_server.set("/f?page=2", "second")
    assert get(feed_server.url("/f?page=2")).text == "second"
    assert get(feed_server.url("/f?page=3")).text == "any"


def test_route_handler_gets_request_and_responder(feed_server: FeedServer) -> None:
    def handler(request: RequestInfo, responder: Responder) -> None:
        responder.send(201, f"hi {request.query}", content_type="text/plain")

    feed_server.route("/h", handler)
    response = get(feed_server.url("/h?x=1"))
    assert (response.status_code, response.text) == (201, "hi x=1")


def test_streamed_response_without_length(feed_server: FeedServer) -> None:
    def stream(_: RequestInfo, responder: Responder) -> None:
        responder.start(200, {"Content-Type": "text/plain"})
        for part in (b"a", b"b", b"c"):
            responder.write(part)

    feed_server.route("/s", stream)
    assert get(feed_server.url("/s")).content == b"abc"


def test_dropped_connection_is_seen_by_the_client(feed_server: FeedServer) -> None:
    feed_server.route("/drop", lambda _, responder: responder.drop())
    with pytest.raises(httpx.TransportError):
        get(feed_server.url("/drop"))


def test_delay(feed_server: FeedServer) -> None:
    feed_server.set("/slow", "x", delay=0.2)
    started = time.monotonic()
    assert get(feed_server.url("/slow")).text == "x"
    assert time.monotonic() - started >= 0.2


def test_stop_wakes_waiting_handlers_and_closes_connections() -> None:
    waiting = threading.Event()
    woke = threading.Event()

    def hang(_: RequestInfo, responder: Responder) -> None:
        waiting.set()
        if not responder.wait(60):
            woke.set()

    server = FeedServer().start()
    server.route("/hang", hang)
    failure: list[BaseException] = []

    def client() -> None:
        try:
            get(server.url("/hang"))
        except httpx.HTTPError as exc:
            failure.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    assert waiting.wait(5)
    started = time.monotonic()
    server.stop()
    thread.join(5)
    assert woke.wait(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert failure  # the client saw its connection end, it did not hang


def test_context_manager_and_restart_guard() -> None:
    with FeedServer() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.url("x") == server.base_url + "/x"
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(RuntimeError):
        _ = server.base_url
