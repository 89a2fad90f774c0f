"""Cycle benchmark: ``monitor once`` vs the floor vs feed2exec, on one local feed farm.

Usage (the whole comparison, as in docs/benchmarks.md)::

    .venv/bin/python bench/cycle.py --sizes 100,1000,5000 --peer --alert-latency

Other options: ``--items 30``, ``--repeat 3`` (median of runs, each from a
fresh state), ``--concurrency 10`` (MONITOR_CONCURRENCY and the floor's pool),
``--latency 0.02`` (seconds the farm adds to every answer), ``--gzip``,
``--json results.json``, ``--keep`` (leave the work directory).

For each N it starts ``bench/farm.py`` with N feeds × ``--items`` items and,
from a fresh state, runs three cycles of every tool against it:

1. ``cold``: the first poll of every feed (200s, every body parsed);
2. ``steady``: nothing changed (every feed answers 304);
3. ``changed``: one new item in 10% of the feeds (some match the shipped rules,
   so matching and delivery run too).

The tools, each a subprocess measured the same way (wall with
``time.perf_counter``, user+system CPU and peak RSS from ``os.wait4``; for
feed2exec's parse pool, CPU includes the pool workers and RSS is the largest
single process):

- ``ours``: ``python -m monitor once`` with rules copied from ``rules/`` and a
  generated ``feeds.yaml`` (alerts go to stdout: no Slack settings);
- ``floor``: ``bench/floor.py``, a bare concurrent conditional fetch plus
  feedparser on changed bodies only;
- ``feed2exec``: ``feed2exec fetch --parallel`` with the null output
  (``--peer``; installed on demand, see ``bench/peer_feed2exec.py``).

Alongside, ``bench/loopmon.py`` runs the same cycle in-process on its own
state with an event-loop lag monitor (``max lag``). ``--alert-latency`` also
runs ``bench/latency.py`` (``monitor run`` at a 60 s interval, ~3 minutes).

It prints one table with ratios from the same run, then the targets of the
benchmark issue measured at the largest N ≤ 1,000 that was run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:  # bench/ is scripts, not a package
    sys.path.insert(0, str(BENCH))

from farm import FarmProcess  # noqa: E402
from peer_feed2exec import Peer, ensure_peer, write_config  # noqa: E402

PHASES = ("cold", "steady", "changed")
TOOLS = ("ours", "floor", "feed2exec")
CHANGED_FRACTION = 0.1
RUN_TIMEOUT = 900.0  # seconds; one cycle of one tool


@dataclass(slots=True)
class Run:
    """One measured subprocess."""

    wall: float
    cpu: float
    rss_mb: float
    returncode: int
    note: str = ""  # e.g. the monitor's cycle summary, the floor's counts
    lag_ms: float | None = None  # loopmon only: worst wake-up lateness of a 10 ms sleep
    busy_ms: float | None = None  # loopmon only: most loop-thread CPU within one tick

    @property
    def ok(self) -> bool:
        """True when the process exited 0."""
        return self.returncode == 0


@dataclass(slots=True)
class SizeResult:
    """Every run at one N, by phase and tool."""

    feeds: int
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)
    lag: dict[str, list[Run]] = field(default_factory=dict)

    def add(self, phase: str, tool: str, run: Run) -> None:
        """Record ``run``."""
        self.runs.setdefault(phase, {}).setdefault(tool, []).append(run)

    def median(self, phase: str, tool: str) -> Run | None:
        """The run with the median wall time (None when the tool did not run)."""
        runs = [r for r in self.runs.get(phase, {}).get(tool, []) if r.ok]
        if not runs:
            return None
        return sorted(runs, key=lambda r: r.wall)[(len(runs) - 1) // 2]

    def max_lag(self, phase: str) -> float | None:
        """The worst loop lag seen in ``phase`` over all repeats."""
        lags = [r.lag_ms for r in self.lag.get(phase, []) if r.lag_ms is not None]
        return max(lags) if lags else None

    def max_busy(self, phase: str) -> float | None:
        """The most loop-thread CPU within one tick in ``phase`` over all repeats."""
        busy = [r.busy_ms for r in self.lag.get(phase, []) if r.busy_ms is not None]
        return max(busy) if busy else None


def measure(
    command: Sequence[str],
    *,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    timeout: float = RUN_TIMEOUT,
) -> Run:
    """Run ``command`` to completion; wall, CPU (user+sys) and peak RSS of it and its children.

    ``os.wait4`` reports the process's own usage plus that of the children it
    waited for (CPU summed, RSS the largest single process).
    """
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
    )


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " / ".join(text[-lines:])


def _summary_line(path: Path) -> str:
    """The monitor's ``polled N feeds (...)`` log line, if any."""
    for line in reversed(path.read_text(errors="replace").splitlines()):
        if "polled " in line and " feeds (" in line:
            return line[line.index("polled ") :]
    return ""


