"""Why an entry does or does not match each rule: ``monitor explain``.

:func:`explain` runs every rule over one text (or a stored entry) and keeps a
:class:`~monitor.query.ClauseTrace` per rule: the query as a tree with every
clause evaluated, none skipped. :func:`render_explanation` prints it for a
person editing rules.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from monitor.query import ClauseTrace
from monitor.rules import RuleSet
from monitor.textmatch import prepare_document

__all__ = [
    "ClauseTrace",
    "RuleExplanation",
    "StoredEntry",
    "explain",
    "render_explanation",
    "stored_entry_by_link",
]

_LIST_SHOWN = 5  # a list's items that fired, shown by name; the rest are counted
_TEXT_WIDTH = 90


@dataclass(frozen=True)
class RuleExplanation:
    """One rule's verdict on one entry, and the trace that led to it.

    ``matched`` and ``terms`` are what :meth:`RuleSet.match` would report. A
    rule limited to tags the source lacks is not matched, whatever its query
    says; ``skipped_reason`` then says so and ``trace`` still shows the query.
    """

    rule: str
    matched: bool
    terms: tuple[str, ...]
    trace: ClauseTrace
    skipped_reason: str | None = None
    min_score: float | None = None  # the rule's second-stage threshold, if any
    score: float | None = None  # the scorer's probability, when the rule has a threshold


def explain(
    rules: RuleSet,
    *,
    title: str,
    summary: str = "",
    source: str = "",
    tags: Sequence[str] = (),
    link: str | None = None,
    categories: Sequence[str] = (),
) -> list[RuleExplanation]:
    """Explain every rule of ``rules`` on one entry, in rule order.

    ``tags`` are the source's tags from ``feeds.yaml`` (they decide which rules
    apply); ``categories`` are the entry's own. Both are searchable with
    ``tag:``, as in :meth:`RuleSet.match`.
    """
    doc = prepare_document(title, summary, source=source, tags=(*tags, *categories), link=link)
    out: list[RuleExplanation] = []
    score = rules.score_if_gated(rules.rules, title, summary)
    for rule in rules.rules:
        trace = rule.query.trace(doc)
        if not rule.applies_to(tags):
            have = ", ".join(tags) if tags else "no tags"
            reason = (
                f"rule only applies to sources tagged {', '.join(rule.tags)}; this one has {have}"
            )
            out.append(RuleExplanation(rule.name, False, (), trace, reason))
            continue
        gated = rule.min_score is not None
        out.append(
            RuleExplanation(
                rule.name,
                trace.fired and rule.admits(score),
                trace.terms,
                trace,
                min_score=rule.min_score,
                score=score if gated else None,
            )
        )
    return out


def score_reasons(rules: RuleSet, title: str, summary: str = "") -> str:
    """The scorer's verdict and the words that moved it most ("" when no rule uses it)."""
    score = rules.score_if_gated(rules.rules, title, summary)
    if score is None:
        return ""
    reasons = rules.scorer.reasons(title, summary)
    words = ", ".join(f"{name} {weight:+.2f}" for name, weight in reasons)
    return (
        f"scorer: {score:.2f} (second stage, monitor/scorer.py); "
        f"strongest features: {words or 'none known'}\n"
    )


def render_explanation(explanations: Sequence[RuleExplanation]) -> str:
    """A readable report: per rule a verdict, then the query as an indented tree.

    ``✓`` marks a clause that fired, ``✗`` one that did not; ``→`` lists the
    terms a clause contributed. A ``NOT`` clause fires when what it excludes
    is absent. The two sides of ``NEAR`` are marked present or absent; an
    ``@list`` shows which of its items were found.
    """
    lines: list[str] = []
    for ex in explanations:
        if ex.skipped_reason is not None:
            lines.append(f"✗ {ex.rule}: skipped ({ex.skipped_reason})")
        elif ex.matched:
            gate = "" if ex.score is None else f" (score {ex.score:.2f} ≥ {ex.min_score:g})"
            lines.append(f"✓ {ex.rule}: matches → {', '.join(ex.terms)}{gate}")
        elif ex.trace.fired and ex.score is not None:
            lines.append(
                f"✗ {ex.rule}: the query matches → {', '.join(ex.terms)}, but the score "
                f"{ex.score:.2f} is below the rule's min_score {ex.min_score:g}"
            )
        else:
            lines.append(f"✗ {ex.rule}: no match")
        _render(ex.trace, 1, lines)
        lines.append("")
    matched = sum(ex.matched for ex in explanations)
    lines.append(f"{matched} of {len(explanations)} rule(s) match")
    return "\n".join(lines) + "\n"


def _mark(fired: bool) -> str:
    return "✓" if fired else "✗"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 1] + "…"


def _render(node: ClauseTrace, depth: int, lines: list[str], *, side: bool = False) -> None:
    pad = "  " * depth
    note = f"  → {', '.join(node.terms)}" if node.terms else ""
    if node.kind == "list":
        fired = [child.text for child in node.children if child.fired]
        found = ", ".join(fired[:_LIST_SHOWN])
        if len(fired) > _LIST_SHOWN:
            found += f" and {len(fired) - _LIST_SHOWN} more"
        note = f"  ({len(node.children)} items; found {found})" if fired else "  (none found)"
    elif node.kind in ("near", "onear") and node.children and not node.fired:
        if all(child.fired for child in node.children):
            note = "  (both sides present, but never close enough)"
    elif not node.children:
        note = ""  # a single term: the mark says it all
    head = _short(node.text)
    if node.kind in ("and", "or"):
        head = f"{'all' if node.kind == 'and' else 'any'} of: {head}"
    if side:
        head += " — present" if node.fired else " — absent"
    lines.append(f"{pad}{_mark(node.fired)} {head}{note}")
    if node.kind != "list":
        for child in node.children:
            _render(child, depth + 1, lines, side=node.kind in ("near", "onear"))


# ---------------------------------------------------------------- stored entries


class StoredEntry(NamedTuple):
    """An entry as the state database remembers it (the ``seen`` table)."""

    title: str
    summary: str
    source: str  # the feed's name
    link: str | None


def stored_entry_by_link(conn: sqlite3.Connection, link: str) -> StoredEntry | None:
    """The most recently seen entry whose canonical link is ``link``, or None.

    Read-only. Pass the link through :func:`monitor.links.canonical_link`
    first; the store keeps canonical links.
    """
    row = conn.execute(
        "SELECT title, summary, feed, link FROM seen WHERE link = ? "
        "ORDER BY last_seen DESC, feed LIMIT 1",
        (link,),
    ).fetchone()
    if row is None:
        return None
    return StoredEntry(str(row[0]), str(row[1]), str(row[2]), row[3])
