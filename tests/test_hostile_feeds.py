"""Attacks: feeds (and servers) that try to turn the monitor against its operators.

A feed is untrusted input end to end. These tests serve hostile feeds over
real HTTP and follow them through the whole pipeline: no Slack mention or
hidden link survives into a message, every payload stays within Slack's
limits, XML entity tricks expand nothing and read nothing, size and time caps
hold, redirects cannot loop or reach internal addresses, and one hostile feed
never stops the honest ones. Tests marked ``xfail(strict=True)`` expose a
product bug that is not fixed yet.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
import unicodedata
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.deliver import Deliverer
from monitor.feedclient import FeedClient
from monitor.fetch import FetchLimits, fetch, make_client
from monitor.models import AlertStatus, Entry, Feed, FetchStatus, RuleMatch, Validators
from monitor.notify import SlackBotNotifier
from monitor.pipeline import PollReport, PollSettings, poll_all
from monitor.rules import RuleSet, load_rules
from monitor.store import Store
from tests.feedserver import FeedServer, RequestInfo, Responder, rss
from tests.slack_emulator import PostedMessage, SlackEmulator
from tests.support import bot_env, run_monitor, write_rules_dir

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC)
# Slack's documented limits (docs/slack.md) and what a mention or link looks like in mrkdwn.
HEADER_LIMIT, SECTION_LIMIT, MAX_BLOCKS, TEXT_LIMIT = 150, 3000, 50, 4000
CONTROL_SEQUENCES = ("<!", "<@", "<#", "<http", "<mailto", "<javascript", "<tel", "|")
INVISIBLE = {"Cf", "Cc", "Co", "Cs"}


def _words(n: int, count: int) -> str:
    """Made-up words, different per ``n``, so story clustering keeps every item apart."""
    rng = random.Random(n)
    syllables = ("ka", "lo", "mi", "ru", "te", "vo", "zi", "ne", "pa", "su", "do", "fe")
    return " ".join("".join(rng.choice(syllables) for _ in range(4)) for _ in range(count))


def raw_item(n: int, title_xml: str, *, description_xml: str = "", link: str = "") -> str:
    """One RSS item whose title and description are inserted as raw XML."""
    link = link or f"https://gov.example/hostile/{n}"
    return (
        f"<item><title>{title_xml}</title><guid isPermaLink='false'>h{n}</guid>"
        f"<link>{link.replace('&', '&amp;').replace('<', '&lt;')}</link>"
        f"<description>{description_xml or _words(n + 500, 6)}</description>"
        f"<pubDate>{NOW:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>"
    )


def rss_raw(items: list[str]) -> str:
    """An RSS document around already-built items."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Hostile</title><link>https://gov.example/</link><description>x</description>"
        + "".join(items)
        + "</channel></rss>"
    )


def hostile_items() -> list[str]:
    """Titles and summaries that try every way we know to ping, hide a link or break limits."""
    key = "AI safety partnership"
    items = [
        (
            f"&lt;!channel&gt; {key} &lt;!here&gt; &lt;!everyone&gt; &lt;@U0123ABC&gt; "
            "&lt;#C0123|general&gt; &lt;!subteam^S0123|@team&gt; "
            "&lt;https://evil.example|Verify your account&gt; &lt;mailto:ceo@evil.example|ceo&gt;",
            "&lt;tel:123|call&gt; &amp;lt;!channel&amp;gt; double-escaped",
        ),
        (
            f"<![CDATA[<!channel> {key} <!here>]]>",
            "&#60;!channel&#62; &#x3C;!here&#x3E; numeric references",
        ),
        (
            f"{key} &lt;!cha\u200bnnel&gt; zero width \u202eevil\u202c bidi",
            "&lt;a href='javascript:alert(1)'&gt;click&lt;/a&gt;&lt;script&gt;alert(1)"
            "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &lt;!channel&gt; "
            "&lt;https://evil.example|hidden&gt;",
        ),
        (f"{key} " + "long title " * 5000, "long summary words. " * 30_000),
        (f"{key} " + "&amp;" * 400 + " escapes that grow", "&lt;" * 4000),
    ]
    out = [
        raw_item(n, f"{title} {_words(n, 4)}", description_xml=summary)
        for n, (title, summary) in enumerate(items)
    ]
    links = (
        "javascript:alert(1)",
        "https://evil.example/a|<!channel>><!here>",
        "data:text/html,<script>alert(1)</script>",
    )
    for n, link in enumerate(links, start=len(items)):
        out.append(raw_item(n, f"{key} hostile link {_words(n, 4)}", link=link))
    return out


