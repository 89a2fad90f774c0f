"""Feed discovery: what sources does a web page offer, as ready-to-paste ``feeds.yaml`` entries.

``monitor feeds discover URL`` fetches the page and looks in three places:

1. the page itself (the URL may already be a feed or a sitemap);
2. the feeds it advertises with ``<link rel="alternate">`` (RSS, Atom, JSON Feed);
3. common feed paths on the same site (``/feed``, ``/rss.xml``, ``/feed.json``…).

Every candidate is fetched and parsed with the monitor's own readers, so a
listed feed is one the monitor can read, with its title and item count.
When none is found but the page has an obvious list of dated links, a
``type: html`` entry with suggested selectors is offered, checked by running
the HTML reader over the page.

All fetches use :func:`monitor.fetch.fetch`: the same caps and deadlines as polls.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from monitor.config import dump_feeds
from monitor.dates import parse_date
from monitor.errors import FeedParseError, MonitorError
from monitor.feedclient import FeedClient
from monitor.fetch import FetchLimits, fetch
from monitor.models import Feed, FeedKind, FetchResult, FetchStatus, HtmlSelectors, Validators
from monitor.sources import parse_document
from monitor.sources.html import decode_html
from monitor.sources.sitemap import parse_sitemap

__all__ = ["DiscoveredFeed", "DiscoveryError", "discover", "render_yaml", "suggest_selectors"]

COMMON_PATHS = (
    "/feed", "/feed/", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml",
    "/feed.json", "/news/rss.xml", "/news/feed",
)  # fmt: skip
PAGE_RELATIVE = ("feed", "rss.xml", "feed.xml", "atom.xml", "index.xml")
MAX_CANDIDATES = 20
CONCURRENCY = 4
_FEED_TYPES = ("rss", "atom", "rdf", "json", "xml")
_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_DATE_TAGS = "time, span, div, p, li, td, small, em, dd, strong"
MIN_ITEMS = 3  # "an obvious list": at least this many dated links


class DiscoveryError(MonitorError):
    """The page itself could not be fetched."""


@dataclass(frozen=True, slots=True)
class DiscoveredFeed:
    """One source found on a page, already fetched and parsed once."""

    url: str
    kind: FeedKind
    format: str  # RSS, Atom, JSON Feed, sitemap, HTML listing
    title: str
    items: int
    latest: datetime | None  # the newest item date, when items are dated
    via: str  # where it was found: "the page itself", "link tag", "common path", "suggested"
    select: HtmlSelectors | None = None


async def discover(
    client: FeedClient, url: str, limits: FetchLimits, *, now: datetime
) -> list[DiscoveredFeed]:
    """Fetch ``url`` and list the sources it offers, best first (see the module docstring).

    ``now`` anchors relative dates on the page. Raises ``DiscoveryError``
    when the page itself cannot be fetched.
    """
    page = await fetch(client, url, Validators(), limits)
    if page.status is not FetchStatus.OK:
        raise DiscoveryError(f"{url}: {page.error or page.status.value}")
    itself = _read(page, "the page itself", now)
    if itself is not None:
        return [itself]

    text = decode_html(page.body, page.headers)
    tree = LexborHTMLParser(text)
    advertised = _link_tags(tree, page.final_url)
    guessed = [u for u in _common_paths(page.final_url) if u not in advertised]
    candidates = [(u, "link tag") for u in advertised] + [(u, "common path") for u in guessed]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(candidate: str, via: str) -> DiscoveredFeed | None:
        async with gate:
            result = await fetch(client, candidate, Validators(), limits)
        return _read(result, via, now) if result.status is FetchStatus.OK else None

    found = await asyncio.gather(*(one(u, via) for u, via in candidates[:MAX_CANDIDATES]))
    feeds: list[DiscoveredFeed] = []
    seen: set[str] = set()
    for feed in found:
        # /feed and /feed/ are often one feed: keep the first URL that gave it.
        key = f"{feed.format}|{feed.title}|{feed.items}" if feed else ""
        if feed is not None and key not in seen:
            seen.add(key)
            feeds.append(feed)
    if not feeds:
        select = suggest_selectors(text, page.final_url, now)
        if select is not None:
            feeds.append(_listing(page, select, now))
    return feeds


def render_yaml(found: Sequence[DiscoveredFeed], *, name: str | None = None) -> str:
    """``feeds.yaml`` entries for ``found``, under a comment line each, ready to paste.

    ``name`` overrides the feed names (which default to each feed's title,
    else its host); a second entry gets " (2)" and so on.
    """
    blocks: list[str] = []
    names: set[str] = set()
    for item in found:
        base = name or item.title or urlsplit(item.url).hostname or item.url
        label, n = base, 2
        while label.casefold() in names:
            label, n = f"{base} ({n})", n + 1
        names.add(label.casefold())
        latest = f", newest {item.latest:%Y-%m-%d}" if item.latest else ""
        comment = f"  # {item.format} ({item.via}): {item.items} items{latest}\n"
        feed = Feed(name=label, url=item.url, kind=item.kind, select=item.select)
        blocks.append(comment + dump_feeds([feed]))
    return "".join(blocks)


def suggest_selectors(html: str, url: str, now: datetime) -> HtmlSelectors | None:
    """Selectors for the most obvious list of dated links on a page, or None.

    Looks for dates (``<time>`` or short text that reads as a date), climbs
    from each to the nearest ancestor holding a link, and takes the most
    common such ancestor (same tag and class) when there are at least three.
    The suggestion is only returned if the HTML reader, run with it, finds
    at least three dated entries.
    """
    tree = LexborHTMLParser(html)
    items: dict[str, list[tuple[LexborNode, LexborNode]]] = {}
    for node in tree.css(_DATE_TAGS):
        if not _is_date(node, now):
            continue
        holder = _item_for(node)
        if holder is not None:
            items.setdefault(_selector(holder), []).append((holder, node))
    ranked = Counter({sig: len({h.mem_id for h, _ in pairs}) for sig, pairs in items.items()})
    for signature, count in ranked.most_common(3):
        if count < MIN_ITEMS:
            break
        holder, date_node = items[signature][0]
        select = HtmlSelectors(
            item=signature,
            title=_title_selector(holder),
            link=_link_selector(holder),
            date=_date_selector(date_node),
        )
        if _works(html, url, select, now):
            return select
    return None


# -- reading candidates ------------------------------------------------------------------


def _read(result: FetchResult, via: str, now: datetime) -> DiscoveredFeed | None:
    """The candidate as a feed or sitemap, or None when it is neither."""
    url = result.final_url
    start = result.body[:2048].lstrip()
    if b"<urlset" in start:
        try:
            urls = parse_sitemap(result.body, url, now, max_bytes=len(result.body) + 1)
        except FeedParseError:
            return None
        latest = max((u.lastmod for u in urls if u.lastmod), default=None)
        return DiscoveredFeed(url, "sitemap", "sitemap", "", len(urls), latest, via)
    probe = Feed(name="discover", url=url)
    try:
        parsed = parse_document(result.body, result.headers, url, probe, now)
    except FeedParseError:
        return None
    if not parsed.entries and not parsed.title:
        return None
    dates = [e.published for e in parsed.entries if e.published is not None]
    return DiscoveredFeed(
        url=url,
        kind="rss",
        format=_format(result.body),
        title=" ".join(parsed.title.split()),
        items=len(parsed.entries),
        latest=max(dates, default=None),
        via=via,
    )


def _listing(page: FetchResult, select: HtmlSelectors, now: datetime) -> DiscoveredFeed:
    probe = Feed(name="discover", url=page.final_url, kind="html", select=select)
    parsed = parse_document(page.body, page.headers, page.final_url, probe, now)
    dates = [e.published for e in parsed.entries if e.published is not None]
    return DiscoveredFeed(
        url=page.final_url,
        kind="html",
        format="HTML listing",
        title=" ".join(parsed.title.split()),
        items=len(parsed.entries),
        latest=max(dates, default=None),
        via="suggested selectors; check them",
        select=select,
    )


def _format(body: bytes) -> str:
    start = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return "JSON Feed"
    return "Atom" if b"<feed" in start else "RSS"


def _link_tags(tree: LexborHTMLParser, base: str) -> list[str]:
    urls: list[str] = []
    for node in tree.css("link[href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        kind = (node.attributes.get("type") or "").lower()
        if "alternate" in rel and any(t in kind for t in _FEED_TYPES):
            url = _absolute(base, node.attributes.get("href") or "")
            if url and url not in urls:
                urls.append(url)
    return urls


def _common_paths(page_url: str) -> list[str]:
    urls = [_absolute(page_url, p) for p in COMMON_PATHS]
    if urlsplit(page_url).path.rstrip("/"):
        folder = page_url if page_url.endswith("/") else page_url + "/"
        urls += [_absolute(folder, p) for p in PAGE_RELATIVE]
    return [u for u in dict.fromkeys(urls) if u and u != page_url]


def _absolute(base: str, href: str) -> str:
    try:
        url = urljoin(base, href.strip())
    except ValueError:
        return ""
    return url if urlsplit(url).scheme in ("http", "https") else ""


# -- suggesting selectors ----------------------------------------------------------------


def _is_date(node: LexborNode, now: datetime) -> bool:
    if node.tag == "time" and node.attributes.get("datetime"):
        return True
    if next(node.iter(), None) is not None:  # only leaf elements: the date, not its block
        return False
    text = node.text(strip=True)
    return 6 <= len(text) <= 40 and parse_date(text, now) is not None


def _item_for(node: LexborNode) -> LexborNode | None:
    """The nearest ancestor (within 5 levels) that holds a link: one list item."""
    current = node.parent
    for _ in range(5):
        if current is None or current.tag in ("body", "html"):
            return None
        if current.css_first("a[href]") is not None:
            return current
        current = current.parent
    return None


def _selector(node: LexborNode) -> str:
    """``tag.class`` for a node (its first plain class), else ``parent-tag.class > tag``."""
    tag = node.tag or "div"
    cls = _first_class(node)
    if cls:
        return f"{tag}.{cls}"
    parent = node.parent
    if parent is not None and parent.tag not in (None, "body", "html"):
        parent_cls = _first_class(parent)
        return f"{parent.tag}.{parent_cls} > {tag}" if parent_cls else f"{parent.tag} > {tag}"
    return tag


def _first_class(node: LexborNode) -> str | None:
    classes = (node.attributes.get("class") or "").split()
    return next((c for c in classes if _CLASS.match(c)), None)


def _link_selector(item: LexborNode) -> str:
    anchor = item.css_first("a[href]")
    return f"{_within(item, anchor)}@href" if anchor is not None else "a@href"


def _title_selector(item: LexborNode) -> str | None:
    for heading in _HEADINGS:
        node = item.css_first(heading)
        if node is not None and node.text(strip=True):
            cls = _first_class(node)
            return f"{heading}.{cls}" if cls else heading
    return None  # the link text


def _date_selector(node: LexborNode) -> str:
    if node.tag == "time" and node.attributes.get("datetime"):
        return "time@datetime"
    cls = _first_class(node)
    return f"{node.tag}.{cls}" if cls else (node.tag or "time")


def _within(item: LexborNode, anchor: LexborNode) -> str:
    """A short selector for ``anchor`` inside ``item``: "h3 a", "a.more", or "a"."""
    parent = anchor.parent
    if parent is not None and parent.tag in _HEADINGS and parent.mem_id != item.mem_id:
        return f"{parent.tag} a"
    cls = _first_class(anchor)
    return f"a.{cls}" if cls else "a[href]"


def _works(html: str, url: str, select: HtmlSelectors, now: datetime) -> bool:
    probe = Feed(name="discover", url=url, kind="html", select=select)
    try:
        parsed = parse_document(html.encode("utf-8"), {}, url, probe, now)
    except FeedParseError:
        return False
    dated = [e for e in parsed.entries if e.published is not None]
    return len(dated) >= MIN_ITEMS
