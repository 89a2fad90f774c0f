"""Tests for monitor.normalize: plain text, ids, dates, and whole feed documents."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.models import Entry, Feed, ParsedFeed, RawEntry
from monitor.normalize import entry_id, normalize_entries, plain_text
from monitor.parse import parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2024, 5, 20, 12, 0, tzinfo=UTC)
FEED = Feed(name="Example source", url="https://feeds.example.test/feed.xml", tags=("gov", "uk"))


def normalize_file(name: str) -> list[Entry]:
    body = (FEEDS / name).read_bytes()
    parsed = parse_feed(body, {"content-type": "application/xml"}, FEED.url)
    return normalize_entries(parsed, FEED, NOW)


def raw(**fields: object) -> RawEntry:
    values: dict[str, object] = {
        "guid": None,
        "link": None,
        "title": "A title",
        "title_type": "text/plain",
        "summary": "",
        "summary_type": "text/html",
        "published": None,
    }
    values.update(fields)
    return RawEntry(**values)  # type: ignore[arg-type]


def one(**fields: object) -> Entry:
    (entry,) = normalize_entries(ParsedFeed(title="T", entries=(raw(**fields),)), FEED, NOW)
    return entry


# --- plain_text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One <b>bold</b> step</p>", "One bold step"),
        ("<p>a</p><p>b</p>", "a b"),  # block elements separate words
        ("line<br>break<br/>here", "line break here"),
        ("x<script>alert('no')</script>y", "xy"),
        ("<style>p { color: red }</style>Styled", "Styled"),
        ("before<script>never closed", "before"),
        ("<!-- a comment -->visible", "visible"),
        ("AT&amp;T &eacute; &#233; &#x1F600;", "AT&T é é 😀"),
        ("AT&T and a bare & sign", "AT&T and a bare & sign"),
        # Entities decode exactly once: double-encoded text stays encoded text.
        ("&amp;lt;b&amp;gt;", "&lt;b&gt;"),
        ("&lt;!channel&gt;", "<!channel>"),
        # In HTML, <!here> is markup (a bogus comment), not text.
        ("<!here> hello", "hello"),
        ("<![if !supportLists]>item<![endif]>", "item"),
        ("&#99999999; stays safe", "\ufffd stays safe"),
        ("  lots \n\n of\t\twhite   space  ", "lots of white space"),
    ],
)
def test_plain_text_from_html(html: str, text: str) -> None:
    assert plain_text(html, "text/html") == text


def test_plain_text_xhtml_is_html() -> None:
    assert plain_text("<div><p>x <b>y</b></p></div>", "application/xhtml+xml") == "x y"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # Plain text is never parsed as markup: what the feed wrote is what we keep.
        ("<!here> <!channel> <b>not bold</b>", "<!here> <!channel> <b>not bold</b>"),
        ("&amp;lt; stays", "&amp;lt; stays"),
        ("a\n\tb\u00a0 c\u2028d", "a b c d"),
    ],
)
def test_plain_text_from_plain(value: str, text: str) -> None:
    assert plain_text(value, "text/plain") == text


@pytest.mark.parametrize("content_type", ["text/plain", "text/html"])
def test_invisible_and_control_characters_removed(content_type: str) -> None:
    value = (
        "A\u202egnp.exe\u202c I\u200bnstitute\u200d \u2066iso\u2069 bell\x07 nul\x00 csi\x9b"
        " bom\ufeff shy\u00adphen tag\U000e0041"
    )
    assert plain_text(value, content_type) == (
        "Agnp.exe Institute iso bell nul csi bom shyphen tag"
    )


def test_plain_text_normalizes_to_nfc() -> None:
    assert plain_text("Se\u0301oul", "text/plain") == "Séoul"


def test_limit_cuts_at_a_word_boundary() -> None:
    text = plain_text("The quick brown fox jumps over the lazy dog", "text/plain", limit=20)
    assert text == "The quick brown fox…"
    assert len(text) <= 20


def test_limit_when_cut_falls_between_words() -> None:
    assert plain_text("alpha beta gamma", "text/plain", limit=11) == "alpha beta…"


def test_limit_hard_cuts_one_long_word() -> None:
    assert plain_text("x" * 50, "text/plain", limit=10) == "x" * 9 + "…"


def test_limit_not_reached() -> None:
    assert plain_text("short", "text/plain", limit=5) == "short"


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        plain_text("abc", limit=0)


# --- entry_id ---------------------------------------------------------------


def test_id_from_guid_is_stripped() -> None:
    assert entry_id(raw(guid="  wire-1 \n"), "https://a.example/x", "t", "s") == "guid:wire-1"


def test_url_guid_is_canonicalised() -> None:
    plain = entry_id(raw(guid="https://News.example.com/?p=7"), None, "t", "s")
    churned = entry_id(raw(guid="https://news.example.com:443/?p=7&utm_source=x#c"), None, "t", "s")
    assert plain == churned == "guid:https://news.example.com/?p=7"


def test_id_from_link_when_no_guid() -> None:
    assert entry_id(raw(guid="  "), "https://a.example/x", "t", "s") == "link:https://a.example/x"


def test_id_from_hash_when_no_guid_and_no_link() -> None:
    folded = "title words\x1fsome summary"
    expected = "sha256:" + hashlib.sha256(folded.encode()).hexdigest()
    assert entry_id(raw(), None, "Title  WORDS", "Some\nsummary") == expected
    # Title and summary are separated: moving a word across does not collide.
    assert entry_id(raw(), None, "ab", "c") != entry_id(raw(), None, "a", "bc")


def test_kinds_cannot_collide() -> None:
    url = "https://a.example/x"
    assert entry_id(raw(guid=url), None, "", "") != entry_id(raw(), url, "", "")


def test_huge_guid_is_hashed() -> None:
    guid = "g" * 10_000
    expected = "guid:sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    assert entry_id(raw(guid=guid), None, "", "") == expected


# --- normalize_entries on records ---------------------------------------------


def test_entry_fields() -> None:
    entry = one(
        guid="g1",
        link="/news/1?utm_source=rss",
        title="<b>Joint</b> statement",
        title_type="text/html",
        summary="<p>Both parties agreed.</p>",
        published=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        categories=("AI", " AI ", "", "Safety\u200b"),
    )
    assert entry == Entry(
        id="guid:g1",
        source="Example source",
        link="https://feeds.example.test/news/1",
        title="Joint statement",
        summary="Both parties agreed.",
        published=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
        published_from_feed=True,
        tags=("gov", "uk"),
        categories=("AI", "Safety"),
    )


def test_base_url_overrides_feed_url() -> None:
    parsed = ParsedFeed(title="T", entries=(raw(link="a/b"),))
    (entry,) = normalize_entries(parsed, FEED, NOW, base_url="https://moved.example/x/feed")
    assert entry.link == "https://moved.example/x/a/b"


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "data:text/html,x", "mailto:a@example.com", "ftp://x/y"]
)
def test_non_web_links_dropped(link: str) -> None:
    entry = one(link=link)
    assert entry.link is None
    assert entry.id.startswith("sha256:")


def test_missing_date_is_now_not_from_feed() -> None:
    entry = one()
    assert (entry.published, entry.published_from_feed) == (NOW, False)


def test_future_date_clamped_to_now() -> None:
    entry = one(published=datetime(2099, 1, 1, tzinfo=UTC))
    assert (entry.published, entry.published_from_feed) == (NOW, True)


def test_slightly_future_date_kept() -> None:
    # Clock skew of hours is normal; only more than a day ahead is clamped.
    soon = NOW + timedelta(hours=20)
    assert one(published=soon).published == soon


def test_dates_are_utc() -> None:
    cest = timezone(timedelta(hours=2))
    entry = one(published=datetime(2024, 5, 1, 11, 0, tzinfo=cest))
    assert entry.published == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert entry.published.tzinfo is UTC


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        normalize_entries(ParsedFeed(title="T", entries=()), FEED, datetime(2024, 5, 20))


def test_empty_title_falls_back_to_summary_then_untitled() -> None:
    long_summary = "word " * 60
    titled = one(title="  ", summary=long_summary)
    assert titled.title.endswith("…") and len(titled.title) <= 100
    assert titled.title.startswith("word word")
    assert one(title="", summary="<p> </p>").title == "(untitled)"


def test_title_and_summary_caps() -> None:
    entry = one(title="title " * 500, summary="<p>" + "summary " * 2_000 + "</p>")
    assert len(entry.title) <= 1_000 and entry.title.endswith("title…")
    assert len(entry.summary) <= 5_000 and entry.summary.endswith("summary…")


def test_first_duplicate_wins() -> None:
    parsed = ParsedFeed(
        title="T",
        entries=(
            raw(guid="x", title="first"),
            raw(guid="y", title="other"),
            raw(guid=" x ", title="second"),
        ),
    )
    assert [e.title for e in normalize_entries(parsed, FEED, NOW)] == ["first", "other"]


def test_ids_stable_across_polls() -> None:
    first = normalize_file("rss20.xml")
    later = normalize_entries(
        parse_feed((FEEDS / "rss20.xml").read_bytes(), {}, FEED.url),
        FEED,
        NOW + timedelta(hours=3),
    )
    assert [e.id for e in first] == [e.id for e in later]


# --- normalize_entries on the sample documents ----------------------------------


def test_rss20_document() -> None:
    first, second, third = normalize_file("rss20.xml")
    assert first.id == "guid:https://news.example.com/?p=1042"
    assert first.link == "https://news.example.com/2024/04/uk-us-ai-safety-mou/?id=42"
    assert first.summary == (
        "The two institutes will share evaluation methods & test frontier models together."
    )
    assert first.categories == ("AI safety", "Partnerships")
    assert first.tags == ("gov", "uk") and first.source == "Example source"
    assert second.id == "guid:https://news.example.com/2024/05/gpai-code-consultation/"
    assert third.link == "https://news.example.com/2024/05/interview-network/"
    assert third.summary == (
        "An interview about the international network of AI safety institutes."
    )


def test_atom_document() -> None:
    first, second = normalize_file("atom10.xml")
    assert first.summary == (
        "A new partnership will see the two institutes collaborate on research."
    )
    assert second.id == "guid:urn:uuid:5d6a8f3e-3c1b-4a7e-9a3c-2b8f0e1d9c44"
    assert second.title == "Frontier AI Trends Report & evaluation results"
    assert second.summary == ("The report summarises evaluation results across frontier models.")


def test_rss091_document_ids_from_links_and_dates_from_now() -> None:
    first, second = normalize_file("rss091.xml")
    assert first.id == "link:http://ministry.example.gov/press/ai-network.html"
    assert second.link == "http://ministry.example.gov/press/seoul-summit.html"
    assert all(e.published == NOW and not e.published_from_feed for e in (first, second))


def test_rdf_document() -> None:
    first, _ = normalize_file("rss10_rdf.xml")
    assert first.published == datetime(2024, 3, 18, 13, 30, tzinfo=UTC)
    assert first.categories == ("AI assurance",)


def test_malformed_document() -> None:
    first, second = normalize_file("malformed.xml")
    assert first.summary == "The framework sets out shared tests for frontier models."
    assert second.title == "Regulators & labs form AI safety consortium"
    assert second.summary == ""


@pytest.mark.parametrize("name", ["latin1.xml", "utf8_bom.xml", "utf16.xml", "no_encoding.xml"])
def test_encoded_documents(name: str) -> None:
    first, second = normalize_file(name)
    assert first.title == "Sécurité de l'IA : la France et le Québec signent un accord"
    assert first.id == "guid:actu-2024-0512"
    assert second.summary == "Réunion à Séoul."


def test_no_guid_no_link_no_date_document() -> None:
    first, second, third = normalize_file("no_guid_no_link_no_date.xml")
    assert first.id.startswith("sha256:") and first.link is None
    assert first.published == NOW and not first.published_from_feed
    # No title: the start of the summary, cut at a word boundary.
    assert second.title == (
        "Untitled item: the working group on AI red-teaming meets again in June to agree terms of"
        " reference…"
    )
    assert len(second.title) <= 100
    assert third.title == "(untitled)" and third.summary == ""
    assert len({first.id, second.id, third.id}) == 3


def test_duplicates_document() -> None:
    entries = normalize_file("duplicates.xml")
    assert [(e.id, e.title) for e in entries] == [
        ("guid:wire-98231", "Singapore and Japan to cooperate on AI safety evaluations"),
        (
            "link:https://wire.example.com/story/industry-working-group",
            "Industry body launches AI safety working group",
        ),
    ]
    assert entries[1].summary == "No guid: identified by its link."


def test_hostile_document() -> None:
    script, mention, double, bidi = normalize_file("hostile.xml")

    assert script.title == "Lab & regulator sign AI safety MoU"
    assert script.link is None  # javascript:
    assert script.summary == "Both sides agreed to test models."

    # text/plain: kept as written; escaping <, >, & is the Slack stage's job.
    assert mention.title == (
        "<!here> <!channel> <@U024BE7LH> URGENT: AI safety pact <script>x</script>"
    )
    assert mention.link is None  # data:
    assert mention.summary == (
        "Plain text that mentions <b>tags</b> and &amp;lt;entities&amp;gt; literally."
    )

    # Decoded once: the double-encoded part stays as entity text.
    assert double.title == "Safety &lt;institutes&gt; <!channel> network"
    assert double.link is None  # mailto:
    assert double.summary == "Double-encoded: &lt;p&gt; stays as text."

    assert bidi.title == "AI safety accord signed fdp.tnemeerga (official)"
    # 20 KB of HTML cut to at most 5,000 characters at a word boundary.
    assert 4_900 < len(bidi.summary) <= 5_000
    assert bidi.summary.endswith("staff.…") or bidi.summary.endswith("…")
    assert "<p>" not in bidi.summary
    assert (bidi.published, bidi.published_from_feed) == (NOW, True)


def test_unparseable_link_is_dropped() -> None:
    assert one(link="http://[::1").link is None
