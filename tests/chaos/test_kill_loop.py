"""The crash loop of ``bench/chaos.py``, short enough for every test run.

``monitor once`` and ``monitor run`` are started and SIGKILLed over and over
(during a fetch, right after a feed answered, while Slack holds a message's
answer, right after Slack recorded it, at random), while Slack rate-limits,
fails and drops connections. Afterwards every entry that should have alerted
must have been posted exactly once (bot token) or at least once (webhook).
The long variant (200 kills) is ``python bench/chaos.py --kills 200``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent


def _load_chaos() -> ModuleType:
    """Import ``bench/chaos.py`` (bench/ holds scripts, not a package)."""
    path = ROOT / "bench" / "chaos.py"
    spec = importlib.util.spec_from_file_location("bench_chaos", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chaos = _load_chaos()


def test_twenty_kills_with_a_bot_token_lose_nothing_and_post_nothing_twice(
    tmp_path: Path,
) -> None:
    card = chaos.run_chaos(kills=20, mode="bot", seed=2024, max_seconds=75, workdir=tmp_path)
    print(card.render())
    assert card.kills == 20, card.render()
    assert card.lost == [] and card.duplicated == {}, card.render()
    assert card.passed, card.render()
    assert card.expected >= 10  # the loop really had things to deliver


def test_kills_with_a_webhook_lose_nothing(tmp_path: Path) -> None:
    card = chaos.run_chaos(kills=6, mode="webhook", seed=7, max_seconds=40, workdir=tmp_path)
    print(card.render())
    assert card.kills == 6, card.render()
    assert card.lost == [], card.render()
    assert card.passed, card.render()
