"""The peer: feed2exec (``feed2exec fetch --parallel`` with its null output) on the same farm.

feed2exec is not a dependency of the monitor. It is installed on demand into
its own virtual environment, outside the repository::

    .venv/bin/python bench/peer_feed2exec.py --setup      # or let bench/cycle.py --peer do it

The default location is ``/tmp/monitor-bench/feed2exec-venv`` (override with
``--venv`` or ``MONITOR_BENCH_PEER_VENV``). When it cannot be installed
(no registry reachable), :func:`ensure_peer` returns the reason and the
harness skips the peer columns with that message.

How feed2exec works, as far as timing goes (0.23): it reads an ini file of
feeds, fetches them one after another with ``requests`` and a CacheControl
HTTP cache in its SQLite database (so an unchanged feed is a ``304`` and is
not parsed), and with ``--parallel`` hands each body to a
``multiprocessing`` pool (one process per core) for feedparser. The null
output plugin does nothing per item; feed2exec still records every item
guid it has seen in its database.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VENV = Path("/tmp/monitor-bench/feed2exec-venv")
PACKAGE = "feed2exec"


@dataclass(frozen=True, slots=True)
class Peer:
    """An installed feed2exec: its executable and version."""

    executable: Path
    version: str

    def fetch_command(self, config: Path, database: Path, *, parallel: bool = True) -> list[str]:
        """``feed2exec fetch`` over ``config`` with its own ``database``."""
        command = [
            str(self.executable),
            "--quiet",
            "--config",
            str(config),
            "--database",
            str(database),
            "fetch",
        ]
        return [*command, "--parallel"] if parallel else command


def venv_path(explicit: Path | None = None) -> Path:
    """Where the peer's virtual environment lives."""
    if explicit is not None:
        return explicit
    env = os.environ.get("MONITOR_BENCH_PEER_VENV")
    return Path(env) if env else DEFAULT_VENV


def ensure_peer(venv: Path | None = None, *, install: bool = True) -> Peer | str:
    """The installed peer, installing it first if needed; else a sentence saying why not."""
    venv = venv_path(venv)
    executable = venv / "bin" / "feed2exec"
    if not executable.exists():
        if not install:
            return f"feed2exec is not installed in {venv} (run bench/peer_feed2exec.py --setup)"
        try:
            if not (venv / "bin" / "python").exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(venv)],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", PACKAGE],
                check=True,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-3:]
            return f"could not install feed2exec into {venv}: {' / '.join(tail)}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"could not install feed2exec into {venv}: {exc}"
    try:
        version = subprocess.run(
            [str(executable), "--version"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"feed2exec in {venv} does not run: {exc}"
    return Peer(executable, version or "unknown version")


def write_config(path: Path, urls: Sequence[str]) -> None:
    """A feed2exec ini file with one section per URL, all using the null output plugin."""
    lines = []
    for index, url in enumerate(urls):
        lines += [f"[feed-{index:05d}]", f"url = {url}", "output = feed2exec.plugins.null", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: install (``--setup``) or show the peer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help=f"virtual environment (default {DEFAULT_VENV})")
    parser.add_argument("--setup", action="store_true", help="install feed2exec if missing")
    args = parser.parse_args(argv)
    peer = ensure_peer(args.venv, install=args.setup)
    if isinstance(peer, str):
        print(peer, file=sys.stderr)
        return 1
    print(f"{peer.version} at {peer.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
