"""Helpers for tests that need a rules directory on disk."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

SIMPLE_RULES = """
lists:
  bodies: [AI Safety Institute, AI Security Institute, AISI]
rules:
  - name: partnerships
    description: Institutes or labs agreeing to work together on AI safety.
    query: '(@bodies OR "AI safety") AND (partner* OR memorandum OR agreement OR collaborat*)'
"""


def write_rules_dir(
    root: Path,
    feeds: Sequence[Mapping[str, Any]],
    rules: str = SIMPLE_RULES,
    *,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``feeds.yaml`` and one rule file under ``root/rules``; return the directory."""
    rules_dir = root / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "feeds.yaml").write_text(yaml.safe_dump({"feeds": list(feeds)}), "utf-8")
    (rules_dir / "rules.yaml").write_text(textwrap.dedent(rules), "utf-8")
    for name, text in (extra_files or {}).items():
        (rules_dir / name).write_text(textwrap.dedent(text), "utf-8")
    return rules_dir
