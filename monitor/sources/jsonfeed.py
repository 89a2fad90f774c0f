"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1) into a ``ParsedFeed``.

A JSON Feed is recognised by its content type (``application/feed+json``,
``application/json``) or by a body that is a JSON object; it is one only when
its ``version`` is a jsonfeed.org URL. Items become ``RawEntry`` records like
RSS items: ``id`` is the guid, ``url`` (else ``external_url``) the link,
``summary`` (else ``content_html``, else ``content_text``) the summary, and
``date_published`` (else ``date_modified``) the date. ``tags`` are the
categories. Everything in the document is untrusted: wrong types are ignored
field by field, never trusted or crashed on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from monitor.errors import FeedParseError
from monitor.models import ParsedFeed, RawEntry

__all__ = ["is_json_feed", "looks_like_json", "parse_json_feed"]

_JSON_TYPES = ("application/feed+json", "application/json", "text/json")
_VERSION_PREFIX = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
MAX_ITEMS = 1_000


def looks_like_json(body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the body starts like a JSON object, or the content type says JSON.

    A body starting with ``<`` is XML whatever its label: servers mislabel feeds.
    """
    start = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return True
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return any(t in content_type.lower() for t in _JSON_TYPES) and not start.startswith(b"<")


def is_json_feed(body: bytes) -> bool:
    """True when ``body`` is a JSON object whose ``version`` is a jsonfeed.org URL."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(document, dict) and _is_version(document.get("version"))


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """Parse a JSON Feed body; relative item URLs are resolved against ``url``.

    Raises ``FeedParseError`` when the body is not JSON, or JSON but not a
    JSON Feed (no jsonfeed.org ``version``, no ``items`` list).
    """
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FeedParseError(f"not a feed: invalid JSON ({_short(exc)})", url=url) from exc
    if not isinstance(document, dict) or not _is_version(document.get("version")):
        raise FeedParseError(
            "not a feed: JSON without a jsonfeed.org 'version' (an API response, not a JSON "
            "Feed); check the feed URL",
            url=url,
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedParseError("not a feed: a JSON Feed needs an 'items' list", url=url)
    base = _string(document.get("feed_url")) or url
    entries = tuple(_entry(item, base) for item in items[:MAX_ITEMS] if isinstance(item, dict))
    skipped = len(items) - len(entries)
    reason = f"{skipped} item(s) were not JSON objects" if skipped > 0 else None
    return ParsedFeed(
        title=_string(document.get("title")),
        entries=entries,
        bozo=reason is not None,
        bozo_reason=reason,
    )


def _entry(item: Mapping[str, Any], base: str) -> RawEntry:
    guid = item.get("id")
    # 1.0 allowed numbers as ids in practice; 1.1 says string. Accept both, stably.
    usable_id = isinstance(guid, str | int) and not isinstance(guid, bool)
    guid_text = str(guid).strip() if usable_id else ""
    link = _string(item.get("url")) or _string(item.get("external_url"))
    if link:
        with contextlib.suppress(ValueError):  # normalize drops what it cannot parse
            link = urljoin(base, link)
    summary, summary_type = "", "text/html"
    # ``summary`` is the publisher's own short text; content is the whole article.
    for key, kind in (("summary", "text/plain"), ("content_html", "text/html"),
                      ("content_text", "text/plain")):  # fmt: skip
        value = _string(item.get(key))
        if value:
            summary, summary_type = value, kind
            break
    tags = item.get("tags")
    return RawEntry(
        guid=guid_text or None,
        link=link or None,
        title=_string(item.get("title")),
        title_type="text/plain",
        summary=summary,
        summary_type=summary_type,
        published=_date(item.get("date_published")) or _date(item.get("date_modified")),
        categories=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
    )


def _date(value: object) -> datetime | None:
    """An RFC 3339 date, as JSON Feed requires, in UTC; None when missing or invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _is_version(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_VERSION_PREFIX)


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:120]