def texts(message: PostedMessage) -> list[str]:
    """Every string Slack would render from a message: fallback text and all block texts."""
    found = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.blocks or [])
    return found


def link_targets(text: str) -> list[str]:
    """The URL of every ``<url|label>`` link in mrkdwn text."""
    out = []
    for part in text.split("<")[1:]:
        out.append(part.split("|", 1)[0].split(">", 1)[0])
    return out


def assert_inert(message: PostedMessage) -> None:
    """No mention, no hidden link, no invisible characters; every limit kept."""
    assert message.unfurl_links is False and message.unfurl_media is False
    blocks = message.blocks or []
    assert 0 < len(blocks) <= MAX_BLOCKS
    header = blocks[0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= HEADER_LIMIT
    assert len(message.text) <= TEXT_LIMIT
    for block in blocks[1:]:
        text = (block.get("text") or {}).get("text")
        if text is not None:
            assert len(text) <= SECTION_LIMIT
        for element in block.get("elements") or []:
            assert len(element.get("text", "")) <= SECTION_LIMIT
    for text in texts(message):
        for ch in text:
            assert unicodedata.category(ch) not in INVISIBLE, (hex(ord(ch)), text[:80])
        targets = link_targets(text)
        # The only link we write is "<https://…|Read the announcement>".
        assert all(t.startswith(("https://", "http://")) for t in targets), targets
        for target in targets:
            assert not any(c in target for c in "<>| "), target  # cannot break out of <url|label>
        body = text
        for target in targets:
            body = body.replace(f"<{target}|Read the announcement>", "")
        for seq in CONTROL_SEQUENCES[:-1]:
            assert seq not in body, (seq, body[:200])


def test_hostile_text_reaches_slack_as_inert_text_within_limits(
    feed_server: FeedServer, slack: SlackEmulator, tmp_path: Path
) -> None:
    items = hostile_items()
    feed_server.set("/hostile.xml", rss_raw(items))
    rules_dir = write_rules_dir(
        tmp_path, [{"name": "Hostile", "url": feed_server.url("/hostile.xml")}]
    )
    result = run_monitor(
        "once", "--backfill", "all", "--rules", str(rules_dir), "--state", str(tmp_path / "m.db"),
        env=bot_env(slack), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    messages = slack.messages
    top = [m for m in messages if (m.blocks or [{}])[0].get("type") == "header"]
    assert len(top) == len(items), [m.text[:80] for m in messages]  # each hostile item alerted
    for message in messages:
        assert_inert(message)
    every = json.dumps([texts(m) for m in messages])
    assert "javascript:" not in every and "data:text" not in every


# -- XML tricks --------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "' + f"&lol{i - 1 if i > 1 else ''};" * 10 + '">' for i in range(1, 10)
    )
    + ']><rss version="2.0"><channel><title>t</title>'
    + "<item><title>AI safety partnership &lol9;</title><guid>bl</guid></item>"
    + "</channel></rss>"
)


def _poll(
    store: Store, rules: RuleSet, feeds: list[Feed], limits: FetchLimits | None = None
) -> list[PollReport]:
    limits = limits or FetchLimits(deadline=10.0, connect_timeout=2.0, read_timeout=5.0)

    async def go() -> list[PollReport]:
        async with make_client(limits) as client:
            return await poll_all(
                feeds,
                client=client,
                store=store,
                rules=rules,
                settings=PollSettings(limits=limits),
                now=lambda: datetime.now(UTC),
            )

    return asyncio.run(go())


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, [{"name": "x", "url": "https://x.example/"}]))


@pytest.fixture
def store(tmp_path: Path) -> Any:
    db = Store.open(tmp_path / "m.db")
    yield db
    db.close()


def _first_poll_then(
    feed_server: FeedServer, store: Store, rules: RuleSet, path: str, body: str | bytes
) -> PollReport:
    """Record an honest first poll of ``path``, then serve ``body`` and poll again."""
    feed_server.set(path, rss([{"title": "Weather office opens", "guid": "w"}]))
    feed = Feed("Hostile", feed_server.url(path))
    _poll(store, rules, [feed])
    feed_server.set(path, body)
    return _poll(store, rules, [feed])[0]


