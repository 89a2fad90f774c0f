"""monitor explain: per-rule verdicts with a clause trace, and stored-entry lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.explain import explain, render_explanation, stored_entry_by_link
from monitor.models import Entry
from monitor.rules import RuleSet, load_rules
from monitor.store import FeedState, Store
from tests.support import write_rules_dir

RULES = """
lists:
  bodies: [AI Safety Institute, AISI]
rules:
  - name: partnerships
    query: '@bodies NEAR/5 (partner* OR memorandum) AND NOT appoint*'
  - name: gov-only
    query: 'agreement'
    tags: [government]
"""
FEEDS = [{"name": "GOV.UK", "url": "https://example.org/a.xml", "tags": ["government"]}]


def rules(tmp_path: Path) -> RuleSet:
    return load_rules(write_rules_dir(tmp_path, FEEDS, RULES))


def test_verdicts_agree_with_ruleset_match(tmp_path: Path) -> None:
    ruleset = rules(tmp_path)
    title = "AISI signs partnership agreement with Canada"
    got = explain(ruleset, title=title, source="GOV.UK", tags=["government"])
    assert [(e.rule, e.matched, e.terms, e.skipped_reason) for e in got] == [
        ("partnerships", True, ("AISI", "partner*"), None),
        ("gov-only", True, ("agreement",), None),
    ]
    entry = Entry("1", "GOV.UK", None, title, "", datetime.now(UTC), True, ("government",))
    assert [(m.rule, m.matched_terms) for m in ruleset.match(entry)] == [
        (e.rule, e.terms) for e in got
    ]


def test_rule_limited_to_other_tags_is_skipped_with_a_reason(tmp_path: Path) -> None:
    got = explain(rules(tmp_path), title="Trade agreement signed", tags=["news"])
    skipped = got[1]
    assert (skipped.rule, skipped.matched, skipped.terms) == ("gov-only", False, ())
    assert skipped.skipped_reason is not None and "government" in skipped.skipped_reason
    assert skipped.trace.fired  # the query itself would match
    assert "skipped (rule only applies to sources tagged government" in render_explanation(got)


def test_render_shows_the_tree_with_marks_and_terms(tmp_path: Path) -> None:
    got = explain(rules(tmp_path), title="AI Safety Institute appoints partner firm")
    text = render_explanation(got)
    lines = text.splitlines()
    assert lines[0] == "✗ partnerships: no match"
    assert "  ✗ all of: @bodies NEAR/5 (partner* OR memorandum) AND NOT appoint*" in lines
    assert "    ✓ @bodies NEAR/5 (partner* OR memorandum)  → AI Safety Institute, partner*" in lines
    assert "      ✓ @bodies — present  (2 items; found AI Safety Institute)" in lines
    assert "      ✓ any of: (partner* OR memorandum) — present  → partner*" in lines
    assert "        ✗ memorandum" in lines
    assert "    ✗ NOT appoint*" in lines
    assert "      ✓ appoint*" in lines
    assert text.endswith("0 of 2 rule(s) match\n")


def test_near_that_is_not_close_enough_says_so(tmp_path: Path) -> None:
    got = explain(
        rules(tmp_path), title="AISI report on model evaluations and other things, partner news"
    )
    assert "(both sides present, but never close enough)" in render_explanation(got)


def test_stored_entry_by_link(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state.db")
    now = datetime(2025, 3, 1, tzinfo=UTC)
    link = "https://www.gov.uk/news/aisi-partnership"
    entry = Entry("e1", "GOV.UK", link, "AISI partnership", "Summary text.", now, True)
    state = FeedState("GOV.UK", "https://example.org/a.xml", "https://example.org/a.xml")
    store.record_poll(state, [entry], [], now, link_window=timedelta(days=7))
    try:
        conn = store._conn
        found = stored_entry_by_link(conn, link)
        assert found is not None
        assert found.source == "GOV.UK"
        assert tuple(found) == ("AISI partnership", "Summary text.", "GOV.UK", link)
        assert stored_entry_by_link(conn, "https://example.org/missing") is None
    finally:
        store.close()
