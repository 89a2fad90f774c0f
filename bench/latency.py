"""Alert latency of ``monitor run``: from an item appearing in a feed to its Slack message.

Usage::

    .venv/bin/python bench/latency.py [--feeds 100] [--interval 60] [--samples 12]

Starts the feed farm (``bench/farm.py``) and the Slack Web API emulator of
the tests (``tests/slack_emulator.py``) on 127.0.0.1, runs ``monitor run``
against them (bot-token mode, every feed at ``--interval``), waits until
every feed has had its first poll (which records without alerting), then
adds one item with a matching title to ``--samples`` different feeds at
evenly spread moments over one interval, and times each until the emulator
holds a message with that title (checked every 50 ms).

With polls every ``interval`` seconds an item waits for the next poll of its
feed: expect about ``interval / 2`` on average, at most ``interval`` plus the
scheduler's jitter (10% of the interval) plus the poll and the post.
Bounded: the whole run stops after about three minutes at the default
interval (first polls ≤ 31 s, one interval of bumps, then at most
``1.5 × interval + 15 s`` of waiting); a sample not delivered by then is
counted as missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (BENCH, ROOT):  # bench/ is scripts; tests/ is imported as a package from ROOT
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from farm import FarmProcess  # noqa: E402

from tests.slack_emulator import SlackEmulator  # noqa: E402


def _write_rules(directory: Path, urls: Sequence[str], interval: int) -> None:
    from cycle import write_rules

    write_rules(directory, urls, interval=f"{interval}s")


def measure_alert_latency(
    feeds: int = 100,
    *,
    interval: int = 60,
    samples: int = 12,
    work: Path | None = None,
    seed: int = 1,
) -> dict[str, object]:
    """Run the measurement; returns ``samples_s`` (seconds each), ``missed`` and settings."""
    work = work or Path(tempfile.mkdtemp(prefix="monitor-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    slack = SlackEmulator()
    slack.up()
    try:
        with FarmProcess(feeds) as farm:
            _write_rules(work / "rules", farm.urls(), interval)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONITOR_"))}
            env.update(
                SLACK_BOT_TOKEN=slack.token,
                SLACK_API_URL=slack.api_url,
                SLACK_CHANNEL="#alerts",
                MONITOR_HTTP_PORT="0",
                MONITOR_LOG_LEVEL="WARNING",
            )
            command = [sys.executable, "-m", "monitor", "run", "--rules", str(work / "rules")]
            command += ["--state", str(work / "state.db")]
            with (work / "run.err").open("wb") as err:
                service = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
                )
                try:
                    return _sample(farm, slack, service, feeds, interval, samples, rng)
                finally:
                    service.send_signal(signal.SIGTERM)
                    try:
                        service.wait(30)
                    except subprocess.TimeoutExpired:
                        service.kill()
                        service.wait(5)
    finally:
        slack.down()


def _sample(
    farm: FarmProcess,
    slack: SlackEmulator,
    service: subprocess.Popen[bytes],
    feeds: int,
    interval: int,
    samples: int,
    rng: random.Random,
) -> dict[str, object]:
    # 1. every feed's first poll (spread over ≤ 31 s by the service), with a bound.
    started = time.monotonic()
    while time.monotonic() - started < 45 + interval:
        hits = farm.stats()["hits"]
        assert isinstance(hits, dict)
        if len(hits) >= feeds:
            break
        if service.poll() is not None:
            raise RuntimeError(f"monitor run exited with {service.returncode}")
        time.sleep(0.5)
    else:
        raise RuntimeError("not every feed was polled once in time")
    time.sleep(2)  # let the last first polls finish recording
    first_polls = time.monotonic() - started

    # 2. one new matching item per chosen feed, spread evenly over one interval.
    chosen = rng.sample(range(feeds), min(samples, feeds))
    spacing = interval / len(chosen)
    pending: list[tuple[str, float]] = []  # (title, when it appeared); titles may repeat
    done: list[float] = []
    next_bump = time.monotonic()
    deadline = next_bump + interval + 1.5 * interval + 15
    seen = 0
    while (chosen or pending) and time.monotonic() < deadline:
        now = time.monotonic()
        if chosen and now >= next_bump:
            answer = farm.bump(feeds=[chosen.pop()], matching=1.0)
            titles = answer["titles"]
            assert isinstance(titles, list)
            pending.append((str(titles[0]), time.monotonic()))
            next_bump += spacing
        messages = slack.messages
        for message in messages[seen:]:
            # A later report of a story is a thread reply whose fallback text names only the
            # source; its title is in the blocks.
            posted = message.text + json.dumps(message.blocks or [], ensure_ascii=False)
            for index, (title, appeared) in enumerate(pending):
                if title in posted:
                    done.append(time.monotonic() - appeared)
                    del pending[index]
                    break
        seen = len(messages)
        if service.poll() is not None:
            raise RuntimeError(f"monitor run exited with {service.returncode}")
        time.sleep(0.05)
    latencies = sorted(done)
    return {
        "feeds": feeds,
        "interval_s": interval,
        "first_polls_s": round(first_polls, 1),
        "samples_s": [round(x, 2) for x in latencies],
        "missed": len(pending) + len(chosen),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure and print the samples and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=100, help="feeds in the farm (default 100)")
    parser.add_argument("--interval", type=int, default=60, help="poll interval, s (default 60)")
    parser.add_argument("--samples", type=int, default=12, help="items to time (default 12)")
    args = parser.parse_args(argv)
    if args.interval < 10:
        parser.error("feeds.yaml needs an interval of at least 10 s")
    report = measure_alert_latency(args.feeds, interval=args.interval, samples=args.samples)
    print(json.dumps(report))
    values = report["samples_s"]
    assert isinstance(values, list)
    if values:
        print(
            f"median {statistics.median(values):.1f} s, mean {statistics.mean(values):.1f} s, "
            f"max {max(values):.1f} s, missed {report['missed']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