def write_rules(directory: Path, urls: Sequence[str], interval: str = "60s") -> None:
    """A rules directory: the shipped rule files plus a ``feeds.yaml`` of ``urls``."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in sorted((ROOT / "rules").glob("*.yaml")):
        if source.name != "feeds.yaml":
            shutil.copy(source, directory / source.name)
    lines = ["defaults:", f"  interval: {interval}", "feeds:"]
    for index, url in enumerate(urls):
        lines += [f"  - name: farm-{index:05d}", f"    url: {url}", "    tags: [news]"]
    (directory / "feeds.yaml").write_text("\n".join(lines) + "\n")


def base_env(concurrency: int | None) -> dict[str, str]:
    """The environment for measured runs: no Slack (alerts to stdout), INFO logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONITOR_"))}
    env["MONITOR_LOG_LEVEL"] = "INFO"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if concurrency is not None:
        env["MONITOR_CONCURRENCY"] = str(concurrency)
    return env


def run_size(
    feeds: int,
    *,
    items: int,
    repeat: int,
    concurrency: int | None,
    latency: float,
    gzip: bool,
    peer: Peer | None,
    lag: bool,
    work: Path,
    log: bool = True,
) -> SizeResult:
    """All phases × tools at ``feeds`` feeds, ``repeat`` times, on one farm."""
    result = SizeResult(feeds)
    env = base_env(concurrency)
    with FarmProcess(feeds, items=items, latency=latency, gzip=gzip) as farm:
        urls = farm.urls()
        for rep in range(repeat):
            here = work / f"n{feeds}" / f"r{rep}"
            rules = here / "rules"
            write_rules(rules, urls)
            url_file = here / "urls.txt"
            url_file.write_text("\n".join(urls) + "\n")
            peer_ini = here / "feed2exec.ini"
            write_config(peer_ini, urls)
            for phase in PHASES:
                if phase == "changed":
                    bumped = farm.bump(CHANGED_FRACTION)
                    if log:
                        print(f"  N={feeds}: new item in {len(bumped['feeds'])} feeds", flush=True)
                commands: dict[str, list[str]] = {
                    "ours": [
                        sys.executable,
                        "-m",
                        "monitor",
                        "once",
                        "--rules",
                        str(rules),
                        "--state",
                        str(here / "ours.db"),
                    ],
                    "floor": [
                        sys.executable,
                        str(BENCH / "floor.py"),
                        "--urls",
                        str(url_file),
                        "--state",
                        str(here / "floor.json"),
                        "--concurrency",
                        str(concurrency or 10),
                    ],
                }
                if peer is not None:
                    commands["feed2exec"] = peer.fetch_command(peer_ini, here / "feed2exec.db")
                for tool, command in commands.items():
                    out, err = here / f"{tool}-{phase}.out", here / f"{tool}-{phase}.err"
                    run = measure(command, env=env, stdout=out, stderr=err)
                    run.note = _summary_line(err) if tool == "ours" else _tail(out, 1)
                    if not run.ok:
                        run.note = f"exit {run.returncode}: {_tail(err)}"
                    result.add(phase, tool, run)
                    if log:
                        print(
                            f"  N={feeds} {phase:7} {tool:9} wall {run.wall:7.2f}s "
                            f"cpu {run.cpu:7.2f}s rss {run.rss_mb:6.1f} MB  {run.note[:90]}",
                            flush=True,
                        )
                if lag:
                    out, err = here / f"loopmon-{phase}.out", here / f"loopmon-{phase}.err"
                    command = [
                        sys.executable,
                        str(BENCH / "loopmon.py"),
                        "--rules",
                        str(rules),
                        "--state",
                        str(here / "loopmon.db"),
                    ]
                    run = measure(command, env=env, stdout=out, stderr=err)
                    if run.ok:
                        data = json.loads(out.read_text().strip().splitlines()[-1])
                        run.lag_ms = float(data["max_lag_ms"])
                        run.busy_ms = float(data["max_busy_ms"])
                        run.note = (
                            f"p99 {data['p99_lag_ms']} ms over {data['samples']} ticks; "
                            f"loop thread busy ≤ {data['max_busy_ms']} ms per tick"
                        )
                    else:
                        run.note = f"exit {run.returncode}: {_tail(err)}"
                    result.lag.setdefault(phase, []).append(run)
                    if log:
                        print(f"  N={feeds} {phase:7} loop lag  max {run.lag_ms} ms  {run.note}")
    return result


