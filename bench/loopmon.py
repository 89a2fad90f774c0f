"""One ``monitor once`` cycle run in-process, with an event-loop lag monitor (and a profiler).

Usage::

    .venv/bin/python bench/loopmon.py --rules DIR --state PATH [--profile out.prof]

Does what ``monitor once`` does (load config, open the store, poll every
feed, deliver to stdout, prune) through the same :func:`monitor.app.run_cycle`,
while a task sleeps 10 ms at a time and records how late it wakes up. Any
lateness is time the loop could not run: a parse, a database write or a log
call that held it, or the GIL held by a parse thread, or (on a loaded machine)
no free core. ``max_busy_ms`` separates the first: the most CPU time the loop's
own thread used within one tick, i.e. code that ran on the loop without
yielding. Prints one JSON line: ``max_lag_ms``, ``p99_lag_ms``,
``max_busy_ms``, ``samples``, ``wall``, ``cpu`` and the cycle summary.

``--threads N`` sets the size of the loop's default executor (where
``asyncio.to_thread`` parses feeds), to see what parse parallelism does to lag.
``--switch-interval S`` sets how soon a thread holding the GIL must hand it
over (Python's default is 5 ms), to see what GIL hand-offs do to lag.
``--profile FILE`` runs the cycle under cProfile, writes the stats to FILE
and prints the top functions by own time to stderr (the profile slows the
cycle down; don't read lag from a profiled run).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: find the monitor package
    sys.path.insert(0, str(ROOT))

from monitor import logs  # noqa: E402
from monitor.app import (  # noqa: E402
    Settings,
    freeze_startup_objects,
    load_config,
    make_deliverer,
    make_feed_health,
    run_cycle,
    utc_now,
)
from monitor.notify import notifier_from_env  # noqa: E402
from monitor.pipeline import PollSettings  # noqa: E402
from monitor.store import Store  # noqa: E402

TICK = 0.010


async def _watch(lags: list[float], busy: list[float], stop: asyncio.Event) -> None:
    """Sleep ``TICK`` at a time until ``stop``; record each wake-up's lateness, and the CPU
    time the loop's own thread used meanwhile (lateness without it is time spent waiting
    for the GIL or for a core, not code running on the loop)."""
    limit = time.monotonic() + 3600  # bounded even if the cycle never ends
    while not stop.is_set() and time.monotonic() < limit:
        before, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(TICK)
        lags.append(time.perf_counter() - before - TICK)
        busy.append(time.thread_time() - cpu)


async def _cycle(
    rules_dir: Path, state: Path, lags: list[float], busy: list[float], workers: int | None
) -> str:
    if workers is not None:  # an experiment: how many threads parse at once
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
    config = load_config(rules_dir)
    settings = Settings.from_env(os.environ)
    freeze_startup_objects()  # as `monitor once` does
    # The parse pool `monitor once` would use (MONITOR_PARSE_PROCESSES; auto by feed count).
    parser = settings.parse_pool(len(config.feeds.feeds))
    parser.start()
    poll = PollSettings(limits=settings.limits, retention=settings.retention, parser=parser)
    store = Store.open(state)
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch(lags, busy, stop))
    try:
        notifier = notifier_from_env(os.environ, stdout=sys.stdout)
        report = await run_cycle(
            config.feeds.feeds,
            config.rules,
            store,
            settings=settings,
            poll=poll,
            deliverer=make_deliverer(store, notifier),
            feed_health=make_feed_health(store, notifier, os.environ),
        )
        store.prune(utc_now(), settings.retention)
    finally:
        stop.set()
        await watcher
        parser.close()
        store.close()
    return report.summary()


def main() -> int:
    """Command line: one measured cycle."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=Path, required=True, help="rules directory")
    parser.add_argument("--state", type=Path, required=True, help="state database")
    parser.add_argument("--profile", type=Path, help="write cProfile stats here")
    parser.add_argument(
        "--threads",
        type=int,
        help="size of the loop's default executor, where feeds are parsed (default: Python's)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval() in seconds (Python's default: 0.005)",
    )
    parser.add_argument("--top", type=int, default=30, help="functions to list with --profile")
    args = parser.parse_args()
    logs.configure(os.environ, level=os.environ.get("MONITOR_LOG_LEVEL") or "INFO")
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    lags: list[float] = []
    busy: list[float] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    if args.profile:
        profiler = cProfile.Profile()
        summary = profiler.runcall(
            asyncio.run, _cycle(args.rules, args.state, lags, busy, args.threads)
        )
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
        print(text.getvalue(), file=sys.stderr)
    else:
        summary = asyncio.run(_cycle(args.rules, args.state, lags, busy, args.threads))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ordered = sorted(lags)
    result = {
        "max_lag_ms": round(1000 * max(ordered, default=0.0), 1),
        "p99_lag_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1) if ordered else 0,
        "max_busy_ms": round(1000 * max(busy, default=0.0), 1),
        "samples": len(ordered),
        "wall": round(wall, 3),
        "cpu": round(cpu, 3),
        "summary": summary,
    }
    # stdout may carry alerts (stdout delivery): the result goes last, on its own line.
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
