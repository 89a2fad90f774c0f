"""HTML news listing pages as sources (``type: html``).

A listing page ("News", "Press releases") repeats one block per item. The
feed's ``select`` says which CSS selector finds those blocks and where in
each block the title, link, date and summary are; this module turns each
block into a ``RawEntry``, exactly what the RSS parser produces, so the
normalize stage gives it the same canonical-link id, plain text and UTC date.

A listing whose selectors match nothing is a *failure* (``FeedParseError``),
never "no news": a redesigned page must show up in feed health.

Parsing uses selectolax (the Lexbor HTML5 parser); it costs CPU, so call
:func:`parse_html_listing` from a worker thread, like ``parse_feed``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from monitor.dates import parse_date, zone
from monitor.errors import FeedParseError
from monitor.models import Feed, HtmlSelectors, ParsedFeed, RawEntry
from monitor.normalize import plain_text

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "FieldSpec",
    "PageInfo",
    "decode_html",
    "describe_page",
    "parse_field",
    "parse_html_listing",
    "selector_problems",
]

MAX_ITEMS = 500  # a listing page with more blocks than this is not a news list
_ATTR = re.compile(r"^(?P<css>.*?)\s*@(?P<attr>[A-Za-z_:][-A-Za-z0-9_:.]*)$")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_DEFAULT_LINK = "a[href]@href"


def _parse_html(text: str) -> LexborHTMLParser:
    # selectolax is imported on first use: most setups have no HTML sources.
    from selectolax.lexbor import LexborHTMLParser

    return LexborHTMLParser(text)


@cache
def _probe() -> LexborHTMLParser:
    return _parse_html("<p></p>")  # only used to compile selectors


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where one field of an item is: ``css`` below the item (None: the item itself),
    and ``attr`` to read (None: the element's text)."""

    css: str | None
    attr: str | None

    def describe(self) -> str:
        """The spec as written in feeds.yaml."""
        return (self.css or "") + (f"@{self.attr}" if self.attr else "")


def parse_field(spec: str) -> FieldSpec:
    """``"h3 a@href"`` -> FieldSpec("h3 a", "href"); ``"@href"`` reads the item itself."""
    text = spec.strip()
    found = _ATTR.match(text)
    if found is None:
        return FieldSpec(text or None, None)
    return FieldSpec(found["css"].strip() or None, found["attr"].lower())


def selector_problems(select: HtmlSelectors) -> list[str]:
    """Why each selector of ``select`` cannot work (empty list: all compile)."""
    problems: list[str] = []
    fields = {
        "item": select.item,
        "title": select.title,
        "link": select.link,
        "date": select.date,
        "summary": select.summary,
    }
    for name, spec in fields.items():
        if spec is None:
            continue
        if name == "item":
            css: str | None = spec.strip()
            if "@" in spec and _ATTR.match(spec.strip()):
                problems.append(f"select.item '{spec}' must be a plain CSS selector (no @attr)")
                continue
        else:
            css = parse_field(spec).css
        if css is None:
            if name == "item":
                problems.append("select.item must not be empty")
            continue
        from selectolax.lexbor import SelectolaxError

        try:
            _probe().css(css)
        except (SelectolaxError, ValueError) as exc:
            problems.append(f"select.{name} '{spec}' is not a valid CSS selector ({exc})")
    return problems


def decode_html(body: bytes, headers: Mapping[str, str]) -> str:
    """Decode an HTML body: BOM, then the Content-Type charset, then ``<meta charset>``, then UTF-8.

    Undecodable bytes become U+FFFD rather than failing the page.
    """
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, errors="replace").lstrip("\ufeff")
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    declared = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.I)
    # The <meta> prescan is what browsers do (HTML spec 13.2.3.2): only the first 1 KB.
    meta = _META_CHARSET.search(body[:1024])
    for candidate in (
        declared[1] if declared else None,
        meta[1].decode("ascii", "replace") if meta else None,
    ):
        if candidate:
            try:
                codec = codecs.lookup(candidate).name
            except LookupError:
                continue
            return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")


