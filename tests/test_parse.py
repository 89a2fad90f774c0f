"""Tests for monitor.parse.parse_feed, driven by the documents in data/feeds/."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import FeedParseError, MonitorError
from monitor.models import ParsedFeed
from monitor.parse import parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
URL = "https://feeds.example.test/feed.xml"
XML = {"Content-Type": "application/xml"}

FRENCH_TITLES = [
    "Sécurité de l'IA : la France et le Québec signent un accord",
    "Réseau international des instituts de sécurité de l'IA",
]


def parse(name: str, headers: dict[str, str] | None = None, url: str = URL) -> ParsedFeed:
    return parse_feed((FEEDS / name).read_bytes(), XML if headers is None else headers, url)


def test_rss20() -> None:
    feed = parse("rss20.xml", {"Content-Type": "application/rss+xml; charset=utf-8"})
    assert feed.title == "Example Tech Policy Wire"
    assert not feed.bozo and feed.bozo_reason is None
    first, second, third = feed.entries
    assert first.guid == "https://news.example.com/?p=1042&utm_campaign=feed"
    assert first.link == (
        "https://news.example.com/2024/04/uk-us-ai-safety-mou/?utm_source=rss&utm_medium=feed&id=42"
    )
    assert first.title == "UK and US AI Safety Institutes sign memorandum on joint model testing"
    assert first.title_type == "text/plain"
    # The description wins over content:encoded; both are HTML.
    assert first.summary.startswith("<p>The two institutes will <strong>share</strong>")
    assert first.summary_type == "text/html"
    # +0100 converted to UTC.
    assert first.published == datetime(2024, 4, 2, 9, 15, tzinfo=UTC)
    assert first.categories == ("AI safety", "Partnerships")
    assert second.guid == second.link == "https://news.example.com/2024/05/gpai-code-consultation/"
    assert second.categories == ("EU",)
    # EST is -0500.
    assert third.published == datetime(2024, 5, 14, 14, 0, tzinfo=UTC)


def test_content_only_entry_keeps_html_type() -> None:
    # feedparser copies content:encoded into ``summary`` without a summary_detail;
    # the HTML type must survive or the markup would pass as plain text.
    third = parse("rss20.xml").entries[2]
    assert third.summary.startswith("<p>An interview about the <em>international network</em>")
    assert third.summary_type == "text/html"


def test_rss10_rdf() -> None:
    feed = parse("rss10_rdf.xml")
    assert feed.title == "Example Research Council News"
    first, second = feed.entries
    assert first.guid == "https://research.example.org/news/ai-assurance-programme"
    assert first.link == "https://research.example.org/news/ai-assurance-programme"
    assert first.published == datetime(2024, 3, 18, 13, 30, tzinfo=UTC)
    assert first.categories == ("AI assurance",)
    assert second.published == datetime(2024, 3, 20, 9, 0, tzinfo=UTC)


def test_rss091_has_no_guid_and_no_dates() -> None:
    feed = parse("rss091.xml")
    assert feed.title == "Example Ministry Press Office"
    assert [e.title for e in feed.entries] == [
        "Ministry joins international AI safety institutes network",
        "Statement on the AI Seoul Summit",
    ]
    assert all(e.guid is None and e.published is None for e in feed.entries)
    assert feed.entries[1].link == "http://ministry.example.gov:80/press/seoul-summit.html"


def test_atom10() -> None:
    feed = parse("atom10.xml", {"content-type": "application/atom+xml"})
    assert feed.title == "AI Security Institute - Activity on EXAMPLE.GOV.UK"
    first, second = feed.entries
    # xml:base resolves the relative alternate link.
    assert first.link == (
        "https://www.example.gov.uk/government/news/"
        "ai-security-institute-and-canada-partner-on-ai-safety"
    )
    # published wins over updated.
    assert first.published == datetime(2024, 5, 14, 8, 0, tzinfo=UTC)
    assert first.summary_type == "text/html"
    assert first.categories == ("AI safety", "International")
    assert second.guid == "urn:uuid:5d6a8f3e-3c1b-4a7e-9a3c-2b8f0e1d9c44"
    assert second.title == "Frontier AI Trends Report &amp; evaluation results"
    assert second.title_type == "text/html"
    # Only <updated>: used as the date.
    assert second.published == datetime(2024, 5, 10, 16, 45, tzinfo=UTC)
    assert second.summary == (
        "<p>The report summarises <b>evaluation results</b> across frontier models.</p>"
    )
    assert second.summary_type == "application/xhtml+xml"


def test_malformed_feed_with_entries_is_usable() -> None:
    feed = parse("malformed.xml")
    assert feed.bozo
    assert feed.bozo_reason is not None and "not well-formed" in feed.bozo_reason
    assert len(feed.bozo_reason) <= 200
    assert [e.title for e in feed.entries] == [
        "G7 partners agree AI safety testing framework",
        "Regulators & labs form AI safety consortium",
    ]
    assert feed.entries[1].guid == "https://blog.example.net/?p=78"


def test_bad_character_reference_is_a_parse_error() -> None:
    # feedparser raises ValueError here instead of setting bozo.
    with pytest.raises(FeedParseError) as caught:
        parse("bad_charref.xml")
    assert str(caught.value).startswith(f"{URL}: the feed could not be parsed: ValueError")
    assert caught.value.url == URL
    assert isinstance(caught.value, MonitorError)
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    ("name", "content_type", "reason"),
    [
        ("html_page.html", "text/html; charset=utf-8", "not a feed: looks like HTML"),
        ("json.json", "application/json", "not a feed: looks like JSON"),
    ],
)
def test_not_a_feed(name: str, content_type: str, reason: str) -> None:
    with pytest.raises(FeedParseError) as caught:
        parse(name, {"Content-Type": content_type})
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "not a feed: the body is empty"),
        (b"  \r\n ", "not a feed: the body is empty"),
        (
            b"\x00\x01\x02 binary junk",
            "not a feed: no RSS or Atom content found (SAXParseException",
        ),
        (b'<?xml version="1.0"?><sitemap><url/></sitemap>', "not a feed: no RSS or Atom root"),
    ],
)
def test_not_a_feed_inline(body: bytes, reason: str) -> None:
    with pytest.raises(FeedParseError) as caught:
        parse_feed(body, XML, URL)
    assert caught.value.reason.startswith(reason)


def test_valid_feed_without_entries_is_fine() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet week</title>
    <link>https://example.org/</link><description>x</description></channel></rss>"""
    assert parse_feed(body, XML, URL) == ParsedFeed(title="Quiet week", entries=())


