"""The benchmark harness can't rot: the feed farm serves valid feeds with ETags, and
``bench/cycle.py`` runs every phase at N=5 (see docs/benchmarks.md)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
if str(BENCH) not in sys.path:  # bench/ is scripts, not a package
    sys.path.insert(0, str(BENCH))

import cycle  # noqa: E402
from farm import FarmProcess, FeedFarm  # noqa: E402


@pytest.fixture(scope="module")
def farm() -> Iterator[FarmProcess]:
    with FarmProcess(5, max_seconds=120) as running:
        yield running


def test_farm_serves_feeds_with_validators(farm: FarmProcess) -> None:
    first = httpx.get(farm.url(2), timeout=10)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["last-modified"]
    assert 25_000 < len(first.content) < 50_000  # ~36 KB for 30 items
    parsed = feedparser.parse(io.BytesIO(first.content))
    assert not parsed.bozo
    assert len(parsed.entries) == 30
    assert all(len(e.summary) > 500 for e in parsed.entries)

    again = httpx.get(farm.url(2), headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304
    assert again.content == b""

    answer = farm.bump(feeds=[2], matching=1.0)
    assert answer["feeds"] == [2]
    changed = httpx.get(farm.url(2), headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    newest = feedparser.parse(io.BytesIO(changed.content)).entries
    assert len(newest) == 30
    assert newest[0].title == answer["titles"][0]
    assert httpx.get(f"{farm.base}/feeds/99.xml", timeout=10).status_code == 404


def test_bump_spreads_a_fraction_evenly() -> None:
    farm = FeedFarm(100)
    picked = farm.pick(0.1)
    assert len(picked) == 10
    assert picked == list(range(0, 100, 10))
    assert farm.pick(0.1, first=50, count=20) == [50, 60]


@pytest.mark.timeout(180)
def test_harness_runs_every_phase(tmp_path: Path) -> None:
    result = cycle.run_size(
        5,
        items=30,
        repeat=1,
        concurrency=None,
        latency=0.0,
        gzip=False,
        peer=None,
        lag=True,
        work=tmp_path,
        log=False,
    )
    for phase in cycle.PHASES:
        for tool in ("ours", "floor"):
            run = result.median(phase, tool)
            assert run is not None, (phase, tool, result.runs[phase][tool])
            assert run.wall > 0 and run.cpu > 0 and run.rss_mb > 10
        assert result.max_lag(phase) is not None
    assert "5 ok" in result.runs["cold"]["ours"][0].note
    assert "5 not modified" in result.runs["steady"]["ours"][0].note
    assert "1 ok" in result.runs["changed"]["ours"][0].note
    assert '"parsed": 1' in result.runs["changed"]["floor"][0].note
    rendered = cycle.table([result])
    assert "| 5 | steady |" in rendered
    assert "Targets at N = 5" in cycle.targets([result])
