"""HTML listing pages as sources: selectors, dates in several languages, redesigns, the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_feeds
from monitor.dates import parse_date, zone
from monitor.errors import ConfigErrors, FeedParseError
from monitor.models import Feed, HtmlSelectors
from monitor.rules import RuleSet, load_rules
from monitor.sources import parse_entries
from monitor.sources.html import decode_html, parse_field, selector_problems
from monitor.store import Store
from tests.feedserver import FeedServer
from tests.support import poll_once, write_rules_dir

DATA = Path(__file__).parent / "data" / "html"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HTML = {"content-type": "text/html; charset=utf-8"}

INSTITUTE = HtmlSelectors(
    item="article.news-item",
    title="h3 a",
    link="h3 a@href",
    date="time@datetime",
    summary="p.teaser",
)
JAPANESE = HtmlSelectors(item="ul.news-list li", date="span.date")
LAB = HtmlSelectors(
    item="div.post", title="h2.post__title", link="a.post__link@href", date=".post__date"
)


def page(name: str) -> bytes:
    return (DATA / name).read_bytes()


def html_feed(select: HtmlSelectors, url: str = "https://aisi.example/news/", **kw: object) -> Feed:
    return Feed("Institute news", url, tags=("government",), kind="html", select=select, **kw)  # type: ignore[arg-type]


# -- the listing -----------------------------------------------------------------------


def test_items_become_entries_like_feed_entries() -> None:
    feed = html_feed(INSTITUTE)
    entries, warning = parse_entries(page("institute_news.html"), HTML, feed.url, feed, NOW)
    assert [e.title for e in entries] == [
        "Institute signs frontier model testing agreement with the Japan AI Safety Institute",
        "Institute appoints new director of research",
        "Response to the consultation on <frontier> AI evaluations",
    ]
    first = entries[0]
    # Relative link resolved against the page, tracking parameters gone, id = canonical link.
    assert first.link == (
        "https://aisi.example/news/2026/11/institute-signs-testing-agreement-with-japan"
    )
    assert first.id == "link:" + first.link
    assert first.published == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert first.published_from_feed
    assert first.summary.startswith(
        "The two institutes will run joint pre-deployment evaluations &"
    )
    assert first.source == "Institute news" and first.tags == ("government",)
    # A path-relative link resolves against the page's own directory.
    assert entries[2].link == "https://aisi.example/news/news/2026/11/consultation-response"
    # The item without a link is skipped, and said so.
    assert warning == "1 of 4 items had no link and were skipped"


def test_ids_are_stable_across_polls_and_page_moves() -> None:
    feed = html_feed(INSTITUTE)
    body = page("institute_news.html")
    first, _ = parse_entries(body, HTML, feed.url, feed, NOW)
    later, _ = parse_entries(body, HTML, feed.url, feed, NOW + timedelta(hours=5))
    assert [e.id for e in first] == [e.id for e in later]


def test_redesign_that_breaks_the_selectors_is_a_parse_error() -> None:
    feed = html_feed(INSTITUTE)
    with pytest.raises(FeedParseError) as caught:
        parse_entries(page("institute_news_redesigned.html"), HTML, feed.url, feed, NOW)
    reason = caught.value.reason
    assert "item selector 'article.news-item' matched nothing" in reason
    assert "monitor feeds discover" in reason


def test_items_found_but_link_selector_broken_is_a_parse_error() -> None:
    feed = html_feed(replace(INSTITUTE, link="h4 a@href"))
    with pytest.raises(FeedParseError, match=r"matched 4 element\(s\) but the link selector"):
        parse_entries(page("institute_news.html"), HTML, feed.url, feed, NOW)


def test_date_selector_that_matches_nothing_is_a_warning_not_a_failure() -> None:
    feed = html_feed(replace(INSTITUTE, date="span.when"))
    entries, warning = parse_entries(page("institute_news.html"), HTML, feed.url, feed, NOW)
    assert len(entries) == 3
    assert all(not e.published_from_feed and e.published == NOW for e in entries)
    assert warning is not None and "date selector 'span.when' matched in no item" in warning


def test_japanese_page_dates_and_default_title_and_link() -> None:
    feed = html_feed(JAPANESE, url="https://meti.example/press/2026/11/", timezone="Asia/Tokyo")
    entries, warning = parse_entries(page("japanese_ministry.html"), HTML, feed.url, feed, NOW)
    assert warning is None
    assert entries[0].title == "日英のAIセーフティ・インスティテュートが協力覚書に署名しました"
    # 2026年11月20日 in Tokyo is 15:00 UTC the day before.
    assert entries[0].published == datetime(2026, 11, 19, 15, 0, tzinfo=UTC)
    # Reiwa 8 is 2026.
    assert entries[1].published == datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
    assert entries[2].published == datetime(2026, 11, 18, 6, 0, tzinfo=UTC)
    assert entries[2].link == "https://meti.example/press/2026/11/20261118003.html"


def test_shift_jis_page_is_decoded_from_the_content_type() -> None:
    body = page("japanese_ministry.html").decode("utf-8").replace("charset=utf-8", "")
    feed = html_feed(JAPANESE, url="https://meti.example/press/2026/11/")
    headers = {"content-type": "text/html; charset=Shift_JIS"}
    entries, _ = parse_entries(body.encode("shift_jis"), headers, feed.url, feed, NOW)
    assert entries[1].title == "半導体の供給網に関する調査結果を公表します"


def test_meta_charset_is_used_when_the_header_has_none() -> None:
    body = '<meta charset="windows-1252"><p>café</p>'.encode("cp1252")
    assert "café" in decode_html(body, {"content-type": "text/html"})


def test_relative_dates_and_base_href() -> None:
    feed = html_feed(LAB, url="https://lab.example/blog/")
    entries, _ = parse_entries(page("lab_blog_relative.html"), HTML, feed.url, feed, NOW)
    assert [e.published for e in entries] == [
        NOW - timedelta(days=2),
        NOW - timedelta(hours=3),
        datetime(2026, 10, 25, tzinfo=UTC),  # 25/10/2026, day first
    ]
    assert entries[0].link == "https://lab.example/blog/partnering-with-the-ai-security-institute"
    assert entries[0].title == "Partnering with the AI Security Institute on safety evaluations"


# -- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T09:30:00+09:00", datetime(2026, 11, 20, 0, 30, tzinfo=UTC)),
        ("Fri, 20 Nov 2026 09:30:00 GMT", datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("20 November 2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("November 20th, 2026 3:30 PM", datetime(2026, 11, 20, 15, 30, tzinfo=UTC)),
        ("Nov 20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("Dec 20", datetime(2025, 12, 20, tzinfo=UTC)),  # no year: the latest past one
        ("20. November 2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("20 novembre 2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("20 de noviembre de 2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("20.11.2026", datetime(2026, 11, 20, tzinfo=UTC)),
        ("03/04/2026", datetime(2026, 4, 3, tzinfo=UTC)),
        ("2026/11/20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026年11月20日", datetime(2026, 11, 20, tzinfo=UTC)),
        ("令和元年5月1日", datetime(2019, 5, 1, tzinfo=UTC)),
        ("2026년 11월 20일", datetime(2026, 11, 20, tzinfo=UTC)),
        ("20 Nov 2026 09:00 +0100", datetime(2026, 11, 20, 8, 0, tzinfo=UTC)),
        ("yesterday", NOW - timedelta(days=1)),
        ("an hour ago", NOW - timedelta(hours=1)),
        ("3日前", NOW - timedelta(days=3)),
        ("5時間前", NOW - timedelta(hours=5)),
        ("vor 2 Tagen", NOW - timedelta(days=2)),
        ("il y a 3 heures", NOW - timedelta(hours=3)),
        ("hace 2 semanas", NOW - timedelta(weeks=2)),
        ("2일 전", NOW - timedelta(days=2)),
    ],
)
def test_parse_date(text: str, expected: datetime) -> None:
    assert parse_date(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "soon", "2026", "Page 3 of 12", "x" * 500, "31/02/2026"])
def test_parse_date_gives_none_for_non_dates(text: str) -> None:
    assert parse_date(text, NOW) is None


def test_parse_date_month_first_and_time_zone() -> None:
    assert parse_date("03/04/2026", NOW, order="mdy") == datetime(2026, 3, 4, tzinfo=UTC)
    tokyo = zone("Asia/Tokyo")
    assert parse_date("20 Nov 2026 09:00", NOW, tz=tokyo) == datetime(2026, 11, 20, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus_Mons")


# -- selectors and config --------------------------------------------------------------


def test_field_syntax() -> None:
    assert parse_field("h3 a@href") == parse_field("h3 a @href")
    assert parse_field("h3 a@href").css == "h3 a" and parse_field("h3 a@href").attr == "href"
    assert parse_field("@data-url").css is None
    assert parse_field('a[title="x@y"]').attr is None  # an @ inside a selector is not an attribute


def test_selector_problems() -> None:
    assert selector_problems(INSTITUTE) == []
    problems = selector_problems(HtmlSelectors(item="div[", title="h3 >> a"))
    assert len(problems) == 2 and "select.item 'div['" in problems[0]


def write_feeds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, "utf-8")
    return path


def test_config_reads_html_feeds(tmp_path: Path) -> None:
    path = write_feeds(
        tmp_path,
        """