# -- reporting -----------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def _ratio(a: Run | None, b: Run | None) -> float | None:
    return a.wall / b.wall if a is not None and b is not None and b.wall > 0 else None


def table(results: Sequence[SizeResult]) -> str:
    """The results as a Markdown table: wall s / CPU s / peak MB per tool, ratios, loop lag."""
    head = (
        "| N | cycle | ours wall / CPU / MB | floor wall / CPU / MB | feed2exec wall / CPU / MB "
        "| ours ÷ floor | ours ÷ feed2exec | loop lag / busy ms |"
    )
    lines = [head, "|" + "---|" * 8]
    for res in results:
        for phase in PHASES:
            cells = []
            for tool in TOOLS:
                run = res.median(phase, tool)
                cells.append(
                    "—" if run is None else f"{run.wall:.2f} / {run.cpu:.2f} / {run.rss_mb:.0f}"
                )
            ours, floor, peer = (res.median(phase, t) for t in TOOLS)
            lines.append(
                f"| {res.feeds:,} | {phase} | {' | '.join(cells)} | "
                f"{_fmt(_ratio(ours, floor))} | {_fmt(_ratio(ours, peer))} | "
                f"{_fmt(res.max_lag(phase), '.0f')} / {_fmt(res.max_busy(phase), '.0f')} |"
            )
    return "\n".join(lines)


def scaling(results: Sequence[SizeResult]) -> str:
    """Per-feed wall time of ours per phase at each N, and the growth exponent between sizes."""
    if len(results) < 2:
        return ""
    lines = [
        "| cycle | " + " | ".join(f"ms/feed at {r.feeds:,}" for r in results) + " | exponent |"
    ]
    lines.append("|" + "---|" * (len(results) + 2))
    for phase in PHASES:
        walls = [res.median(phase, "ours") for res in results]
        per = [
            _fmt(1000 * w.wall / r.feeds if w else None)
            for w, r in zip(walls, results, strict=True)
        ]
        first, last = walls[0], walls[-1]
        exponent = (
            math.log(last.wall / first.wall) / math.log(results[-1].feeds / results[0].feeds)
            if first and last
            else None
        )
        lines.append(f"| {phase} | " + " | ".join(per) + f" | {_fmt(exponent)} |")
    return "\n".join(lines)


