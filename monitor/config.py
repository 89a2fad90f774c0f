"""Loading and validating ``rules/feeds.yaml``.

All of the file is checked before anything runs, and every problem found is
reported at once with its file and line, so one ``monitor check`` shows the
whole list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from monitor.durations import parse_duration
from monitor.errors import ConfigError, ConfigErrors
from monitor.models import Feed

FEEDS_FILE = "feeds.yaml"
DEFAULT_INTERVAL = timedelta(minutes=15)
MIN_INTERVAL = timedelta(seconds=10)
MAX_INTERVAL = timedelta(days=7)
LINE_KEY = "__line__"

_FEED_KEYS = {"name", "url", "tags", "interval"}
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping, for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE_KEY] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file, turning I/O and syntax problems into a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("file not found", file=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=path) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        problem = exc.problem or "invalid YAML"
        raise ConfigError(f"YAML syntax error: {problem}", file=path, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", file=path) from exc


def line_of(value: object) -> int | None:
    """The line a mapping started on, if the loader recorded it."""
    if isinstance(value, Mapping):
        line = value.get(LINE_KEY)
        return line if isinstance(line, int) else None
    return None


def unknown_keys(mapping: Mapping[str, Any], known: set[str]) -> list[str]:
    """Keys of ``mapping`` not in ``known`` (ignoring the recorded line)."""
    return sorted(str(k) for k in mapping if k != LINE_KEY and k not in known)


def check_http_url(url: object) -> str | None:
    """None when ``url`` is an absolute http(s) URL, else the reason it is not."""
    if not isinstance(url, str) or not url.strip():
        return "needs a url"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        return f"url '{url}' must start with http:// or https://"
    if not parts.hostname:
        return f"url '{url}' has no host name"
    return None


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """The validated sources."""

    feeds: tuple[Feed, ...]
    path: Path

    @property
    def tags(self) -> set[str]:
        """Every tag used by at least one feed."""
        return {t for f in self.feeds for t in f.tags}


def load_feeds(path: Path) -> FeedsConfig:
    """Load and validate ``feeds.yaml``; raise ConfigErrors listing every problem."""
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("feeds"), list):
        raise ConfigErrors(
            [
                ConfigError(
                    "expected a top-level 'feeds:' list, e.g.\n  feeds:\n    - name: NIST news\n"
                    "      url: https://www.nist.gov/news-events/news/rss.xml",
                    file=path,
                )
            ]
        )
    errors: list[ConfigError] = []
    extra = unknown_keys(data, {"feeds", "defaults"})
    if extra:
        errors.append(
            ConfigError(
                f"unknown top-level key(s) {', '.join(extra)}; "
                "expected 'feeds' and optionally 'defaults'",
                file=path,
            )
        )
    default_interval = DEFAULT_INTERVAL
    defaults = data.get("defaults") or {}
    if isinstance(defaults, Mapping) and "interval" in defaults:
        try:
            default_interval = _interval(defaults["interval"])
        except ValueError as exc:
            errors.append(ConfigError(f"defaults: {exc}", file=path, line=line_of(defaults)))

    feeds: list[Feed] = []
    names: dict[str, int | None] = {}
    urls: dict[str, str] = {}
    for index, item in enumerate(data["feeds"], start=1):
        try:
            feed = _feed(item, index, default_interval)
        except ConfigError as exc:
            errors.append(
                ConfigError(exc.reason, file=path, feed=exc.feed, line=exc.line or line_of(item))
            )
            continue
        line = line_of(item)
        key = feed.name.casefold()
        if key in names:
            errors.append(
                ConfigError(
                    f"duplicate feed name (first used on line {names[key]}); names must be unique",
                    file=path,
                    feed=feed.name,
                    line=line,
                )
            )
            continue
        if feed.url in urls:
            errors.append(
                ConfigError(
                    f"same url as feed '{urls[feed.url]}'; list each source once",
                    file=path,
                    feed=feed.name,
                    line=line,
                )
            )
            continue
        names[key] = line
        urls[feed.url] = feed.name
        feeds.append(feed)
    if errors:
        raise ConfigErrors(errors)
    if not feeds:
        raise ConfigErrors([ConfigError("no feeds listed under 'feeds:'", file=path)])
    return FeedsConfig(tuple(feeds), path)


def _interval(value: object) -> timedelta:
    interval = parse_duration(str(value))
    if interval < MIN_INTERVAL:
        raise ValueError(
            f"interval {value} is too short; poll at most every "
            f"{int(MIN_INTERVAL.total_seconds())}s to stay polite"
        )
    if interval > MAX_INTERVAL:
        raise ValueError(f"interval {value} is longer than 7d")
    return interval


def _feed(item: object, index: int, default_interval: timedelta) -> Feed:
    if not isinstance(item, Mapping):
        raise ConfigError(f"feed #{index} must be a mapping with name and url, got {item!r}")
    line = line_of(item)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"feed #{index} needs a non-empty 'name'", line=line)
    name = name.strip()
    extra = unknown_keys(item, _FEED_KEYS)
    if extra:
        raise ConfigError(
            f"unknown key(s) {', '.join(extra)}; known keys: {', '.join(sorted(_FEED_KEYS))}",
            feed=name,
            line=line,
        )
    problem = check_http_url(item.get("url"))
    if problem:
        raise ConfigError(problem, feed=name, line=line)
    tags_value = item.get("tags", [])
    if isinstance(tags_value, str):
        tags_value = [tags_value]
    if not isinstance(tags_value, list):
        raise ConfigError(
            "tags must be a list of words, e.g. [government, uk]", feed=name, line=line
        )
    tags: list[str] = []
    for tag in tags_value:
        text = str(tag).strip().lower()
        if not _TAG.match(text):
            raise ConfigError(
                f"tag '{tag}' must be lower-case letters, digits, '-', '_' or '.'",
                feed=name,
                line=line,
            )
        tags.append(text)
    interval = default_interval
    if "interval" in item:
        try:
            interval = _interval(item["interval"])
        except ValueError as exc:
            raise ConfigError(str(exc), feed=name, line=line) from exc
    return Feed(
        name=name, url=str(item["url"]).strip(), tags=tuple(dict.fromkeys(tags)), interval=interval
    )
