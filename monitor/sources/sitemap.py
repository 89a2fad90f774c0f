"""XML sitemaps and Google News sitemaps as sources (``type: sitemap``).

Some sites list a new page in their sitemap long before (or instead of) any
feed. A sitemap gives only URLs and dates, so for each URL this source has
not seen before it fetches the page once and takes its title and summary
from the page itself (:func:`monitor.sources.html.describe_page`). That
extra I/O is bounded three ways: at most ``feed.max_pages`` pages per poll
(newest first), a few at a time on the poll's own HTTP client, and all of
them within one more fetch deadline. Only pages on the sitemap's own host
are fetched (the sitemap is untrusted input; it must not make us read an
internal address and post what we found to Slack).

A new URL whose page was not fetched (over the cap, out of time, or the
fetch failed) still becomes an entry, titled from the news sitemap's
``<news:title>`` or else from the URL's last path segment, so an item is
never held back forever waiting for a fetch.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from monitor.dates import parse_date
from monitor.errors import FeedParseError
from monitor.feedclient import FeedClient
from monitor.fetch import FetchLimits, fetch
from monitor.links import canonical_link
from monitor.models import Entry, Feed, FetchStatus, ParsedFeed, RawEntry, Validators
from monitor.normalize import entry_id, normalize_entries
from monitor.sources.html import PageInfo, describe_page
from monitor.sources.safexml import XMLError, local_name, parse_xml

__all__ = ["SitemapUrl", "parse_sitemap", "read_sitemap", "slug_title", "url_filter"]

MAX_URLS = 50_000  # the sitemap protocol's own limit per file
PAGE_CONCURRENCY = 3  # pages of one site fetched at once: polite, and fast enough
SeenIds = Callable[[Sequence[str]], set[str]]


@dataclass(frozen=True, slots=True)
class SitemapUrl:
    """One ``<url>`` of a sitemap."""

    loc: str
    lastmod: datetime | None = None
    title: str | None = None  # <news:title>
    published: datetime | None = None  # <news:publication_date>


def url_filter(match: str | None) -> Callable[[str], bool]:
    """A predicate for ``match:``: ``/regex/`` is a regular expression, anything else a substring.

    Raises ``ValueError`` for a regular expression that does not compile.
    """
    if not match:
        return lambda _url: True
    if len(match) >= 2 and match.startswith("/") and match.endswith("/"):
        try:
            pattern = re.compile(match[1:-1])
        except re.error as exc:
            raise ValueError(f"match {match} is not a valid regular expression: {exc}") from exc
        return lambda url: pattern.search(url) is not None
    return lambda url: match in url


def parse_sitemap(body: bytes, url: str, now: datetime, *, max_bytes: int) -> list[SitemapUrl]:
    """The URLs of a sitemap (plain or gzip-compressed), in document order.

    Raises ``FeedParseError`` for a body that is not a sitemap, and for a
    sitemap index, naming a few of its sitemaps so the operator can pick one.
    """
    if body.startswith(b"\x1f\x8b"):  # sitemap.xml.gz served as a file, not Content-Encoding
        body = _gunzip(body, max_bytes, url)
    try:
        root = parse_xml(body)
    except XMLError as exc:
        raise FeedParseError(f"not a sitemap: {exc}", url=url) from exc
    kind = local_name(root.tag)
    if kind == "sitemapindex":
        children = [
            (loc.text or "").strip()
            for loc in root.iter()
            if local_name(loc.tag) == "loc" and (loc.text or "").strip()
        ]
        listed = ", ".join(children[:3]) + (" …" if len(children) > 3 else "")
        raise FeedParseError(
            f"this is a sitemap index of {len(children)} sitemaps ({listed}); set url to the one "
            "that lists news pages",
            url=url,
        )
    if kind != "urlset":
        raise FeedParseError(f"not a sitemap: the root element is <{kind}>, not <urlset>", url=url)
    urls: list[SitemapUrl] = []
    for node in root:
        if local_name(node.tag) != "url":
            continue
        fields: dict[str, str] = {}
        for child in node.iter():
            name = local_name(child.tag)
            if name in ("loc", "lastmod", "title", "publication_date") and name not in fields:
                fields[name] = (child.text or "").strip()
        if fields.get("loc"):
            urls.append(
                SitemapUrl(
                    loc=fields["loc"],
                    lastmod=_w3c_date(fields.get("lastmod"), now),
                    title=fields.get("title") or None,
                    published=_w3c_date(fields.get("publication_date"), now),
                )
            )
        if len(urls) >= MAX_URLS:
            break
    return urls


async def read_sitemap(
    body: bytes,
    url: str,
    feed: Feed,
    now: datetime,
    *,
    client: FeedClient,
    limits: FetchLimits,
    seen: SeenIds,
) -> tuple[list[Entry], str | None]:
    """Entries for a fetched sitemap: every matching URL, new pages described from the page.

    ``url`` is the sitemap's final URL; ``seen(ids)`` answers which entry
    ids the store already has, so only new pages are fetched. Returns the
    entries and a warning (pages not fetched, other hosts skipped) or None.
    Raises ``FeedParseError`` when the body is not a sitemap, or when it
    lists URLs but none matches ``feed.match``.
    """
    listed = await asyncio.to_thread(parse_sitemap, body, url, now, max_bytes=limits.max_bytes)
    keep = url_filter(feed.match)
    matching = [u for u in listed if keep(u.loc)]
    if listed and not matching:
        raise FeedParseError(
            f"none of the {len(listed)} URLs in the sitemap matches '{feed.match}'; the site's "
            "URLs have changed: update 'match:' in feeds.yaml",
            url=url,
        )
    host = _host(url)
    warnings: list[str] = []
    ids: dict[str, str] = {}
    foreign = 0
    for item in matching:
        link = canonical_link(item.loc, url)
        if link is None:
            continue
        if not _same_site(_host(link), host):
            foreign += 1
            continue
        ids[item.loc] = entry_id(RawEntry(None, None, "", "", "", "", None), link, "", "")
    if foreign:
        warnings.append(f"{foreign} URL(s) on other hosts were ignored")
    usable = [u for u in matching if u.loc in ids]
    known = seen(list(dict.fromkeys(ids.values())))
    # Newest first: when more pages are new than we may fetch, fetch the latest.
    fresh = sorted(
        (u for u in usable if ids[u.loc] not in known),
        key=lambda u: u.published or u.lastmod or datetime.min.replace(tzinfo=now.tzinfo),
        reverse=True,
    )
    wanted = [u.loc for u in fresh[: feed.max_pages]]
    pages = await _describe_pages(client, wanted, limits)
    if len(fresh) > len(pages):
        warnings.append(
            f"{len(fresh) - len(pages)} new page(s) not fetched (max_pages {feed.max_pages}, "
            "time or errors); titled from the sitemap or URL"
        )
    raws = tuple(_raw(u, pages.get(u.loc), now) for u in usable)
    entries = normalize_entries(ParsedFeed(title="", entries=raws), feed, now, base_url=url)
    return entries, "; ".join(warnings) or None


def slug_title(url: str) -> str:
    """A title from a URL's last path segment: ``/news/uk-japan-mou.html`` -> "uk japan mou"."""
    path = urlsplit(url).path.rstrip("/")
    segment = unquote(path.rpartition("/")[2])
    segment = re.sub(r"\.(html?|php|aspx?)$", "", segment, flags=re.I)
    words = re.sub(r"[-_+]+", " ", segment).strip()
    return words or url


