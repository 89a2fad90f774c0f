"""Parse stage: feed bytes in, a ``ParsedFeed`` of ``RawEntry`` records out.

feedparser does the format work (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, encodings).
This module only calls it safely and copies out the fields later stages use.
Nothing here cleans text: titles and summaries are still untrusted.

Parsing costs real CPU (milliseconds per feed): call ``parse_feed`` from a
worker thread, not on the event loop.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from monitor.errors import FeedParseError
from monitor.models import ParsedFeed, RawEntry

_MAX_REASON = 200
_DATE_FIELDS = ("published_parsed", "updated_parsed", "created_parsed")


def parse_feed(body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Parse one fetched feed body.

    ``headers`` are the HTTP response headers (any case; they are lower-cased
    here, which feedparser needs to see the charset). ``url`` is the URL the
    body came from: relative entry links are resolved against it, and it
    names the feed in errors.

    A malformed document that still yields entries is returned with
    ``bozo=True`` and a short ``bozo_reason``. Raises ``FeedParseError`` when
    feedparser fails outright, or when the body is not a feed at all (an HTML
    page, JSON, an empty body).
    """
    # Imported on first use: a cycle where every feed answers 304 never parses, and a
    # forked parse worker imports it on its first feed.
    import feedparser

    response_headers = {str(k).lower(): str(v) for k, v in headers.items()}
    # No content-location on purpose: feedparser resolves an RSS <guid> without
    # isPermaLink="false" against it, so "item-42" would become
    # "https://host/feed/item-42" and every id would change when the feed
    # moves. Links are resolved against ``url`` below instead.
    response_headers.pop("content-location", None)
    try:
        # A BytesIO, never bytes or str: feedparser would treat those as a
        # path or URL and open it.
        result = feedparser.parse(io.BytesIO(body), response_headers=response_headers)
    except Exception as exc:  # feedparser raises ValueError and others on bad input
        raise FeedParseError(f"the feed could not be parsed: {_describe(exc)}", url=url) from exc

    feed_info = result.get("feed") or {}
    title = _text(feed_info.get("title"))
    bozo = bool(result.get("bozo"))
    reason = _describe(result.get("bozo_exception")) if bozo else None
    entries = tuple(_raw_entry(entry, url) for entry in result.get("entries") or ())

    if not entries and not title and (bozo or not result.get("version")):
        raise FeedParseError(f"not a feed: {_not_a_feed_reason(body, reason)}", url=url)
    return ParsedFeed(title=title, entries=entries, bozo=bozo, bozo_reason=reason)


def _raw_entry(entry: Mapping[str, Any], base: str) -> RawEntry:
    """Copy the fields later stages use out of one feedparser entry."""
    guid = _text(entry.get("id")).strip() or None
    link = _entry_link(entry, guid)
    if link is not None:
        # An unparseable link ("http://[::1") stays as it is; normalize rejects it.
        with contextlib.suppress(ValueError):
            link = urljoin(base, link)

    title = _text(entry.get("title"))
    title_type = _content_type(entry.get("title_detail"), "text/plain")

    # When an entry has only <content>/<content:encoded>, feedparser copies it
    # into ``summary`` but without ``summary_detail``: the type must then be
    # taken from the content, or its HTML would pass as plain text.
    summary, summary_type = "", "text/html"
    if entry.get("summary_detail"):
        summary = _text(entry.get("summary"))
        summary_type = _content_type(entry.get("summary_detail"), "text/html")
    if not summary:
        for content in entry.get("content") or ():
            if _text(content.get("value")):
                summary = _text(content.get("value"))
                summary_type = _content_type(content, "text/html")
                break
    if not summary:
        # Unknown origin: treat as HTML, the common case for descriptions.
        summary, summary_type = _text(entry.get("summary")), "text/html"

    return RawEntry(
        guid=guid,
        link=link,
        title=title,
        title_type=title_type,
        summary=summary,
        summary_type=summary_type,
        published=_published(entry),
        categories=_categories(entry.get("tags") or ()),
    )


def _entry_link(entry: Mapping[str, Any], guid: str | None) -> str | None:
    """The entry's link, else its first alternate link."""
    link = _text(entry.get("link")).strip()
    # feedparser copies a <guid> into the link when isPermaLink is absent; many
    # feeds use non-URL guids ("item-42") without saying so. Resolved against
    # the feed URL, such a "link" would point at a page that does not exist.
    if link and entry.get("guidislink") and link == guid and "/" not in link:
        link = ""
    if not link:
        for candidate in entry.get("links") or ():
            href = _text(candidate.get("href")).strip()
            if href and candidate.get("rel", "alternate") == "alternate":
                link = href
                break
    return link or None


def _published(entry: Mapping[str, Any]) -> datetime | None:
    """The first usable date of published, updated, created; UTC, or None."""
    for name in _DATE_FIELDS:
        value = entry.get(name)
        if not isinstance(value, time.struct_time):
            continue
        try:
            # feedparser has already converted the date to UTC.
            return datetime(*value[:6], tzinfo=UTC)
        except (ValueError, OverflowError, TypeError):
            continue  # an impossible date such as month 13: try the next field
    return None


def _categories(tags: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Distinct, non-empty tag terms in feed order."""
    terms: list[str] = []
    for tag in tags:
        term = _text(tag.get("term")).strip()
        if term and term not in terms:
            terms.append(term)
    return tuple(terms)


def _content_type(detail: Mapping[str, Any] | None, default: str) -> str:
    """The MIME type feedparser recorded for a text construct, else ``default``."""
    if not detail:
        return default
    return _text(detail.get("type")) or default


def _text(value: object) -> str:
    """``value`` if it is a string, else the empty string (feeds are untrusted)."""
    return value if isinstance(value, str) else ""


def _describe(exc: object) -> str:
    """A one-line, bounded description of an exception."""
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split()) or "no details"
    message = f"{type(exc).__name__}: {text}" if isinstance(exc, BaseException) else text
    return message if len(message) <= _MAX_REASON else message[: _MAX_REASON - 1] + "…"


def _not_a_feed_reason(body: bytes, bozo_reason: str | None) -> str:
    """Guess what a body that is not a feed is, so the operator can fix the URL."""
    start = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not start:
        return "the body is empty"
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in start:
        return "looks like HTML (a web page, not RSS or Atom); check the feed URL"
    if start.startswith((b"{", b"[")):
        return "looks like JSON (JSON Feed is not supported); use the site's RSS or Atom feed"
    if bozo_reason:
        return f"no RSS or Atom content found ({bozo_reason})"
    return "no RSS or Atom root element found"
