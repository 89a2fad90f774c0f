"""Normalize stage: ``RawEntry`` records in, ``Entry`` records out.

Everything a feed says is untrusted. This stage turns titles and summaries
into bounded plain text (no markup, no invisible or direction-changing
characters), keeps only http(s) links in canonical form, gives every entry an
id that stays the same across polls, and puts every entry on a UTC clock.
Escaping for Slack is not done here: the text is plain text, and the notify
stage escapes ``&``, ``<`` and ``>`` when it builds a message.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from monitor.links import canonical_link
from monitor.models import Entry, Feed, ParsedFeed, RawEntry

TITLE_LIMIT = 1_000
SUMMARY_LIMIT = 5_000
FALLBACK_TITLE_LIMIT = 100
CATEGORY_LIMIT = 200
UNTITLED = "(untitled)"
# A date later than this past ``now`` is a feed bug (or hostile): clamp it.
FUTURE_SLACK = timedelta(days=1)
# Ids longer than this (a hostile multi-kilobyte guid) are stored as a hash.
_MAX_ID = 2_048

_ELLIPSIS = "…"

# Characters removed from all text: C0/C1 controls that are not whitespace,
# and invisible format characters that can hide or reorder text (zero-width
# spaces and joiners, bidi embeddings/overrides/isolates such as U+202E, BOM,
# tag characters, invisible fillers) or split a word so a rule cannot match it.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e0fff"
    "\ud800-\udfff]"
)

# Elements whose text is never content.
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})
# Elements that separate words: "<p>a</p><p>b</p>" is "a b", not "ab".
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th",
        "tr", "ul",
    }
)  # fmt: skip


def normalize_entries(
    parsed: ParsedFeed, feed: Feed, now: datetime, *, base_url: str | None = None
) -> list[Entry]:
    """Turn one parsed feed document into ``Entry`` records, in feed order.

    ``now`` (timezone-aware) is the time of this poll. ``base_url`` is what
    relative links are resolved against (the final URL after redirects); it
    defaults to ``feed.url``. Entries repeated within the document (same id)
    are kept once, first occurrence wins.

    Dates: an entry without a usable date gets ``published=now`` and
    ``published_from_feed=False``. An entry dated more than a day after
    ``now`` (buggy or hostile feeds date items in 2099) gets
    ``published=now`` but keeps ``published_from_feed=True``: the feed did
    give a date, it just cannot be believed.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    base = base_url or feed.url
    entries: list[Entry] = []
    seen: set[str] = set()
    for raw in parsed.entries:
        entry = _normalize_entry(raw, feed, now, base)
        if entry.id not in seen:
            seen.add(entry.id)
            entries.append(entry)
    return entries


def _normalize_entry(raw: RawEntry, feed: Feed, now: datetime, base: str) -> Entry:
    link = canonical_link(raw.link, base)
    title = plain_text(raw.title, raw.title_type, limit=TITLE_LIMIT)
    summary = plain_text(raw.summary, raw.summary_type, limit=SUMMARY_LIMIT)
    # The id uses the feed's own title, before any fallback below.
    id_ = entry_id(raw, link, title, summary)
    if not title:
        title = _truncate(summary, FALLBACK_TITLE_LIMIT) if summary else UNTITLED
    published, from_feed = _published(raw.published, now)
    return Entry(
        id=id_,
        source=feed.name,
        link=link,
        title=title,
        summary=summary,
        published=published,
        published_from_feed=from_feed,
        tags=feed.tags,
        categories=_categories(raw.categories),
    )


def entry_id(raw: RawEntry, link: str | None, title: str, summary: str) -> str:
    """A stable id for an entry; the prefix says which kind it is.

    - ``guid:<guid>`` when the feed gives a guid/id (whitespace stripped; an
      http(s) guid is canonicalised like a link, so tracking parameters added
      to it between polls do not make it a new entry);
    - else ``link:<canonical link>`` (``link`` must already be canonical);
    - else ``sha256:<hex>`` of the case-folded, whitespace-collapsed
      ``title`` and ``summary`` (pass the normalised plain text).

    A guid or link longer than 2,048 characters becomes ``guid:sha256:<hex>``
    or ``link:sha256:<hex>`` so a hostile feed cannot make huge keys.
    """
    guid = (raw.guid or "").strip()
    if guid:
        if guid.lower().startswith(("http://", "https://")):
            guid = canonical_link(guid) or guid
        return _bounded_id("guid:", guid)
    if link:
        return _bounded_id("link:", link)
    folded = "\x1f".join(" ".join(part.casefold().split()) for part in (title, summary))
    return "sha256:" + _sha256(folded)


def plain_text(value: str, content_type: str = "text/html", *, limit: int | None = None) -> str:
    """Render feed text as one line of plain text.

    HTML (``content_type`` text/html or application/xhtml+xml) loses its
    tags, comments and the contents of ``<script>``/``<style>``; entities are
    decoded exactly once, so ``&amp;lt;`` becomes the text ``&lt;``. Any
    other type is already plain text: ``<!here>`` stays as written. In both
    cases control characters and invisible/bidi-override characters are
    removed and runs of whitespace become one space. With ``limit``, text
    longer than ``limit`` characters is cut at a word boundary and ends in
    '…' (the result is at most ``limit`` characters).
    """
    text = _strip_html(value) if _is_html(content_type) else value
    text = unicodedata.normalize("NFC", _INVISIBLE.sub("", text))
    text = " ".join(text.split())
    if limit is not None:
        text = _truncate(text, limit)
    return text


def _is_html(content_type: str) -> bool:
    """True for the HTML types feedparser reports (text/html, application/xhtml+xml)."""
    return "html" in content_type.lower()


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, skipping script-like elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def _strip_html(value: str) -> str:
    """The text content of an HTML fragment, entities decoded once."""
    parser = _TextExtractor()
    try:
        parser.feed(value)
        parser.close()
    except Exception:
        # html.parser can still trip over odd markup declarations ("<![if");
        # keep what was collected rather than failing the whole feed.
        pass
    return "".join(parser.parts)


def _truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, ending in '…'."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # Back up to the last space unless the cut already falls between words;
    # a single huge "word" (a URL) is cut hard rather than dropped.
    if text[limit - 1] != " ":
        space = cut.rfind(" ")
        if space > limit // 2:
            cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def _published(published: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """(UTC time, whether it came from the feed); see ``normalize_entries``."""
    if published is None:
        return now, False
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)  # RawEntry dates are UTC
    published = published.astimezone(UTC)
    if published > now + FUTURE_SLACK:
        return now, True
    return published, True


def _categories(categories: tuple[str, ...]) -> tuple[str, ...]:
    """The entry's categories as distinct, non-empty plain text."""
    result: list[str] = []
    for category in categories:
        text = plain_text(category, "text/plain", limit=CATEGORY_LIMIT)
        if text and text not in result:
            result.append(text)
    return tuple(result)


def _bounded_id(prefix: str, value: str) -> str:
    if len(value) > _MAX_ID:
        return f"{prefix}sha256:{_sha256(value)}"
    return prefix + value


def _sha256(text: str) -> str:
    # surrogatepass: a lone surrogate from a broken feed must not crash hashing.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
