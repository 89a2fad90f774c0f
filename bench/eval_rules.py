"""Measure the rule files against the labelled set in ``tests/data/labelled/``.

Usage::

    .venv/bin/python bench/eval_rules.py [--split SPLIT|all] [--rules DIR] [-v]

where ``SPLIT`` is one of ``dev``, ``holdout``, ``fresh``, ``blind``, ``blind2``,
``blind3``, ``blind4``, ``blind5``, ``blind6``, ``blind7``, ``blind8``, ``blind9``,
``blind10``.

Each labelled item (title, summary, source, date, label) is turned into an
:class:`~monitor.models.Entry` and run through the product's own rule loader
and matcher (:func:`monitor.rules.load_rules`, :meth:`RuleSet.match`), so the
numbers are what ``monitor once`` would alert on. An item counts as alerted
when any rule matches it.

Prints precision, recall and F1 per split; ``-v`` also lists every false
positive and false negative with its ``kind``, and the misses per kind. Tune
rules on ``dev`` (and ``fresh`` and ``blind``, once their out-of-sample
figures are recorded); ``holdout`` is for measuring. ``blind`` reads
``tests/data/blind/batch1.yaml``, ``blind2`` reads
``tests/data/blind/batch2.yaml``, and so on up to ``blind10``, which reads
``tests/data/blind/batch10.yaml``. ``--file`` scores a batch that is not a
split yet (an untouched blind batch).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: find the monitor package
    sys.path.insert(0, str(ROOT))

from monitor.models import Entry  # noqa: E402
from monitor.rules import RuleSet, load_rules  # noqa: E402

LABELLED_DIR = ROOT / "tests" / "data" / "labelled"
BLIND_DIR = ROOT / "tests" / "data" / "blind"
SPLITS = (
    "dev",
    "holdout",
    "fresh",
    "blind",
    "blind2",
    "blind3",
    "blind4",
    "blind5",
    "blind6",
    "blind7",
    "blind8",
    "blind9",
    "blind10",
)
# Splits whose file is not ``LABELLED_DIR/<split>.yaml``. ``blind`` to
# ``blind10`` are batches written by someone who never saw the rules or the
# labelled set (same item format); see docs/labelled-set.md, "The blind
# split", "The second blind batch", "The third blind batch" and the sections
# on the fourth to tenth batches.
SPLIT_FILES: dict[str, Path] = {
    "blind": BLIND_DIR / "batch1.yaml",
    "blind2": BLIND_DIR / "batch2.yaml",
    "blind3": BLIND_DIR / "batch3.yaml",
    "blind4": BLIND_DIR / "batch4.yaml",
    "blind5": BLIND_DIR / "batch5.yaml",
    "blind6": BLIND_DIR / "batch6.yaml",
    "blind7": BLIND_DIR / "batch7.yaml",
    "blind8": BLIND_DIR / "batch8.yaml",
    "blind9": BLIND_DIR / "batch9.yaml",
    "blind10": BLIND_DIR / "batch10.yaml",
}
# Splits written independently of the others: they may cover the same events
# (even with the same titles) as dev/holdout/fresh, which are split by event.
INDEPENDENT_SPLITS = (
    "blind",
    "blind2",
    "blind3",
    "blind4",
    "blind5",
    "blind6",
    "blind7",
    "blind8",
    "blind9",
    "blind10",
)
DEFAULT_RULES = ROOT / "rules"


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled feed item."""

    title: str
    summary: str
    source: str
    published: date
    label: bool
    kind: str
    split: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item and whether the rules alerted on it (and which rules fired)."""

    item: Item
    alerted: bool
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Score:
    """Confusion counts and the usual ratios for one set of outcomes."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        """Share of alerts that were wanted (1.0 when nothing alerted)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of wanted alerts that fired (1.0 when nothing was wanted)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_items(split: str, labelled_dir: Path = LABELLED_DIR) -> list[Item]:
    """The labelled items of one split, validated (a malformed item raises ValueError)."""
    if split in SPLIT_FILES and labelled_dir == LABELLED_DIR:
        path = SPLIT_FILES[split]
    else:
        path = labelled_dir / f"{split}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of items")
    items: list[Item] = []
    for n, raw in enumerate(data, start=1):
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: item {n} is not a mapping")
        missing = {"title", "summary", "source", "published", "label", "kind"} - raw.keys()
        if missing:
            raise ValueError(f"{path}: item {n} lacks {', '.join(sorted(missing))}")
        if not isinstance(raw["label"], bool) or not isinstance(raw["published"], date):
            raise ValueError(f"{path}: item {n}: label must be true/false, published a date")
        items.append(
            Item(
                title=str(raw["title"]),
                summary=str(raw["summary"]),
                source=str(raw["source"]),
                published=raw["published"],
                label=raw["label"],
                kind=str(raw["kind"]),
                split=split,
            )
        )
    return items