def test_feed_served_as_text_html_still_parses() -> None:
    feed = parse("rss20.xml", {"Content-Type": "text/html; charset=utf-8"})
    assert feed.bozo  # feedparser complains about the media type ...
    assert len(feed.entries) == 3  # ... but the entries are fine.


def test_no_guid_no_link_no_date() -> None:
    first, second, third = parse("no_guid_no_link_no_date.xml").entries
    assert (first.guid, first.link, first.published) == (None, None, None)
    assert first.title == "Standards body and AI lab consortium agree evaluation benchmark work"
    assert second.title == "" and second.title_type == "text/plain"
    assert second.summary.startswith("<p>Untitled item: the working group on <b>AI red-teaming")
    assert (third.title, third.summary) == ("", "")


def test_duplicates_are_left_to_normalize() -> None:
    entries = parse("duplicates.xml").entries
    assert [e.guid for e in entries] == ["wire-98231", "wire-98231", None, None]


def test_hostile_text_comes_through_untouched() -> None:
    # parse_feed does not clean text; normalize does. These show what it gets.
    script, mention, double, bidi = parse("hostile.xml").entries
    # feedparser's sanitiser has already dropped the <script> from the HTML title.
    assert script.title == "Lab &amp; regulator sign <b>AI safety</b> MoU"
    assert script.title_type == "text/html"
    assert script.link == "javascript:alert(1)"
    assert mention.title.startswith("<!here> <!channel> <@U024BE7LH>")
    assert mention.title_type == "text/plain"
    assert mention.link is not None and mention.link.startswith("data:")
    assert double.title == "Safety &amp;lt;institutes&amp;gt; &lt;!channel&gt; network"
    assert double.link == "mailto:press@aggregator.example.com"
    assert "\u202e" in bidi.title
    assert len(bidi.summary) > 20_000
    assert bidi.published == datetime(2099, 1, 1, tzinfo=UTC)


# --- encodings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("latin1.xml", "application/rss+xml"),  # declared ISO-8859-1, header silent
        ("windows1252.xml", "application/rss+xml"),
        ("no_encoding.xml", "application/rss+xml"),  # UTF-8 is the XML default
        ("no_encoding.xml", "application/rss+xml; charset=utf-8"),
        ("utf8_bom.xml", "application/rss+xml"),
        ("utf8_bom.xml", "application/rss+xml; charset=utf-8"),
        ("utf16.xml", "application/rss+xml"),
        ("latin1.xml", "text/xml"),
    ],
)
def test_encodings_decoded(name: str, content_type: str) -> None:
    feed = parse(name, {"Content-Type": content_type})
    assert feed.title == "Actualités IA - Example Européen"
    expected = list(FRENCH_TITLES)
    if name == "windows1252.xml":
        expected[0] = "Sécurité de l’IA : accord signé – une première"
    assert [e.title for e in feed.entries] == expected
    assert feed.entries[1].summary == "Réunion à Séoul."


@pytest.mark.parametrize("name", ["latin1.xml", "windows1252.xml"])
def test_header_says_utf8_but_document_is_8bit(name: str) -> None:
    # The header wins for application/*+xml (RFC 3023), the bytes are not
    # UTF-8, and feedparser falls back to the declared encoding, flagging bozo.
    feed = parse(name, {"Content-Type": "application/rss+xml; charset=utf-8"})
    assert feed.bozo
    assert feed.bozo_reason is not None and "CharacterEncodingOverride" in feed.bozo_reason
    assert feed.entries[1].title == FRENCH_TITLES[1]


