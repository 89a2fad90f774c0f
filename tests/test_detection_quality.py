"""Detection quality of the default rules on the labelled set.

The rules in ``rules/`` are loaded with the product's loader and matched with
the product's matcher (through ``bench/eval_rules.py``) against every
labelled split: ``tests/data/labelled/`` (dev, holdout, fresh) and the blind
batches ``tests/data/blind/batch1.yaml`` (blind) to
``tests/data/blind/batch7.yaml`` (blind7). A rule edit that drops recall
below 0.95 or precision below 0.92 on any split fails here, listing the items
it got wrong. How the set was built: ``docs/labelled-set.md``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The targets for the default rules. Raised from 0.90/0.90 once every split
# measured recall >= 0.985 and precision >= 0.957 (docs/labelled-set.md).
MIN_RECALL = 0.95
MIN_PRECISION = 0.92


def _load_bench() -> ModuleType:
    """Import ``bench/eval_rules.py`` (bench/ is scripts, not a package)."""
    path = ROOT / "bench" / "eval_rules.py"
    spec = importlib.util.spec_from_file_location("eval_rules", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("eval_rules", module)  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def ruleset() -> object:
    """The default rule set, loaded exactly as the service loads it."""
    return bench.load_rules(ROOT / "rules")


def _describe(outcomes: list[object]) -> str:
    return "\n".join(f"  - ({o.item.kind}) {o.item.title}" for o in outcomes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("split", bench.SPLITS)
def test_recall_and_precision(ruleset: object, split: str) -> None:
    """Recall and precision at or above the floors on each split separately."""
    outcomes = bench.run(ruleset, bench.load_items(split))
    result = bench.score(outcomes)
    fps, fns = bench.errors(outcomes)
    message = (
        f"{split}: precision={result.precision:.3f} recall={result.recall:.3f} "
        f"(tp={result.tp} fp={result.fp} fn={result.fn})\n"
        f"missed (false negatives):\n{_describe(fns) or '  none'}\n"
        f"unwanted alerts (false positives):\n{_describe(fps) or '  none'}"
    )
    assert result.recall >= MIN_RECALL, message
    assert result.precision >= MIN_PRECISION, message


def test_labelled_set_is_usable() -> None:
    """Every split is big enough, mixed, and includes non-English items; the
    event-split files (dev, holdout, fresh) are disjoint."""
    splits = {name: bench.load_items(name) for name in bench.SPLITS}
    for name, items in splits.items():
        positives = sum(item.label for item in items)
        assert len(items) >= 80, f"{name} has only {len(items)} items"
        assert 0.25 <= positives / len(items) <= 0.6, f"{name}: {positives}/{len(items)} positive"
        non_ascii = [item.title for item in items if not item.title.isascii()]
        assert len(non_ascii) >= 10, f"{name}: keep non-English items in the set"
    titles = [
        item.title
        for name, items in splits.items()
        if name not in bench.INDEPENDENT_SPLITS
        for item in items
    ]
    duplicates = sorted({t for t in titles if titles.count(t) > 1})
    assert not duplicates, f"titles appear twice: {duplicates}"


# Titles that a blind batch repeats with a different summary and, because of
# what that summary says, the opposite label (docs/labelled-set.md, "The third
# blind batch"). Each (split, title) is listed with its reason; any other
# disagreement fails.
SUMMARY_DEPENDENT_LABELS = {
    (
        "blind3",
        "Anthropic signs MOU with UK Government to explore how AI can transform UK public services",
    ): "dev's summary says the MoU builds on work with the AI Security Institute (true); "
    "blind3's mentions only public services (false)",
    (
        "blind4",
        "Anthropic signs MOU with UK Government to explore how AI can transform UK public services",
    ): "as in blind3: blind4's summary mentions only public services (false)",
    (
        "blind6",
        "Tackling AI security risks to unleash growth and deliver Plan for Change",
    ): "holdout's summary tells only the renaming (false); blind6's also announces the new "
    "memorandum with Anthropic on the security risks of its models (true: a renaming announced "
    "together with a new lab memorandum)",
    (
        "blind6",
        "BSI und ANSSI veröffentlichen gemeinsame Empfehlungen zu KI-Programmierassistenten",
    ): "dev's summary describes a paper with recommendations (false); blind6's says the two "
    "agencies agreed on common security requirements (true: AI-security guidance agreed by "
    "agencies of several countries)",
    (
        "blind7",
        "Working with US CAISI and UK AISI to build more secure AI systems",
    ): "holdout's summary (like blind, blind2, blind3 and blind4) tells the ongoing "
    "collaboration in which the institutes red-team OpenAI's products (true); blind7's tells "
    "the results of that work, read as an update of an existing partnership (false). Mostly a "
    "difference of judgement: the rules follow the majority and alert (a blind7 false alarm)",
    (
        "blind8",
        "BSI und ANSSI veröffentlichen gemeinsame Empfehlungen zu KI-Programmierassistenten",
    ): "dev's summary describes a paper with recommendations (false); blind8's names the "
    "security risks of AI coding assistants the two agencies' joint paper addresses (true, like "
    "blind6 and batch 10: joint AI-security recommendations). The rules follow the majority",
    (
        "blind10",
        "Strengthening our safeguards through collaboration with US CAISI and UK AISI",
    ): "dev, blind, blind2, blind3 and blind4 label the collaboration true; blind10's summary "
    "stresses the results of past red-teaming (false, read as a report). A difference of "
    "judgement: the rules follow the majority and alert (a blind10 false alarm)",
}


def test_independent_batches_agree_with_the_labelled_set() -> None:
    """A blind batch may repeat an item of dev/holdout/fresh (it was written
    without seeing them), but never with the opposite label, except for the
    documented items whose summaries differ (SUMMARY_DEPENDENT_LABELS)."""
    labelled = {
        item.title: (name, item.label, item.summary)
        for name in bench.SPLITS
        if name not in bench.INDEPENDENT_SPLITS
        for item in bench.load_items(name)
    }
    for name in bench.INDEPENDENT_SPLITS:
        items = bench.load_items(name)
        for item in items:
            if (name, item.title) in SUMMARY_DEPENDENT_LABELS:
                assert item.title in labelled, f"stale exception: {item.title!r}"
                assert labelled[item.title][2] != item.summary, (
                    f"{item.title!r}: same summary, so the labels must agree"
                )
        conflicts = [
            f"{item.title!r}: {name}={item.label}, "
            f"{labelled[item.title][0]}={labelled[item.title][1]}"
            for item in items
            if item.title in labelled
            and labelled[item.title][1] != item.label
            and (name, item.title) not in SUMMARY_DEPENDENT_LABELS
        ]
        assert not conflicts, "labels disagree:\n" + "\n".join(conflicts)


def test_split_scores_are_reported_per_item(ruleset: object) -> None:
    """Every item gets exactly one outcome, and the counts add up."""
    items = bench.load_items("dev")
    outcomes = bench.run(ruleset, items)
    result = bench.score(outcomes)
    assert len(outcomes) == len(items)
    assert result.tp + result.fp + result.fn + result.tn == len(items)
    assert result.tp + result.fn == sum(item.label for item in items)