async def _describe_pages(
    client: FeedClient, urls: Sequence[str], limits: FetchLimits
) -> dict[str, PageInfo]:
    """Fetch and describe ``urls``, a few at a time, all within one fetch deadline."""
    pages: dict[str, PageInfo] = {}
    gate = asyncio.Semaphore(PAGE_CONCURRENCY)

    async def one(page_url: str) -> None:
        async with gate:
            result = await fetch(client, page_url, Validators(), limits)
        content_type = result.headers.get("content-type", "text/html").lower()
        if result.status is FetchStatus.OK and "html" in content_type:
            pages[page_url] = await asyncio.to_thread(describe_page, result.body, result.headers)

    try:
        async with asyncio.timeout(limits.deadline):
            await asyncio.gather(*(one(u) for u in urls))
    except TimeoutError:
        pass  # pages not described in time are titled from the sitemap or URL
    return pages


def _raw(item: SitemapUrl, page: PageInfo | None, now: datetime) -> RawEntry:
    title = (page.title if page else "") or item.title or slug_title(item.loc)
    published = item.published or item.lastmod
    if published is None and page is not None and page.published:
        published = parse_date(page.published, now)
    return RawEntry(
        guid=None,
        link=item.loc,
        title=title,
        title_type="text/plain",
        summary=page.summary if page else "",
        summary_type="text/plain",
        published=published,
    )


def _w3c_date(value: str | None, now: datetime) -> datetime | None:
    return parse_date(value, now, order="ymd") if value else None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _same_site(host: str, other: str) -> bool:
    return host.removeprefix("www.") == other.removeprefix("www.") and bool(host)


def _gunzip(body: bytes, max_bytes: int, url: str) -> bytes:
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise FeedParseError(f"not a sitemap: bad gzip data ({exc})", url=url) from exc
    if len(out) > max_bytes:
        raise FeedParseError(f"the sitemap is larger than {max_bytes} bytes once unzipped", url=url)
    return out
