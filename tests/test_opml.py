"""OPML import and export: feed-reader files in, a round trip for every kind of source."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import dump_feeds, load_feeds
from monitor.models import Feed, HtmlSelectors
from monitor.opml import OpmlError, export_opml, parse_opml

READER_EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>Subscriptions in a feed reader</title></head>
  <body>
    <outline text="Government" title="Government">
      <outline text="UK" title="UK">
        <outline type="rss" text="GOV.UK AI Security Institute" title="GOV.UK AI Security Institute"
          xmlUrl="https://www.gov.uk/government/organisations/ai-security-institute.atom"
          htmlUrl="https://www.gov.uk/government/organisations/ai-security-institute"/>
      </outline>
      <outline type="rss" text="NIST news" xmlUrl="https://www.nist.gov/news-events/news/rss.xml"
        category="/Standards,/US"/>
    </outline>
    <outline type="rss" text="Tech &amp; policy" title="Ars Technica AI"
      xmlUrl="https://arstechnica.com/ai/feed/"/>
    <outline type="rss" text="Ars again" xmlUrl="https://arstechnica.com/ai/feed/"/>
    <outline type="rss" text="NIST news" xmlUrl="https://example.org/other-nist.xml"/>
    <outline type="rss" text="Bad scheme" xmlUrl="javascript:alert(1)"/>
    <outline text="A folder with nothing in it"/>
  </body>
</opml>
"""


def test_import_a_feed_reader_file() -> None:
    result = parse_opml(READER_EXPORT)
    assert [(f.name, f.tags) for f in result.feeds] == [
        ("GOV.UK AI Security Institute", ("government", "uk")),
        ("NIST news", ("government", "standards", "us")),
        ("Ars Technica AI", ()),
        ("NIST news (2)", ()),
    ]
    assert result.feeds[0].url.endswith("/ai-security-institute.atom")
    assert result.feeds[0].kind == "rss" and result.feeds[0].interval == timedelta(minutes=15)
    assert result.skipped == (
        "'Ars again': same url as an earlier outline",
        "'Bad scheme': url 'javascript:alert(1)' must start with http:// or https://",
    )


FEEDS = [
    Feed("Plain RSS", "https://a.example/feed.xml", tags=("news", "us")),
    Feed("Hourly", "https://b.example/atom", interval=timedelta(hours=1, minutes=30)),
    Feed(
        "Institute news",
        "https://aisi.example/news/",
        tags=("government",),
        kind="html",
        select=HtmlSelectors(item="article.news-item", link="h3 a@href", date="time@datetime"),
        timezone="Asia/Tokyo",
        date_order="mdy",
    ),
    Feed("Ministry sitemap", "https://m.example/sitemap.xml", kind="sitemap", match="/news/",
         max_pages=3),
]  # fmt: skip


def test_round_trip_keeps_every_kind_of_source() -> None:
    exported = export_opml(FEEDS)
    assert exported.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert b'type="rss" xmlUrl="https://a.example/feed.xml"' in exported
    assert b'type="link" url="https://aisi.example/news/"' in exported
    again = parse_opml(exported)
    assert again.skipped == ()
    assert list(again.feeds) == FEEDS


def test_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + dump_feeds(FEEDS), "utf-8")
    assert list(load_feeds(path).feeds) == FEEDS


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<rss/>", "the root element is <rss>"),
        (b"<opml><head/></opml>", "no <body>"),
        (b"<opml", "not well-formed XML"),
        (
            b'<!DOCTYPE opml [<!ENTITY x "xxxxxxxxxx">]><opml><body>&x;</body></opml>',
            "declares a DTD or entities",
        ),
    ],
)
def test_not_opml(data: bytes, reason: str) -> None:
    with pytest.raises(OpmlError, match=reason):
        parse_opml(data)
