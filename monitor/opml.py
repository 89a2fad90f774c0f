"""OPML import and export, so teams can move source lists to and from feed readers.

Import reads every ``<outline>`` with an ``xmlUrl`` (feed readers' feeds) and
turns it into a ``Feed`` through the same validation as ``feeds.yaml``; the
folders an outline sits in, and its ``category`` attribute, become tags. An
OPML file is untrusted input: it is parsed with DTDs and entities refused
(:mod:`monitor.sources.safexml`).

Export writes OPML 2.0. RSS/Atom/JSON feeds are ordinary ``type="rss"``
outlines any reader understands; HTML listings and sitemaps are written as
``type="link"`` outlines, and the monitor's own settings (type, selectors,
interval...) travel in attributes of the ``monitor:`` namespace, which
readers ignore, so an export imports back to the same feeds.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from monitor.config import DEFAULT_INTERVAL, feed_from_mapping
from monitor.durations import format_duration
from monitor.errors import ConfigError, MonitorError
from monitor.models import Feed
from monitor.sources.safexml import XMLError, local_name, parse_xml

__all__ = ["MONITOR_NS", "OpmlError", "OpmlImport", "export_opml", "parse_opml"]

MONITOR_NS = "urn:ai-safety-partnership-monitor:opml"
_OPTIONS = ("type", "interval", "select", "match", "max_pages", "timezone", "date_order")
_TAG_CHARS = re.compile(r"[^a-z0-9_.-]+")


class OpmlError(MonitorError):
    """The file is not OPML (or is refused as unsafe)."""


@dataclass(frozen=True, slots=True)
class OpmlImport:
    """What an OPML file held: usable feeds, and why other outlines were skipped."""

    feeds: tuple[Feed, ...]
    skipped: tuple[str, ...]


def parse_opml(data: bytes, *, default_interval: timedelta = DEFAULT_INTERVAL) -> OpmlImport:
    """Read the feeds of an OPML file.

    Each outline with an ``xmlUrl`` (or a ``monitor:type`` and a ``url``)
    becomes a feed named by its ``title`` (else ``text``, else the URL). A
    second outline with a URL already seen, or an outline that fails
    validation, is skipped with a reason; a repeated name gets " (2)", " (3)".
    Raises ``OpmlError`` when the file is not well-formed OPML.
    """
    try:
        root = parse_xml(data)
    except XMLError as exc:
        raise OpmlError(f"not an OPML file: {exc}") from exc
    if local_name(root.tag) != "opml":
        raise OpmlError(f"not an OPML file: the root element is <{local_name(root.tag)}>")
    body = next((c for c in root if local_name(c.tag) == "body"), None)
    if body is None:
        raise OpmlError("not an OPML file: no <body>")
    feeds: list[Feed] = []
    skipped: list[str] = []
    urls: set[str] = set()
    names: set[str] = set()
    for index, (outline, folders) in enumerate(_outlines(body, ()), start=1):
        mapping = _mapping(outline, folders)
        if mapping is None:
            continue
        label = str(mapping["name"])
        try:
            feed = feed_from_mapping(mapping, index, default_interval)
        except ConfigError as exc:
            skipped.append(f"'{label}': {exc.reason}")
            continue
        if feed.url in urls:
            skipped.append(f"'{label}': same url as an earlier outline")
            continue
        name, n = feed.name, 2
        while name.casefold() in names:
            name, n = f"{feed.name} ({n})", n + 1
        names.add(name.casefold())
        urls.add(feed.url)
        feeds.append(feed if name == feed.name else replace(feed, name=name))
    return OpmlImport(tuple(feeds), tuple(skipped))


def export_opml(
    feeds: Sequence[Feed],
    *,
    title: str = "AI safety partnership monitor sources",
    default_interval: timedelta = DEFAULT_INTERVAL,
) -> bytes:
    """An OPML 2.0 document (UTF-8 bytes) listing ``feeds`` in order."""
    ET.register_namespace("monitor", MONITOR_NS)
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"text": feed.name, "title": feed.name}
        if feed.kind == "rss":
            attrs.update(type="rss", xmlUrl=feed.url)
        else:
            attrs.update(type="link", url=feed.url)
        if feed.tags:
            attrs["category"] = ",".join(f"/{t}" for t in feed.tags)
        for key, value in _options(feed, default_interval).items():
            attrs[f"{{{MONITOR_NS}}}{key}"] = value
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _outlines(
    parent: ET.Element, folders: tuple[str, ...]
) -> Iterator[tuple[ET.Element, tuple[str, ...]]]:
    for child in parent:
        if local_name(child.tag) != "outline":
            continue
        yield child, folders
        label = child.get("title") or child.get("text") or ""
        inner = (*folders, label) if label and not child.get("xmlUrl") else folders
        yield from _outlines(child, inner)


def _mapping(outline: ET.Element, folders: tuple[str, ...]) -> dict[str, Any] | None:
    """The feeds.yaml mapping for one outline, or None when it is not a source (a folder)."""
    options = {k: outline.get(f"{{{MONITOR_NS}}}{k}") for k in _OPTIONS}
    url = outline.get("xmlUrl") or (outline.get("url") if options["type"] else None)
    if not url:
        return None
    name = (outline.get("title") or outline.get("text") or url).strip() or url
    tags = [_tag(f) for f in folders]
    for category in (outline.get("category") or "").split(","):
        tags.append(_tag(category.strip().rstrip("/").rpartition("/")[2]))
    mapping: dict[str, Any] = {"name": name, "url": url.strip(), "tags": [t for t in tags if t]}
    for key, value in options.items():
        if value is None:
            continue
        if key == "select":
            try:
                mapping[key] = json.loads(value)
            except ValueError:
                mapping[key] = value  # validation reports it
        elif key == "max_pages":
            mapping[key] = int(value) if value.isdigit() else value
        else:
            mapping[key] = value
    return mapping


def _options(feed: Feed, default_interval: timedelta) -> dict[str, str]:
    options: dict[str, str] = {}
    if feed.kind != "rss":
        options["type"] = feed.kind
    if feed.interval != default_interval:
        options["interval"] = format_duration(feed.interval)
    if feed.select is not None:
        select = {
            k: getattr(feed.select, k)
            for k in ("item", "title", "link", "date", "summary")
            if getattr(feed.select, k) is not None
        }
        options["select"] = json.dumps(select, ensure_ascii=False)
    if feed.match is not None:
        options["match"] = feed.match
    if feed.kind == "sitemap":
        options["max_pages"] = str(feed.max_pages)
    if feed.timezone is not None:
        options["timezone"] = feed.timezone
    if feed.date_order != "dmy":
        options["date_order"] = feed.date_order
    return options


def _tag(text: str) -> str:
    """A folder or category name as a feeds.yaml tag: "Government / UK" -> "government-uk"."""
    tag = _TAG_CHARS.sub("-", text.strip().lower()).strip("-_.")
    return tag[:40]
