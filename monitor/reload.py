"""Hot reload: notice edits under ``rules/`` and validate them before they take effect.

The watcher polls file names, sizes and modification times (a handful of
small files: no inotify dependency needed, and it works on bind mounts where
inotify does not). A change is loaded and validated in full, rule examples
included; only a valid set replaces the one in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.app import Config, load_config
from monitor.errors import ConfigError, ConfigErrors
from monitor.models import Feed

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(rules_dir: Path) -> Fingerprint:
    """Names, sizes and mtimes of the config files: changes when any of them does."""
    files: list[tuple[str, int, int]] = []
    try:
        paths = sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])
    except OSError:
        return ()
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue  # removed between listing and stat: the next look sees it
        files.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(files)


@dataclass(frozen=True, slots=True)
class FeedChanges:
    """How the feed list differs between two configs."""

    added: tuple[Feed, ...]
    removed: tuple[Feed, ...]
    changed: tuple[Feed, ...]  # same name, new url/interval/tags (the new version)


def diff_feeds(old: Sequence[Feed], new: Sequence[Feed]) -> FeedChanges:
    """Compare feed lists by name."""
    before = {f.name: f for f in old}
    after = {f.name: f for f in new}
    return FeedChanges(
        added=tuple(f for name, f in after.items() if name not in before),
        removed=tuple(f for name, f in before.items() if name not in after),
        changed=tuple(f for name, f in after.items() if name in before and before[name] != f),
    )


def try_reload(rules_dir: Path) -> tuple[Config | None, list[str]]:
    """Load and fully validate the config; (config, []) or (None, the problems)."""
    try:
        return load_config(rules_dir, check_examples=True), []
    except ConfigErrors as exc:
        return None, [e.describe() for e in exc.errors]
    except ConfigError as exc:
        return None, [exc.describe()]