def targets(results: Sequence[SizeResult]) -> str:
    """The issue's targets, checked at 1,000 feeds (or the largest N below it that ran)."""
    eligible = [r for r in results if r.feeds <= 1000] or list(results)
    res = max(eligible, key=lambda r: r.feeds)
    out = [f"Targets at N = {res.feeds:,}:"]

    def line(name: str, value: float | None, ok: bool | None, spec: str = ".2f") -> None:
        verdict = "n/a" if ok is None else ("MET" if ok else "NOT MET")
        out.append(f"  {name:58} {_fmt(value, spec):>8}  {verdict}")

    cold = _ratio(res.median("cold", "ours"), res.median("cold", "floor"))
    line("cold cycle ours ÷ floor (≤ 1.30)", cold, None if cold is None else cold <= 1.3)
    for phase in ("steady", "changed"):
        speedup = _ratio(res.median(phase, "feed2exec"), res.median(phase, "ours"))
        line(
            f"{phase} cycle feed2exec ÷ ours (≥ 3.0)",
            speedup,
            None if speedup is None else speedup >= 3.0,
        )
    peaks = [r.rss_mb for p in PHASES for r in res.runs.get(p, {}).get("ours", []) if r.ok]
    peak = max(peaks) if peaks else None
    line(
        "peak memory of monitor once, MB (≤ 150)",
        peak,
        None if peak is None else peak <= 150,
        ".0f",
    )
    busies = [v for p in PHASES if (v := res.max_busy(p)) is not None]
    busy = max(busies) if busies else None
    line(
        "longest run of code on the event loop, ms (≤ 100)",
        busy,
        None if busy is None else busy <= 100,
        ".0f",
    )
    lags = [v for p in PHASES if (v := res.max_lag(p)) is not None]
    lag = max(lags) if lags else None
    line(
        "max wake-up lag of a 10 ms sleep on the loop, ms (≤ 100)",
        lag,
        None if lag is None else lag <= 100,
        ".0f",
    )
    if len(results) >= 2:
        lo, hi = results[0], results[-1]
        worst = None
        for phase in PHASES:
            a, b = lo.median(phase, "ours"), hi.median(phase, "ours")
            if a and b:
                growth = (b.wall / hi.feeds) / (a.wall / lo.feeds)
                worst = growth if worst is None else max(worst, growth)
        line(
            f"per-feed cost at {hi.feeds:,} ÷ at {lo.feeds:,} (≤ 1.0: linear or better)",
            worst,
            None if worst is None else worst <= 1.1,
        )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="feed counts, comma-separated")
    parser.add_argument("--items", type=int, default=30, help="items per feed (default 30)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; medians reported")
    parser.add_argument("--concurrency", type=int, help="MONITOR_CONCURRENCY and the floor's pool")
    parser.add_argument("--latency", type=float, default=0.0, help="farm delay per answer, s")
    parser.add_argument("--gzip", action="store_true", help="the farm gzips bodies")
    parser.add_argument("--peer", action="store_true", help="also run feed2exec (installs it)")
    parser.add_argument("--peer-venv", type=Path, help="feed2exec's virtual environment")
    parser.add_argument(
        "--peer-max",
        type=int,
        default=1000,
        help="run feed2exec only up to this N (default 1000: its cold cycle takes ~2 min there)",
    )
    parser.add_argument("--no-lag", action="store_true", help="skip the loop-lag runs")
    parser.add_argument(
        "--alert-latency", action="store_true", help="also measure monitor run's alert latency"
    )
    parser.add_argument("--latency-feeds", type=int, default=100, help="feeds for that (100)")
    parser.add_argument("--json", type=Path, help="write all runs here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--sizes needs positive counts and --repeat at least 1")

    peer: Peer | None = None
    if args.peer:
        found = ensure_peer(args.peer_venv)
        if isinstance(found, str):
            print(f"feed2exec skipped: {found}", file=sys.stderr)
        else:
            peer = found
            print(f"peer: feed2exec {found.version}", flush=True)

    # Runs set PYTHONDONTWRITEBYTECODE; like an installed package, the monitor should run
    # from bytecode, so compile it once here (a no-op when it is up to date).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "monitor")], check=False)
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    # A SIGTERM (e.g. from a timeout) unwinds through the finally blocks: farms stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: list[SizeResult] = []
    latency_report: dict[str, object] | None = None
    try:
        for n in sizes:
            print(f"N = {n:,} feeds × {args.items} items", flush=True)
            results.append(
                run_size(
                    n,
                    items=args.items,
                    repeat=args.repeat,
                    concurrency=args.concurrency,
                    latency=args.latency,
                    gzip=args.gzip,
                    peer=peer if n <= args.peer_max else None,
                    lag=not args.no_lag,
                    work=work,
                )
            )
        if args.alert_latency:
            from latency import measure_alert_latency

            print(f"alert latency of monitor run, {args.latency_feeds} feeds, 60 s interval")
            latency_report = measure_alert_latency(args.latency_feeds, work=work / "latency")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")

    concurrency = args.concurrency or 10
    print()
    print(
        f"Wall s / CPU s / peak RSS MB per cycle (median of {args.repeat}); "
        f"{args.items} items per feed; concurrency {concurrency}; "
        f"farm latency {args.latency * 1000:.0f} ms; {os.cpu_count()} CPUs"
    )
    print(table(results))
    if len(results) >= 2:
        print()
        print(scaling(results))
    if latency_report is not None:
        samples = latency_report.get("samples_s") or []
        assert isinstance(samples, list)
        print()
        print(
            f"Alert latency (monitor run, {args.latency_feeds} feeds, interval 60 s): "
            f"{len(samples)} samples; "
            + (
                f"median {statistics.median(samples):.1f} s, "
                f"mean {statistics.mean(samples):.1f} s, max {max(samples):.1f} s"
                if samples
                else "none"
            )
            + (f"; missed {latency_report['missed']}" if latency_report.get("missed") else "")
        )
    print()
    print(targets(results))
    if args.json:
        data = {
            "sizes": [
                {
                    "feeds": r.feeds,
                    "runs": {
                        p: {t: [asdict(x) for x in v] for t, v in d.items()}
                        for p, d in r.runs.items()
                    },
                    "lag": {p: [asdict(x) for x in v] for p, v in r.lag.items()},
                }
                for r in results
            ],
            "alert_latency": latency_report,
            "items": args.items,
            "concurrency": concurrency,
        }
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