def parse_html_listing(
    body: bytes, headers: Mapping[str, str], url: str, feed: Feed, now: datetime
) -> ParsedFeed:
    """Turn a listing page into a ``ParsedFeed`` using ``feed.select``.

    ``url`` is the page's final URL: relative links are resolved against it
    (or against the page's ``<base href>``). Dates are read with
    :func:`monitor.dates.parse_date` in ``feed.timezone`` and
    ``feed.date_order``. Raises ``FeedParseError`` when the item selector
    matches nothing, or when no item has a link or a title: the page has
    changed and the selectors need updating. Items without a link are
    skipped, and a date or summary selector that matches in no item is
    reported as ``bozo_reason`` (the entries are still usable).
    """
    select = feed.select
    if select is None:
        raise FeedParseError("type: html needs a 'select:' mapping with at least 'item'", url=url)
    tree = _parse_html(decode_html(body, headers))
    base = _base_url(tree, url)
    blocks = tree.css(select.item)
    if not blocks:
        raise FeedParseError(
            f"the item selector '{select.item}' matched nothing on the page: the site was "
            "probably redesigned; update 'select:' in feeds.yaml (try `monitor feeds discover "
            f"{url}`)",
            url=url,
        )
    link_spec = parse_field(select.link or _DEFAULT_LINK)
    title_spec = parse_field(select.title) if select.title else None
    date_spec = parse_field(select.date) if select.date else None
    summary_spec = parse_field(select.summary) if select.summary else None
    tz = zone(feed.timezone)

    entries: list[RawEntry] = []
    no_link = no_title = dated = date_found = summarised = 0
    unread_date: str | None = None
    for block in blocks[:MAX_ITEMS]:
        link = _value(block, link_spec)
        if not link:
            no_link += 1
            continue
        if title_spec is not None:
            title = _value(block, title_spec)
        else:  # the default title is the text of the link we used
            link_node = _node(block, link_spec)
            title = link_node.text(separator=" ", strip=True) if link_node is not None else ""
        if not plain_text(title, "text/plain"):
            no_title += 1
        published = None
        if date_spec is not None:
            raw_date = _value(block, date_spec)
            if raw_date:
                date_found += 1
                published = parse_date(raw_date, now, tz=tz, order=feed.date_order)
                if published is None:
                    unread_date = unread_date or raw_date
                else:
                    dated += 1
        summary = _value(block, summary_spec) if summary_spec is not None else ""
        summarised += bool(summary)
        entries.append(
            RawEntry(
                guid=None,  # the id is the canonical link, as the issue asks
                link=_join(base, link),
                title=title,
                title_type="text/plain",
                summary=summary,
                summary_type="text/plain",
                published=published,
            )
        )

    count = min(len(blocks), MAX_ITEMS)
    if not entries:
        raise FeedParseError(
            f"the item selector '{select.item}' matched {count} element(s) but the link "
            f"selector '{link_spec.describe()}' found no link in any of them: update 'select:' "
            "in feeds.yaml",
            url=url,
        )
    if no_title == len(entries):
        shown = title_spec.describe() if title_spec else "the link text"
        raise FeedParseError(
            f"the title selector ({shown}) found no text in any of the {count} items: update "
            "'select:' in feeds.yaml",
            url=url,
        )
    warnings = []
    if no_link:
        warnings.append(f"{no_link} of {count} items had no link and were skipped")
    if date_spec is not None and not date_found:
        warnings.append(f"the date selector '{date_spec.describe()}' matched in no item")
    elif unread_date is not None and not dated:
        warnings.append(f"no date could be read (e.g. '{unread_date[:60]}')")
    if summary_spec is not None and not summarised:
        warnings.append(f"the summary selector '{summary_spec.describe()}' matched in no item")
    title_node = tree.css_first("title")
    return ParsedFeed(
        title=title_node.text(strip=True) if title_node is not None else "",
        entries=tuple(entries),
        bozo=bool(warnings),
        bozo_reason="; ".join(warnings) or None,
    )


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What one article page says about itself."""

    title: str
    summary: str
    published: str | None  # as written (article:published_time, <time datetime>)


def describe_page(body: bytes, headers: Mapping[str, str]) -> PageInfo:
    """Title, summary and date of an article page, for sitemap entries.

    Title: ``og:title``, else the first ``<h1>``, else ``<title>``. Summary:
    ``og:description`` / ``<meta name="description">``, else the first
    paragraph of at least 80 characters in ``<article>`` or ``<main>``.
    """
    tree = _parse_html(decode_html(body, headers))
    title = (
        _meta(tree, "og:title")
        or _text(tree.css_first("h1"))
        or _text(tree.css_first("title"))
        or ""
    )
    summary = _meta(tree, "og:description") or _meta(tree, "description") or ""
    if not summary:
        for paragraph in tree.css("article p, main p, p"):
            text = paragraph.text(separator=" ", strip=True)
            if len(text) >= 80:
                summary = text
                break
    published = _meta(tree, "article:published_time")
    if not published:
        time_node = tree.css_first("article time[datetime], main time[datetime]")
        published = time_node.attributes.get("datetime") if time_node is not None else None
    return PageInfo(title=title, summary=summary, published=published or None)


def _meta(tree: LexborHTMLParser, name: str) -> str | None:
    for node in tree.css("meta[property], meta[name]"):
        attrs = node.attributes
        key = (attrs.get("property") or attrs.get("name") or "").lower()
        if key == name and attrs.get("content"):
            return (attrs.get("content") or "").strip() or None
    return None


def _text(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    return node.text(separator=" ", strip=True) or None


def _node(block: LexborNode, spec: FieldSpec) -> LexborNode | None:
    if spec.css is None:
        return block
    return block.css_first(spec.css)


def _value(block: LexborNode, spec: FieldSpec) -> str:
    """The field's text or attribute in ``block``; "" when it is not there.

    With an attribute, the first matching element that *has* the attribute
    wins: "a@href" skips an anchor without href.
    """
    if spec.attr is None:
        node = _node(block, spec)
        return node.text(separator=" ", strip=True) if node is not None else ""
    candidates = [block] if spec.css is None else block.css(spec.css)
    for node in candidates:
        value = node.attributes.get(spec.attr)
        if value and value.strip():
            return value.strip()
    return ""


def _base_url(tree: LexborHTMLParser, url: str) -> str:
    base = tree.css_first("base[href]")
    href = base.attributes.get("href") if base is not None else None
    return _join(url, href) if href else url


def _join(base: str, link: str) -> str:
    try:
        return urljoin(base, link.strip())
    except ValueError:
        return link  # normalize rejects what cannot be joined
