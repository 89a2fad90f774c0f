"""Train the second-stage scorer (``monitor/data/scorer.json``) on the labelled set.

Usage::

    .venv/bin/pip install -e '.[train]'        # scikit-learn, for training only
    .venv/bin/python bench/train_scorer.py     # writes monitor/data/scorer.json
    .venv/bin/python bench/train_scorer.py --cv  # leave-one-split-out estimate first

Logistic regression (L2, ``C=1``, classes balanced) over the binary features of
:func:`monitor.scorer.features`, seen in at least two items, trained on every
split of ``bench/eval_rules.py`` (items, not rules: the model never sees what
the rules did). Batches kept out of ``SPLITS`` (the untouched blind batches)
are never used, so they stay an honest measure. The run is deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from eval_rules import SPLITS, Item, load_items  # noqa: E402

from monitor.scorer import FEATURE_VERSION, features  # noqa: E402

OUT = HERE.parent / "monitor" / "data" / "scorer.json"
C = 1.0
MIN_ITEMS = 2  # a feature must occur in this many training items


def _fit(items: Sequence[Item]) -> tuple[dict[str, float], float]:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    # Feeds often carry a title and no summary: every item is also learnt from its
    # title alone (same label), so a bare headline is not scored as "unlikely".
    items = [*items, *(replace(it, summary="") for it in items if it.summary)]

    vectorizer = CountVectorizer(
        analyzer=lambda it: sorted(features(it.title, it.summary)), binary=True, min_df=MIN_ITEMS
    )
    matrix = vectorizer.fit_transform(items)
    model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
    model.fit(matrix, [it.label for it in items])
    names = vectorizer.get_feature_names_out()
    weights = {
        str(name): round(float(w), 4)
        for name, w in zip(names, model.coef_[0], strict=True)
        if abs(w) >= 1e-4
    }
    return weights, round(float(model.intercept_[0]), 4)


def _score(weights: dict[str, float], bias: float, item: Item) -> float:
    import math

    total = bias + sum(weights.get(f, 0.0) for f in features(item.title, item.summary))
    return 1 / (1 + math.exp(-total))


def cross_validate(by_split: dict[str, list[Item]]) -> None:
    """Print precision/recall at 0.1 and 0.5 for each split, trained on the others."""
    for split, held in by_split.items():
        rest = [it for name, items in by_split.items() if name != split for it in items]
        weights, bias = _fit(rest)
        line = [f"{split:8}"]
        for threshold in (0.1, 0.5):
            alerted = [(_score(weights, bias, it) >= threshold, it.label) for it in held]
            tp = sum(a and y for a, y in alerted)
            fp = sum(a and not y for a, y in alerted)
            fn = sum(y and not a for a, y in alerted)
            line.append(
                f"p>={threshold}: P {tp / max(1, tp + fp):.3f} R {tp / max(1, tp + fn):.3f}"
            )
        print("  ".join(line))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cv", action="store_true", help="leave-one-split-out estimate first")
    parser.add_argument("--out", type=Path, default=OUT, help=f"model file (default {OUT})")
    args = parser.parse_args(argv)
    by_split = {split: load_items(split) for split in SPLITS}
    if args.cv:
        cross_validate(by_split)
    items = [it for items in by_split.values() for it in items]
    weights, bias = _fit(items)
    doc = {
        "feature_version": FEATURE_VERSION,
        "bias": bias,
        "meta": {
            "model": "logistic regression, binary features, C=1, balanced classes, "
            "each item also as its title alone",
            "trained_on": list(SPLITS),
            "items": len(items),
            "positives": sum(it.label for it in items),
            "features": len(weights),
            "trained": date.today().isoformat(),
        },
        "weights": dict(sorted(weights.items())),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(weights)} features from {len(items)} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
