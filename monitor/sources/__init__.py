"""Every kind of source, behind one call: fetched body in, ``Entry`` records out.

``feeds.yaml``'s ``type:`` picks the reader:

- ``rss`` (default): RSS and Atom through feedparser (:mod:`monitor.parse`),
  and JSON Feed 1.0/1.1 (:mod:`.jsonfeed`), told apart by content type and
  body, so a site that switches format keeps working;
- ``html``: a news listing page read with CSS selectors (:mod:`.html`);
- ``sitemap``: an XML (news) sitemap; new pages are fetched once for their
  title and summary (:mod:`.sitemap`).

All of them end in the same normalize stage, so ids, text and dates follow
one set of rules, and a source that cannot be read raises
``FeedParseError``, which the pipeline turns into a feed failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from monitor.feedclient import FeedClient
from monitor.fetch import FetchLimits
from monitor.models import Entry, Feed, FetchResult, ParsedFeed
from monitor.normalize import normalize_entries
from monitor.parse import parse_feed
from monitor.parsepool import ParsePool
from monitor.sources.html import parse_html_listing
from monitor.sources.jsonfeed import looks_like_json, parse_json_feed
from monitor.sources.sitemap import SeenIds, read_sitemap

__all__ = ["SeenIds", "parse_document", "parse_entries", "read_entries"]


async def read_entries(
    result: FetchResult,
    feed: Feed,
    now: datetime,
    *,
    client: FeedClient,
    limits: FetchLimits,
    seen: SeenIds,
    parser: ParsePool | None = None,
) -> tuple[list[Entry], str | None]:
    """The entries of one successful fetch of ``feed``, and a warning (or None).

    CPU-bound parsing runs in ``parser``'s worker processes, or a worker
    thread. For ``type: sitemap`` this also fetches new pages with ``client``
    within ``limits``; ``seen(ids)`` says which entry ids the store already
    has. Raises ``FeedParseError``.
    """
    if feed.kind == "sitemap":
        return await read_sitemap(
            result.body, result.final_url, feed, now, client=client, limits=limits, seen=seen
        )
    args = (result.body, dict(result.headers), result.final_url, feed, now)
    if parser is not None:
        return await parser.run(parse_entries, *args)
    return await asyncio.to_thread(parse_entries, *args)


def parse_entries(
    body: bytes, headers: Mapping[str, str], url: str, feed: Feed, now: datetime
) -> tuple[list[Entry], str | None]:
    """Parse and normalize one body of an ``rss`` or ``html`` feed (pure; call in a thread)."""
    parsed = parse_document(body, headers, url, feed, now)
    entries = normalize_entries(parsed, feed, now, base_url=url)
    return entries, parsed.bozo_reason if parsed.bozo else None


def parse_document(
    body: bytes, headers: Mapping[str, str], url: str, feed: Feed, now: datetime
) -> ParsedFeed:
    """The ``ParsedFeed`` of an ``rss`` (RSS, Atom, JSON Feed) or ``html`` body."""
    if feed.kind == "html":
        return parse_html_listing(body, headers, url, feed, now)
    if looks_like_json(body, headers):
        return parse_json_feed(body, url)
    return parse_feed(body, headers, url)
