"""JSON Feed 1.0 and 1.1: detection by content type or content, items as entries, the pipeline."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import FeedParseError
from monitor.fetch import FetchLimits, make_client
from monitor.models import Feed
from monitor.pipeline import PollSettings, poll_feed
from monitor.rules import load_rules
from monitor.sources import parse_entries
from monitor.sources.jsonfeed import is_json_feed, looks_like_json, parse_json_feed
from monitor.store import Store
from tests.feedserver import FeedServer
from tests.support import write_rules_dir

DATA = Path(__file__).parent / "data" / "jsonfeed"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEED = Feed("Lab news", "https://lab.example/feed.json")


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_json_feed_1_1_items_become_entries() -> None:
    headers = {"Content-Type": "application/feed+json"}
    entries, warning = parse_entries(body("v1_1.json"), headers, FEED.url, FEED, NOW)
    assert warning == "1 item(s) were not JSON objects"
    first, second, third = entries
    assert first.id == "guid:https://lab.example/news/aisi-partnership"
    assert first.link == "https://lab.example/news/aisi-partnership"  # resolved, utm_ removed
    assert first.summary == "A memorandum of understanding covering joint evaluations."
    assert first.published == datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    assert first.categories == ("policy", "safety")
    # A numeric id, external_url, content_html as summary, date_modified as the date.
    assert second.id == "guid:42"
    assert second.link == "https://press.example/story"
    assert second.summary == "A story elsewhere & more."
    assert second.published == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
    # Untrusted text stays plain text; a bad date means first-seen time.
    assert third.title == "<!channel> An item without a date"
    assert third.summary == "Plain <text> stays as written."
    assert third.published == NOW and not third.published_from_feed


def test_json_feed_1_0_detected_by_content_with_a_generic_content_type() -> None:
    headers = {"content-type": "text/plain"}
    entries, warning = parse_entries(body("v1_0.json"), headers, FEED.url, FEED, NOW)
    assert warning is None
    [entry] = entries
    assert entry.title == "Institute signs memorandum of understanding with Canada"
    assert entry.id == "guid:2026-11-20-mou"


def test_detection() -> None:
    assert looks_like_json(b'  {"version": 1}', {})
    assert looks_like_json(b"[]", {"Content-Type": "application/json"})
    # Servers mislabel XML feeds: a body starting with "<" is never JSON.
    assert not looks_like_json(b"<?xml version='1.0'?><rss/>", {"content-type": "application/json"})
    assert is_json_feed(body("v1_1.json")) and is_json_feed(body("v1_0.json"))
    assert not is_json_feed(body("not_jsonfeed.json")) and not is_json_feed(b"{nope")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"status": "ok"}', "not a feed: JSON without a jsonfeed.org 'version'"),
        (b"{broken", "not a feed: invalid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1"}', "needs an 'items' list"),
        (b"\xff\xfe{", "not a feed: invalid JSON"),
    ],
)
def test_json_that_is_not_a_json_feed_is_a_parse_error(data: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError) as caught:
        parse_json_feed(data, FEED.url)
    assert reason in caught.value.reason


def test_rss_still_goes_to_feedparser() -> None:
    rss = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>Hello</title><link>https://a.example/1</link></item></channel></rss>"
    )
    entries, _ = parse_entries(rss, {"content-type": "application/rss+xml"}, FEED.url, FEED, NOW)
    assert [e.title for e in entries] == ["Hello"]


def test_json_feed_through_the_pipeline(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set("/feed.json", body("v1_0.json"), content_type="application/feed+json")
    feed = Feed("Institute", feed_server.url("/feed.json"))
    rules = load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))
    store = Store.open(tmp_path / "m.db")
    limits = FetchLimits(deadline=5.0)

    async def go() -> None:
        async with make_client(limits) as client:
            report = await poll_feed(
                feed,
                client=client,
                store=store,
                rules=rules,
                settings=PollSettings(limits=limits),
                now=lambda: NOW,
            )
        assert (report.status, report.entries) == ("ok", 1)

    try:
        asyncio.run(go())
    finally:
        store.close()
