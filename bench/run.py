"""The whole speed comparison in one command: ``python bench/run.py``.

Runs ``bench/cycle.py --sizes 100,1000,5000 --peer --alert-latency`` (any
other ``cycle.py`` option may be added, e.g. ``--repeat 3``) and prints its
table: ours, the floor and feed2exec side by side, the ratios, and the targets
of the benchmark issue with MET / NOT MET. See docs/benchmarks.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cycle import main

DEFAULTS = ["--sizes", "100,1000,5000", "--peer", "--alert-latency"]

if __name__ == "__main__":
    sys.exit(main([*DEFAULTS, *sys.argv[1:]]))
