"""The second-stage scorer: features, model files, and rules gated by ``min_score``."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ConfigError, ConfigErrors
from monitor.explain import explain, render_explanation, score_reasons
from monitor.models import Entry
from monitor.rules import RuleSet, load_rules
from monitor.scorer import FEATURE_VERSION, Scorer, features, load_scorer, parse_scorer
from tests.support import REPO, write_rules_dir

GATED_RULES = """
rules:
  - name: plain
    query: partnership
  - name: gated
    query: partnership OR cooperation
    min_score: 0.5
"""


def entry(title: str, summary: str = "") -> Entry:
    return Entry(
        id="e",
        source="s",
        link=None,
        title=title,
        summary=summary,
        published=datetime(2026, 1, 1, tzinfo=UTC),
        published_from_feed=True,
    )


@dataclass(frozen=True)
class FixedRuleSet(RuleSet):
    """A rule set whose scorer gives "good" texts 0.9 and everything else 0.1."""

    @property
    def scorer(self) -> Scorer:
        return Scorer({"good": 10.0}, -2.2)


def gated(tmp_path: Path) -> FixedRuleSet:
    loaded = load_rules(write_rules_dir(tmp_path, [], GATED_RULES))
    return FixedRuleSet(loaded.rules, loaded.lists, loaded.files)


# -- features and model files ---------------------------------------------------------


def test_features_are_folded_words_pairs_and_title_words() -> None:
    found = features("AI Safety Pact", "Both sides agree")
    assert {"ai", "safety", "pact", "both", "agree"} <= found
    assert {"ai_safety", "safety_pact", "pact_both"} <= found
    assert {"T:ai", "T:safety", "T:pact"} <= found and "T:agree" not in found


def test_features_split_unspaced_japanese_like_the_matcher() -> None:
    assert {"安", "全", "安_全"} <= features("日米がAI安全で協力", "")


def test_score_is_a_probability_moved_by_weights() -> None:
    scorer = Scorer({"partnership": 3.0, "T:appoints": -4.0}, -1.0)
    high = scorer.score("New partnership", "")
    low = scorer.score("Institute appoints director", "")
    assert 0.0 < low < 0.5 < high < 1.0
    assert scorer.reasons("Institute appoints partnership", "")[0] == ("T:appoints", -4.0)


def test_model_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    doc = {"feature_version": FEATURE_VERSION, "bias": 0.5, "weights": {"x": 1.5}, "meta": {}}
    path.write_text(json.dumps(doc))
    assert load_scorer(path) == Scorer({"x": 1.5}, 0.5, {})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a JSON object"),
        ({"feature_version": 99, "bias": 0, "weights": {}}, "retrain it"),
        ({"feature_version": FEATURE_VERSION, "weights": {}}, "'bias'"),
        ({"feature_version": FEATURE_VERSION, "bias": 0, "weights": {"x": "big"}}, "'x'"),
        ({"feature_version": FEATURE_VERSION, "bias": 0, "weights": {"x": float("inf")}}, "'x'"),
    ],
)
def test_bad_model_files_are_named_and_explained(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scorer(json.loads(json.dumps(doc)), "model.json")


def test_unreadable_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the scorer model"):
        load_scorer(tmp_path / "missing.json")


def test_shipped_model_is_trained_on_every_tuned_split() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from eval_rules import SPLITS

    meta = load_scorer().meta
    # A split added to the labelled set without retraining leaves the model behind.
    assert meta["trained_on"] == list(SPLITS), "retrain: .venv/bin/python bench/train_scorer.py"
    assert meta["items"] >= 1000


# -- min_score in rules -----------------------------------------------------------------


def test_min_score_gates_only_its_rule_and_reports_the_score(tmp_path: Path) -> None:
    rules = gated(tmp_path)
    low = rules.match(entry("A partnership and cooperation"))
    assert [m.rule for m in low] == ["plain"] and low[0].score is None
    high = rules.match(entry("A good partnership and cooperation"))
    assert [(m.rule, m.score) for m in high] == [
        ("plain", None),
        ("gated", pytest.approx(0.9993, abs=1e-3)),
    ]


@pytest.mark.parametrize("value", ["high", -0.1, 1.5, True])
def test_bad_min_score_names_the_rule(tmp_path: Path, value: object) -> None:
    text = f"rules:\n  - name: r\n    query: partnership\n    min_score: {json.dumps(value)}\n"
    with pytest.raises(ConfigErrors, match=r"rule 'r'.*min_score must be a number from 0 to 1"):
        load_rules(write_rules_dir(tmp_path, [], text))


def test_examples_of_a_gated_rule_need_the_score_too(tmp_path: Path) -> None:
    text = GATED_RULES + "    examples:\n      match: [Plain cooperation]\n"
    loaded = load_rules(write_rules_dir(tmp_path, [], text))
    rules = FixedRuleSet(loaded.rules, loaded.lists, loaded.files)
    [error] = rules.check_examples()
    assert "should match but does not: 'Plain cooperation'" in str(error)


def test_explain_says_when_the_score_holds_a_rule_back(tmp_path: Path) -> None:
    rules = gated(tmp_path)
    report = render_explanation(explain(rules, title="Plain cooperation"))
    assert "✗ gated: the query matches → cooperation, but the score 0.10" in report
    assert "below the rule's min_score 0.5" in report
    report = render_explanation(explain(rules, title="Good cooperation"))
    assert "✓ gated: matches → cooperation (score 1.00 ≥ 0.5)" in report
    assert score_reasons(rules, "Good cooperation").startswith("scorer: 1.00")


def test_no_gated_rule_no_scorer(tmp_path: Path) -> None:
    rules = load_rules(write_rules_dir(tmp_path, [], "rules:\n  - name: r\n    query: x\n"))
    assert score_reasons(rules, "x") == ""
    assert [e.score for e in explain(rules, title="x")] == [None]