def test_billion_laughs_expands_nothing(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    report = _first_poll_then(feed_server, store, rules, "/lol.xml", BILLION_LAUGHS)
    assert time.monotonic() - started < 10
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"
    for outcome in report.outcomes:
        assert len(outcome.entry.title) < 1000 and "lollol" not in outcome.entry.title
    lengths = store.connection.execute("SELECT max(length(title)) FROM seen").fetchone()[0]
    assert lengths < 1000


def test_external_entities_read_no_file_and_fetch_nothing(
    feed_server: FeedServer, store: Store, rules: RuleSet, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER", "utf-8")
    probe = feed_server.url("/xxe-probe")
    feed_server.set("/xxe-probe", "PROBE-MARKER", content_type="text/plain")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY file SYSTEM "{secret.as_uri()}">'
        f'<!ENTITY web SYSTEM "{probe}"><!ENTITY % remote SYSTEM "{probe}"> %remote;]>'
        '<rss version="2.0"><channel><title>t</title>'
        "<item><title>AI safety partnership &file; &web;</title><guid>x1</guid>"
        "<description>&file; &web;</description></item></channel></rss>"
    )
    _first_poll_then(feed_server, store, rules, "/xxe.xml", body)
    dump = "\n".join(str(row) for row in store.connection.iterdump())
    assert "TOP-SECRET-MARKER" not in dump and "PROBE-MARKER" not in dump
    assert feed_server.hits("/xxe-probe") == 0


# -- size and time -------------------------------------------------------------------------


def _gzip_bomb(size: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    chunk = b"\0" * (1 << 20)
    return b"".join(z.compress(chunk) for _ in range(size >> 20)) + z.flush()


def test_bombs_and_endless_bodies_stop_at_the_cap_and_the_other_feeds_go_on(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    bomb = _gzip_bomb(512 << 20)  # 512 MB of zeros in about 0.5 MB

    def bomb_route(request: RequestInfo, responder: Responder) -> None:
        responder.send(
            200, bomb, headers={"Content-Encoding": "gzip"}, content_type="application/rss+xml"
        )

    def endless(request: RequestInfo, responder: Responder) -> None:
        responder.start(200, {"Content-Type": "application/rss+xml"})
        responder.write(b'<?xml version="1.0"?><rss version="2.0"><channel><title>')
        for _ in range(2000):  # up to 128 MB, unless the client stops reading first
            if not responder.write(b"A" * 65536) or responder.stopping:
                return

    feed_server.route("/bomb.xml", bomb_route)
    feed_server.route("/endless.xml", endless)
    feed_server.set("/honest.xml", rss([{"title": "Weather office opens", "guid": "w"}]))
    feeds = [
        Feed("Bomb", feed_server.url("/bomb.xml")),
        Feed("Endless", feed_server.url("/endless.xml")),
        Feed("Honest", feed_server.url("/honest.xml")),
    ]
    limits = FetchLimits(max_bytes=2 << 20, deadline=20.0, connect_timeout=2.0, read_timeout=5.0)
    _poll(store, rules, feeds[2:], limits)  # the honest feed's first poll
    feed_server.set(
        "/honest.xml",
        rss(
            [
                {"title": f"AI safety partnership {_words(1, 4)}", "guid": "p1"},
                {"title": "Weather office opens", "guid": "w"},
            ]
        ),
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reports = {r.feed: r for r in _poll(store, rules, feeds, limits)}
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 120, f"peak memory grew by {grown_mb:.0f} MB"
    for name in ("Bomb", "Endless"):
        assert reports[name].status == "error" and "cap" in (reports[name].error or ""), reports
    assert len(reports["Honest"].alerts) == 1


def test_slow_drip_is_cut_off_and_the_other_feeds_go_on(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    def drip(request: RequestInfo, responder: Responder) -> None:
        responder.start(200, {"Content-Type": "application/rss+xml"})
        for _ in range(600):  # one byte every 0.1 s: never silent long enough for a read timeout
            if not responder.write(b" ") or not responder.wait(0.1):
                return

    feed_server.route("/drip.xml", drip)
    feed_server.set("/honest.xml", rss([{"title": "Weather office opens", "guid": "w"}]))
    feeds = [
        Feed("Drip", feed_server.url("/drip.xml")),
        Feed("Honest", feed_server.url("/honest.xml")),
    ]
    limits = FetchLimits(deadline=2.0, connect_timeout=1.0, read_timeout=1.0)
    _poll(store, rules, feeds[1:], limits)
    feed_server.set(
        "/honest.xml",
        rss(
            [
                {"title": f"AI safety partnership {_words(2, 4)}", "guid": "p2"},
                {"title": "Weather office opens", "guid": "w"},
            ]
        ),
    )
    started = time.monotonic()
    reports = {r.feed: r for r in _poll(store, rules, feeds, limits)}
    assert time.monotonic() - started < 8
    assert reports["Drip"].status == "error" and "timed out" in (reports["Drip"].error or "")
    assert len(reports["Honest"].alerts) == 1


# -- redirects -----------------------------------------------------------------------------


def test_redirect_loops_end_quickly_with_a_clear_error(
    feed_server: FeedServer, store: Store, rules: RuleSet
) -> None:
    feed_server.redirect("/self.xml", "/self.xml", status=302)
    feed_server.redirect("/ping.xml", "/pong.xml", status=301)
    feed_server.redirect("/pong.xml", "/ping.xml", status=301)
    feeds = [Feed("Self", feed_server.url("/self.xml")), Feed("Ping", feed_server.url("/ping.xml"))]
    started = time.monotonic()
    reports = _poll(store, rules, feeds)
    assert time.monotonic() - started < 10
    for report in reports:
        assert report.status == "error" and "redirect loop" in (report.error or ""), report
    assert feed_server.hits("/self.xml") <= 6  # bounded by max_redirects, not by time
    for name in ("Self", "Ping"):  # a loop of 301s must not "move" the feed
        state = store.feed_state(feeds[0] if name == "Self" else feeds[1])
        assert state.url == state.config_url


INTERNAL = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:6379/",
    "http://10.0.0.5/admin",
    "http://[::1]/",
    "http://0.0.0.0:8080/metrics",
    "http://localhost:8080/metrics",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    # Legacy IPv4 spellings that getaddrinfo (inet_aton) turns into 127.0.0.1.
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://017700000001/",
]


@pytest.mark.parametrize("target", INTERNAL)
def test_redirect_from_a_public_feed_to_an_internal_address_is_refused(target: str) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.host == "feeds.example.org":
            return httpx.Response(302, headers={"Location": target})
        body = rss([{"title": "internal data", "guid": "i"}]).encode()
        return httpx.Response(200, stream=httpx.ByteStream(body))

    async def go() -> Any:
        transport = httpx.MockTransport(handler)
        async with FeedClient(timeout=httpx.Timeout(5.0), transport=transport) as client:
            return await fetch(
                client, "https://feeds.example.org/feed.xml", Validators(), FetchLimits()
            )

    result = asyncio.run(go())
    assert asked == ["https://feeds.example.org/feed.xml"], asked
    assert result.status is FetchStatus.ERROR and "internal" in (result.error or "")


# -- Slack (or a proxy in front of it) answering nonsense ---------------------------------------


@pytest.mark.parametrize("retry_after", ["1000000000000", "1000000000"])
def test_absurd_retry_after_from_slack_neither_crashes_nor_parks_the_alert(
    slack: SlackEmulator, store: Store, retry_after: str
) -> None:
    now = datetime.now(UTC)
    entry = Entry(
        id="e1",
        source="GOV",
        link="https://gov.example/1",
        title="AI safety partnership",
        summary="",
        published=now,
        published_from_feed=True,
    )
    alert_id = store.enqueue_alert(entry, RuleMatch("partnerships", ("partner",)), now)
    slack.rate_limit(1, retry_after=retry_after)
    bot = SlackBotNotifier(slack.token, "#alerts", base_url=slack.api_url, timeout=2)
    asyncio.run(Deliverer(store, bot, now=lambda: now).deliver_pending())
    alert = store.get_alert(alert_id)
    assert alert is not None and alert.status is not AlertStatus.DELIVERED
    assert alert.next_attempt_at is not None
    assert alert.next_attempt_at <= now + timedelta(days=1)