def test_header_keys_are_lower_cased() -> None:
    # feedparser only sees lower-case keys. A Latin-1 body without an XML
    # declaration decodes cleanly only if the header charset reaches it;
    # otherwise feedparser guesses, flags bozo and names "no Content-type".
    body = (FEEDS / "latin1.xml").read_bytes().split(b"\n", 1)[1]
    assert not body.startswith(b"<?xml")
    feed = parse_feed(body, {"Content-Type": "application/rss+xml; charset=ISO-8859-1"}, URL)
    assert not feed.bozo
    assert [e.title for e in feed.entries] == FRENCH_TITLES


def test_document_without_declaration_and_no_charset() -> None:
    # Not UTF-8, nothing declared: feedparser falls back to windows-1252,
    # which is right for Latin-1 text, and flags bozo.
    body = (FEEDS / "latin1.xml").read_bytes().split(b"\n", 1)[1]
    feed = parse_feed(body, {"Content-Type": "text/xml"}, URL)
    assert feed.bozo
    assert [e.title for e in feed.entries] == FRENCH_TITLES


def test_body_is_never_treated_as_a_path_or_url(tmp_path: Path) -> None:
    # feedparser opens a bytes/str argument as a file; parse_feed must not.
    secret = tmp_path / "secret.xml"
    secret.write_bytes((FEEDS / "rss20.xml").read_bytes())
    with pytest.raises(FeedParseError):
        parse_feed(str(secret).encode(), XML, URL)


# --- ids and links ----------------------------------------------------------


RELATIVE = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<link>https://example.org/</link><description>d</description>
<item><title>a</title><guid>item-1</guid><link>/news/a</link></item>
<item><title>b</title><guid>item-2</guid></item>
<item><title>c</title><guid>https://example.org/news/c</guid></item>
<item><title>d</title><guid isPermaLink="false">https://example.org/?p=4</guid></item>
</channel></rss>"""


def test_relative_guid_is_not_resolved_against_the_feed_url() -> None:
    # A server Content-Location, or the feed moving, must not change guids.
    headers = {"Content-Type": "application/rss+xml", "Content-Location": "https://cdn.example/x/"}
    a, b, c, d = parse_feed(RELATIVE, headers, "https://example.org/feeds/main.xml").entries
    assert (a.guid, b.guid) == ("item-1", "item-2")
    # Relative links are resolved against the URL the body came from.
    assert a.link == "https://example.org/news/a"
    # A non-URL guid is not turned into a made-up link.
    assert b.link is None
    # A URL guid with isPermaLink absent is the link, as RSS says.
    assert c.link == "https://example.org/news/c"
    assert d.link is None


ATOM_LINKS = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id>
<entry><id>urn:1</id><title>one</title>
  <link rel="enclosure" href="https://example.org/a.mp3"/>
  <link rel="alternate" href="https://example.org/one"/>
  <updated>2024-05-01T00:00:00Z</updated></entry>
<entry><id>urn:2</id><title>two</title><link rel="related" href="https://example.org/r"/></entry>
</feed>"""


def test_atom_alternate_link_chosen() -> None:
    one, two = parse_feed(ATOM_LINKS, {"content-type": "application/atom+xml"}, URL).entries
    assert one.link == "https://example.org/one"
    assert two.link is None


def test_impossible_date_becomes_none() -> None:
    body = b"""<rss version="2.0"><channel><title>T</title>
    <item><title>a</title><pubDate>Mon, 99 Foo 2024 99:99:99 GMT</pubDate></item>
    <item><title>b</title><pubDate>not a date</pubDate></item>
    </channel></rss>"""
    a, b = parse_feed(body, XML, URL).entries
    assert a.published is None and b.published is None


ATOM03 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#">
  <title>Old Atom 0.3 feed</title>
  <link rel="alternate" type="text/html" href="https://old.example.org/"/>
  <modified>2024-05-02T10:00:00Z</modified>
  <entry>
    <title>Regulator signs cooperation arrangement on AI</title>
    <link rel="alternate" type="text/html" href="https://old.example.org/news/1"/>
    <id>tag:old.example.org,2024:1</id>
    <issued>2024-05-02T09:00:00+02:00</issued>
    <modified>2024-05-02T10:00:00Z</modified>
    <summary type="text/plain">An arrangement on AI testing.</summary>
  </entry>
</feed>"""


def test_atom03() -> None:
    feed = parse_feed(ATOM03, {"content-type": "application/atom+xml"}, URL)
    assert feed.title == "Old Atom 0.3 feed"
    (entry,) = feed.entries
    assert entry.guid == "tag:old.example.org,2024:1"
    assert entry.link == "https://old.example.org/news/1"
    assert entry.published == datetime(2024, 5, 2, 7, 0, tzinfo=UTC)
    assert (entry.summary, entry.summary_type) == ("An arrangement on AI testing.", "text/plain")


def test_unparseable_link_does_not_fail_the_feed() -> None:
    body = b"""<rss version="2.0"><channel><title>T</title>
    <item><title>a</title><link>http://[::1</link></item></channel></rss>"""
    (entry,) = parse_feed(body, XML, URL).entries
    assert entry.link == "http://[::1"
