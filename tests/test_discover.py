"""Discovery against a local site: link tags, common paths, the page itself, suggested selectors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_feeds
from monitor.discover import DiscoveredFeed, DiscoveryError, discover, render_yaml
from monitor.fetch import FetchLimits, make_client
from monitor.models import HtmlSelectors
from tests.feedserver import FeedServer, atom, rss

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMITS = FetchLimits(deadline=5.0, connect_timeout=2.0, read_timeout=2.0)
HTML = "text/html; charset=utf-8"
DATA = Path(__file__).parent / "data"

HOME = """<!doctype html>
<html><head>
<title>Institute</title>
<link rel="alternate" type="application/rss+xml" title="News (RSS)" href="/news/rss.xml">
<link rel="alternate" type="application/atom+xml" title="Speeches" href="speeches.atom">
<link rel="alternate" type="application/feed+json" title="JSON" href="/feed.json">
<link rel="alternate" type="application/rss+xml" title="Gone" href="/missing.xml">
<link rel="alternate" hreflang="fr" href="/fr/">
<link rel="stylesheet" href="/site.css">
</head><body><p>Welcome</p></body></html>
"""


def run_discover(url: str) -> list[DiscoveredFeed]:
    async def go() -> list[DiscoveredFeed]:
        async with make_client(LIMITS) as client:
            return await discover(client, url, LIMITS, now=NOW)

    return asyncio.run(go())


def item(n: int) -> dict[str, object]:
    return {"title": f"Item {n}", "guid": f"g{n}", "link": f"https://i.example/{n}",
            "pubDate": datetime(2026, 11, 20 + n, tzinfo=UTC)}  # fmt: skip


def test_lists_advertised_feeds_and_common_paths(feed_server: FeedServer) -> None:
    feed_server.set("/", HOME, content_type=HTML)
    feed_server.set("/news/rss.xml", rss([item(1), item(2)], title="Institute news"))
    feed_server.set(
        "/speeches.atom",
        atom([{"title": "A speech", "link": "https://i.example/s"}], title="Speeches"),
        content_type="application/atom+xml",
    )
    feed_server.set(
        "/feed.json",
        (DATA / "jsonfeed" / "v1_0.json").read_bytes(),
        content_type="application/feed+json",
    )
    # Not advertised, but at a common path; and an HTML page at another one.
    feed_server.set("/rss.xml", rss([item(3)], title="Everything"))
    feed_server.set("/feed", "<html><body>not a feed</body></html>", content_type=HTML)

    found = run_discover(feed_server.url("/"))
    assert [(f.format, f.title, f.items, f.via) for f in found] == [
        ("RSS", "Institute news", 2, "link tag"),
        ("Atom", "Speeches", 1, "link tag"),
        ("JSON Feed", "Institute updates", 1, "link tag"),
        ("RSS", "Everything", 1, "common path"),
    ]
    assert found[0].url == feed_server.url("/news/rss.xml")
    assert found[0].latest == datetime(2026, 11, 22, tzinfo=UTC)
    assert feed_server.hits("/missing.xml") == 1  # tried, failed, not listed


def test_rendered_yaml_is_valid_feeds_yaml(feed_server: FeedServer, tmp_path: Path) -> None:
    feed_server.set("/", HOME, content_type=HTML)
    feed_server.set("/news/rss.xml", rss([item(1)], title="Institute news"))
    feed_server.set("/rss.xml", rss([item(1)], title="Institute news"))  # same feed twice
    found = run_discover(feed_server.url("/"))
    text = render_yaml(found)
    assert text.startswith(
        "  # RSS (link tag): 1 items, newest 2026-11-21\n  - name: Institute news\n"
    )
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + text, "utf-8")
    feeds = load_feeds(path).feeds
    assert [f.url for f in feeds] == [feed_server.url("/news/rss.xml")]


def test_the_url_may_already_be_a_feed(feed_server: FeedServer) -> None:
    feed_server.set("/feed.xml", rss([item(1)], title="Direct"))
    [found] = run_discover(feed_server.url("/feed.xml"))
    assert (found.title, found.via, found.kind) == ("Direct", "the page itself", "rss")


def test_the_url_may_be_a_sitemap(feed_server: FeedServer) -> None:
    body = (DATA / "sitemap" / "news_sitemap.xml").read_bytes()
    feed_server.set("/news-sitemap.xml", body, content_type="application/xml")
    [found] = run_discover(feed_server.url("/news-sitemap.xml"))
    assert (found.kind, found.items) == ("sitemap", 2)


def test_page_without_feeds_gets_suggested_selectors(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    listing = (DATA / "html" / "institute_news.html").read_bytes()
    feed_server.set("/news/", listing, content_type=HTML)
    [found] = run_discover(feed_server.url("/news/"))
    assert found.kind == "html" and found.items == 3
    assert found.select == HtmlSelectors(
        item="article.news-item", title="h3", link="h3 a@href", date="time@datetime"
    )
    text = render_yaml([found], name="Institute news page")
    assert "type: html" in text and "item: article.news-item" in text
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + text, "utf-8")
    [feed] = load_feeds(path).feeds
    assert feed.select == found.select and feed.name == "Institute news page"


def test_japanese_listing_suggestion(feed_server: FeedServer) -> None:
    feed_server.set(
        "/press/", (DATA / "html" / "japanese_ministry.html").read_bytes(), content_type=HTML
    )
    [found] = run_discover(feed_server.url("/press/"))
    assert found.select is not None and found.select.item == "li.news-list__item"
    assert found.select.date == "span.date" and found.items == 3


def test_page_that_cannot_be_fetched(feed_server: FeedServer) -> None:
    with pytest.raises(DiscoveryError, match="HTTP 404"):
        run_discover(feed_server.url("/nowhere"))


def test_nothing_found_is_an_empty_list(feed_server: FeedServer) -> None:
    feed_server.set("/", "<html><body><p>Hello</p></body></html>", content_type=HTML)
    assert run_discover(feed_server.url("/")) == []