def to_entry(item: Item) -> Entry:
    """The Entry a feed carrying ``item`` would normalise to (no link, no tags)."""
    digest = hashlib.sha256(f"{item.title}\n{item.summary}".encode()).hexdigest()[:16]
    published = datetime(
        item.published.year, item.published.month, item.published.day, 12, tzinfo=UTC
    )
    return Entry(
        id=f"labelled-{item.split}-{digest}",
        source=item.source,
        link=None,
        title=item.title,
        summary=item.summary,
        published=published,
        published_from_feed=True,
    )


def run(ruleset: RuleSet, items: Sequence[Item]) -> list[Outcome]:
    """Match every item with the product's matcher."""
    outcomes: list[Outcome] = []
    for item in items:
        matches = ruleset.match(to_entry(item))
        outcomes.append(Outcome(item, bool(matches), tuple(m.rule for m in matches)))
    return outcomes


def score(outcomes: Sequence[Outcome]) -> Score:
    """Count true/false positives/negatives."""
    counts = Counter((o.item.label, o.alerted) for o in outcomes)
    return Score(
        tp=counts[True, True],
        fp=counts[False, True],
        fn=counts[True, False],
        tn=counts[False, False],
    )


def errors(outcomes: Sequence[Outcome]) -> tuple[list[Outcome], list[Outcome]]:
    """The false positives and the false negatives."""
    fps = [o for o in outcomes if o.alerted and not o.item.label]
    fns = [o for o in outcomes if o.item.label and not o.alerted]
    return fps, fns


def _report(name: str, outcomes: Sequence[Outcome], verbose: bool) -> None:
    s = score(outcomes)
    n_pos = s.tp + s.fn
    print(
        f"{name:8} items={len(outcomes):3d} positives={n_pos:3d}  "
        f"precision={s.precision:.3f} recall={s.recall:.3f} f1={s.f1:.3f}  "
        f"(tp={s.tp} fp={s.fp} fn={s.fn} tn={s.tn})"
    )
    if not verbose:
        return
    fps, fns = errors(outcomes)
    for label, wrong in (("FALSE POSITIVE", fps), ("FALSE NEGATIVE", fns)):
        for o in wrong:
            fired = f" [{', '.join(o.rules)}]" if o.rules else ""
            print(f"  {label} ({o.item.kind}){fired}: {o.item.title}")
    by_kind = Counter(o.item.kind for o in (*fps, *fns))
    if by_kind:
        print("  errors by kind: " + ", ".join(f"{k}={v}" for k, v in by_kind.most_common()))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="dev")
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="rules directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every error")
    parser.add_argument(
        "--file",
        type=Path,
        help="score one labelled YAML file instead (e.g. an untouched blind batch)",
    )
    args = parser.parse_args(argv)

    ruleset = load_rules(args.rules)
    if args.file is not None:
        _report(
            args.file.stem, run(ruleset, load_items(args.file.stem, args.file.parent)), args.verbose
        )
        return 0
    splits = SPLITS if args.split == "all" else (args.split,)
    combined: list[Outcome] = []
    for split in splits:
        outcomes = run(ruleset, load_items(split))
        combined.extend(outcomes)
        _report(split, outcomes, args.verbose)
    if len(splits) > 1:
        _report("all", combined, verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
