"""Steady-cycle A/B: ``monitor once`` again and again on a farm where nothing changes.

Usage::

    .venv/bin/python bench/steady.py [--feeds 1000] [--runs 9] [--b-env NAME=VALUE ...]

Starts ``bench/farm.py`` with ``--feeds`` feeds, runs one cold cycle to fill a
fresh state, then ``--runs`` steady cycles (every feed answers 304) and prints
each run's wall time, CPU (user + system, children included) and peak RSS, and
the median and minimum wall time. With ``--b-env`` the runs alternate between
the plain environment (A) and one with those variables set (B), so a setting
can be compared on the same farm and state, run by run, e.g.
``--b-env MONITOR_PARSE_PROCESSES=0``. To compare two versions of the code, run
it once on each. The monitor runs from bytecode (compiled once here), with the
shipped rule files and INFO logs to a file, as in ``bench/cycle.py``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:  # bench/ is scripts, not a package
    sys.path.insert(0, str(BENCH))

from cycle import base_env, measure, write_rules  # noqa: E402
from farm import FarmProcess  # noqa: E402


def run_once(
    rules: Path, state: Path, env: dict[str, str], work: Path
) -> tuple[float, float, float]:
    """One ``monitor once`` (measured as in bench/cycle.py): wall s, CPU s, peak RSS MB."""
    command = [sys.executable, "-m", "monitor", "once", "--rules", str(rules)]
    run = measure(
        [*command, "--state", str(state)],
        env=env,
        stdout=work / "stdout.txt",
        stderr=work / "stderr.txt",
    )
    if not run.ok:
        raise SystemExit(f"monitor once failed (exit {run.returncode}); see {work / 'stderr.txt'}")
    return run.wall, run.cpu, run.rss_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000, help="feeds in the farm (1000)")
    parser.add_argument("--runs", type=int, default=9, help="steady runs (per side with --b-env)")
    parser.add_argument(
        "--b-env", action="append", default=[], metavar="NAME=VALUE", help="B side's variables"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.b_env)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "monitor")], check=False)
    work = Path(tempfile.mkdtemp(prefix="monitor-steady-"))
    env_a = base_env(None)
    sides = {"A": env_a, "B": {**env_a, **extra}} if extra else {"A": env_a}
    walls: dict[str, list[float]] = {side: [] for side in sides}
    with FarmProcess(args.feeds) as farm:
        rules, state = work / "rules", work / "state.db"
        write_rules(rules, farm.urls())
        wall, cpu, rss = run_once(rules, state, env_a, work)
        print(f"cold  wall {wall:6.3f}s  cpu {cpu:6.3f}s  rss {rss:.0f} MB", flush=True)
        for n in range(args.runs):
            for side, env in sides.items():
                wall, cpu, rss = run_once(rules, state, env, work)
                walls[side].append(wall)
                print(f"{side} {n + 1:2d}  wall {wall:6.3f}s  cpu {cpu:6.3f}s  rss {rss:.0f} MB")
    for side, values in walls.items():
        label = f" ({' '.join(args.b_env)})" if side == "B" else ""
        print(
            f"{side}{label}: median {statistics.median(values):.3f}s, "
            f"min {min(values):.3f}s over {len(values)} steady runs"
        )
    print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