feeds:
  - name: Institute news
    url: https://aisi.example/news/
    type: html
    timezone: Asia/Tokyo
    date_order: mdy
    select:
      item: article.news-item
      title: h3 a
      link: h3 a@href
      date: time@datetime
""",
    )
    [feed] = load_feeds(path).feeds
    assert feed.kind == "html" and feed.select is not None
    assert feed.select.link == "h3 a@href" and feed.select.summary is None
    assert feed.timezone == "Asia/Tokyo" and feed.date_order == "mdy"


def test_config_reports_bad_selectors_with_file_and_line(tmp_path: Path) -> None:
    path = write_feeds(
        tmp_path,
        """
feeds:
  - name: Fine
    url: https://a.example/feed
  - name: Broken page
    url: https://b.example/news
    type: html
    select:
      item: "div.card["
      colour: red
  - name: No select
    url: https://c.example/news
    type: html
  - name: Wrong place
    url: https://d.example/rss
    select: {item: li}
  - name: Bad zone
    url: https://e.example/rss
    timezone: Asia/Atlantis
""",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_feeds(path)
    messages = [e.describe() for e in caught.value.errors]
    assert messages[0].startswith(f"{path}:9: feed 'Broken page': unknown select key(s) colour")
    assert f"{path}:11: feed 'No select': type: html needs a 'select:'" in messages[1]
    assert "feed 'Wrong place': 'select' only applies to type: html" in messages[2]
    assert "feed 'Bad zone': unknown time zone 'Asia/Atlantis'" in messages[3]


def test_config_reports_invalid_css(tmp_path: Path) -> None:
    path = write_feeds(
        tmp_path,
        "feeds:\n  - name: P\n    url: https://p.example/\n    type: html\n"
        "    select:\n      item: 'div.card['\n",
    )
    with pytest.raises(ConfigErrors, match=r"feeds.yaml:6: feed 'P': select.item 'div.card\['"):
        load_feeds(path)


# -- the pipeline ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "state" / "monitor.db")
    yield s
    s.close()


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))


def test_html_feed_through_the_pipeline(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    listing = page("institute_news.html").decode()
    without_first = listing.replace(
        listing[listing.index("<article") : listing.index("</article>") + len("</article>")], ""
    )
    feed_server.set("/news/", without_first, content_type="text/html; charset=utf-8")
    feed = html_feed(INSTITUTE, url=feed_server.url("/news/"))

    first = poll_once(feed, store, rules, NOW)
    assert (first.status, first.entries, first.alerts) == ("ok", 2, [])

    feed_server.set("/news/", listing, content_type="text/html; charset=utf-8")
    second = poll_once(feed, store, rules, NOW + timedelta(minutes=15))
    assert second.new == 1
    [alert] = second.alerts
    assert alert.entry.title.startswith("Institute signs frontier model testing agreement")
    assert alert.entry.link == feed_server.url(
        "/news/2026/11/institute-signs-testing-agreement-with-japan"
    )

    # The site is redesigned: a feed failure with a reason, never "nothing new".
    feed_server.set(
        "/news/", page("institute_news_redesigned.html"), content_type="text/html; charset=utf-8"
    )
    broken = poll_once(feed, store, rules, NOW + timedelta(minutes=30))
    assert broken.status == "error"
    assert broken.error is not None and "matched nothing on the page" in broken.error
    state = store.feed_state(feed)
    assert state.consecutive_failures == 1 and state.next_poll_at is not None
