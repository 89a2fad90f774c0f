"""XML sitemaps and news sitemaps as sources; new pages fetched once, bounded."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_feeds
from monitor.errors import ConfigErrors, FeedParseError
from monitor.models import Feed
from monitor.rules import RuleSet, load_rules
from monitor.sources.html import describe_page
from monitor.sources.sitemap import parse_sitemap, slug_title, url_filter
from monitor.store import Store
from tests.feedserver import FeedServer
from tests.support import poll_once, write_rules_dir

DATA = Path(__file__).parent / "data" / "sitemap"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CAP = 10 * 1024 * 1024
HTML = "text/html; charset=utf-8"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_news_sitemap_urls_titles_and_dates() -> None:
    urls = parse_sitemap(
        data("news_sitemap.xml"), "https://ministry.example/n.xml", NOW, max_bytes=CAP
    )
    assert [u.loc for u in urls] == [
        "https://ministry.example/press/2026/11/ai-safety-network-launch",
        "https://ministry.example/press/2026/11/budget-statement",
    ]
    assert urls[0].title == "Ministry joins the international network of AI safety institutes"
    assert urls[0].published == datetime(2026, 11, 19, 23, 0, tzinfo=UTC)
    assert urls[1].published == datetime(2026, 11, 19, tzinfo=UTC)


def test_gzip_file_sitemap() -> None:
    zipped = gzip.compress(data("news_sitemap.xml"))
    assert len(parse_sitemap(zipped, "https://m.example/s.xml.gz", NOW, max_bytes=CAP)) == 2
    with pytest.raises(FeedParseError, match="larger than 100 bytes once unzipped"):
        parse_sitemap(zipped, "https://m.example/s.xml.gz", NOW, max_bytes=100)


def test_sitemap_index_names_its_sitemaps() -> None:
    with pytest.raises(FeedParseError) as caught:
        parse_sitemap(
            data("sitemap_index.xml"), "https://m.example/sitemap.xml", NOW, max_bytes=CAP
        )
    assert "sitemap index of 2 sitemaps (https://ministry.example/sitemap-pages.xml" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (data("billion_laughs.xml"), "declares a DTD or entities"),
        (b"<html><body>hi</body></html>", "root element is <html>"),
        (b"<urlset><url>", "not well-formed XML"),
        (b"", "not well-formed XML"),
    ],
)
def test_not_a_sitemap(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError, match=reason):
        parse_sitemap(body, "https://m.example/s.xml", NOW, max_bytes=CAP)


def test_url_filter_and_slug_title() -> None:
    assert url_filter("/news/")("https://a.example/news/x")
    assert not url_filter("/news/")("https://a.example/about")
    assert url_filter(r"/\/20\d\d\/\d\d\//")("https://a.example/news/2026/11/x")
    assert url_filter(None)("anything")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        url_filter("/(unclosed/")
    assert slug_title("https://a.example/news/uk-japan_mou.html") == "uk japan mou"
    assert slug_title("https://a.example/") == "https://a.example/"


def test_describe_page_prefers_og_tags_then_h1_and_first_paragraph() -> None:
    info = describe_page(data("article_memorandum.html"), {})
    assert info.title == "UK and Japan AI Safety Institutes sign memorandum of cooperation"
    assert info.summary.startswith("The two institutes will partner")
    assert info.published == "2026-11-20T09:30:00Z"
    plain = describe_page(data("article_plain.html"), {})
    assert plain.title == "Minister visits research lab"
    assert plain.summary.startswith("The minister visited the national laboratory")


def test_config_sitemap_keys(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - {name: S, url: 'https://s.example/sitemap.xml', type: sitemap, match: /news/,"
        " max_pages: 5}\n"
        "  - {name: T, url: 'https://t.example/sitemap.xml', type: sitemap, match: '/(x/'}\n"
        "  - {name: U, url: 'https://u.example/sitemap.xml', type: sitemap, max_pages: 1000}\n"
        "  - {name: V, url: 'https://v.example/feed', match: news}\n"
        "  - {name: W, url: 'https://w.example/feed', type: gopher}\n",
        "utf-8",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_feeds(path)
    messages = [e.describe() for e in caught.value.errors]
    assert len(messages) == 4
    assert "feed 'T': match /(x/ is not a valid regular expression" in messages[0]
    assert "feed 'U': max_pages must be between 0 and 100" in messages[1]
    assert "feed 'V': 'match' only applies to type: sitemap" in messages[2]
    assert "feed 'W': type 'gopher' is not one of rss, html, sitemap" in messages[3]
    path.write_text(
        "feeds:\n  - {name: S, url: 'https://s.example/sitemap.xml', type: sitemap,"
        " match: /news/, max_pages: 5}\n",
        "utf-8",
    )
    [feed] = load_feeds(path).feeds
    assert (feed.kind, feed.match, feed.max_pages) == ("sitemap", "/news/", 5)


# -- the pipeline ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "m.db")
    yield s
    s.close()


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))


def serve_site(server: FeedServer, sitemap: str) -> None:
    text = data(sitemap).decode().replace("{base}", server.base_url)
    server.set("/sitemap.xml", text, content_type="application/xml")
    server.set(
        "/news/2026/11/uk-japan-ai-safety-memorandum",
        data("article_memorandum.html"),
        content_type=HTML,
    )
    server.set("/news/2026/11/minister-visits-lab", data("article_plain.html"), content_type=HTML)
    server.set(
        "/news/2026/11/annual-report-published", data("article_plain.html"), content_type=HTML
    )


def test_sitemap_feed_fetches_only_new_pages_within_max_pages(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    full = data("sitemap.xml").decode()
    memorandum = full[full.index("  <url>\n    <loc>{base}/news/2026/11/uk-japan") :]
    memorandum = memorandum[: memorandum.index("</url>") + len("</url>\n")]
    serve_site(feed_server, "sitemap.xml")
    without = full.replace(memorandum, "").replace("{base}", feed_server.base_url)
    feed_server.set("/sitemap.xml", without, content_type="application/xml")
    feed = Feed(
        "Dept", feed_server.url("/sitemap.xml"), kind="sitemap", match="/news/", max_pages=1
    )

    first = poll_once(feed, store, rules, NOW)
    assert (first.status, first.entries, first.alerts) == ("ok", 2, [])
    # Newest new page first, and only max_pages of them; other hosts never fetched.
    assert feed_server.hits("/news/2026/11/annual-report-published") == 1
    assert feed_server.hits("/news/2026/11/minister-visits-lab") == 0

    feed_server.set(
        "/sitemap.xml", full.replace("{base}", feed_server.base_url), content_type="application/xml"
    )
    second = poll_once(feed, store, rules, NOW + timedelta(minutes=15))
    assert second.new == 1
    [alert] = second.alerts
    assert alert.entry.title == "UK and Japan AI Safety Institutes sign memorandum of cooperation"
    assert alert.entry.summary.startswith("The two institutes will partner")
    assert alert.entry.link == feed_server.url("/news/2026/11/uk-japan-ai-safety-memorandum")
    assert alert.entry.published == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    # Pages already seen are not fetched again.
    assert feed_server.hits("/news/2026/11/annual-report-published") == 1
    assert feed_server.hits("/news/2026/11/minister-visits-lab") == 0
    assert feed_server.hits("/news/2026/11/uk-japan-ai-safety-memorandum") == 1


def test_sitemap_page_that_fails_still_gives_an_entry(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    serve_site(feed_server, "sitemap.xml")
    feed_server.remove("/news/2026/11/uk-japan-ai-safety-memorandum")  # 404
    feed = Feed("Dept", feed_server.url("/sitemap.xml"), kind="sitemap", match="/news/")
    report = poll_once(feed, store, rules, NOW)
    assert report.status == "ok" and report.entries == 3
    rows = store.connection.execute("SELECT title FROM seen ORDER BY title").fetchall()
    assert [r[0] for r in rows] == [
        "Minister visits research lab",
        "Minister visits research lab",
        "uk japan ai safety memorandum",
    ]


def test_sitemap_whose_urls_no_longer_match_is_a_feed_failure(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    serve_site(feed_server, "sitemap.xml")
    feed = Feed("Dept", feed_server.url("/sitemap.xml"), kind="sitemap", match="/press-releases/")
    report = poll_once(feed, store, rules, NOW)
    assert report.status == "error"
    assert report.error is not None and "none of the 6 URLs in the sitemap matches" in report.error
