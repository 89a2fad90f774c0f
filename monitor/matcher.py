"""Run many compiled queries over one document, sharing the work between them.

Three things keep the cost per entry nearly flat as rules are added:

1. **Anchors.** Each query is analysed once, when the matcher is built, for
   the words it cannot match without: a few *required sets*, each meaning
   "one of these must be in the text" (``memorandum`` or a word starting with
   ``partner``). ``a AND b`` needs a set for ``a`` and one for ``b``; both
   sides of ``NEAR`` are needed; an ``OR`` needs one of its branches.
2. **One pass over the document.** The cheapest required set of every query
   goes into one index (a dict of whole words, a trie of prefixes). Each word
   of the document is looked up once, which names the candidate queries; a
   candidate's other required sets are then checked against the document's
   word set. Only the survivors are evaluated. Queries with nothing to anchor
   on (only ``tag:``/``link:``/``domain:`` or ``/regex/`` terms) are always
   evaluated.
3. **Shared lookups.** The survivors run over one
   :class:`~monitor.textmatch.SpanCache`, so a term or ``@list`` item used by
   many rules is looked up once per document.

None of this changes results: :meth:`RuleMatcher.match` returns exactly what
each query's :meth:`~monitor.query.CompiledQuery.match` would.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from monitor.query import (
    TEXT_FIELDS,
    CompiledQuery,
    _And,
    _Near,
    _Node,
    _Not,
    _Or,
    _Regex,
    _Words,
)
from monitor.textmatch import Document, Pattern, SpanCache, Unit

# An anchor is a folded word that must occur in a text field of the document:
# as a whole word (EXACT), as the start of a word (PREFIX), or as the first half
# of a word the text splits in two (SPLIT: "co" of "co operation").
EXACT, PREFIX, SPLIT = "exact", "prefix", "split"
_Anchor = tuple[str, str]  # (kind, word)
_Anchors = frozenset[_Anchor]
_MAX_CHECKS = 3  # required sets checked per candidate, besides the indexed one


@dataclass(frozen=True, slots=True)
class _TrieNode:
    children: dict[str, _TrieNode]
    queries: list[int]  # queries with a prefix anchor ending here


class _DocWords:
    """The words of one document: a set for whole words, sorted for prefixes."""

    __slots__ = ("exact", "ordered")

    def __init__(self, doc: Document) -> None:
        self.exact: set[str] = set()
        for name in TEXT_FIELDS:
            self.exact.update(doc.field(name).spans)
        self.ordered = sorted(self.exact)

    def has_any(self, anchors: _Anchors) -> bool:
        for kind, word in anchors:
            if kind != PREFIX:
                if word in self.exact:
                    return True
                continue
            at = bisect_left(self.ordered, word)
            if at < len(self.ordered) and self.ordered[at].startswith(word):
                return True
        return False


class RuleMatcher:
    """Many compiled queries, matched together; results as if each were run alone."""

    def __init__(self, queries: Sequence[CompiledQuery]) -> None:
        self.queries = tuple(queries)
        self._always: list[int] = []  # nothing to anchor on: evaluated for every document
        self._exact: dict[str, list[int]] = {}
        self._trie = _TrieNode({}, [])
        self._checks: list[tuple[_Anchors, ...]] = []
        anchoring = _Anchoring([query.root for query in self.queries])
        for index, query in enumerate(self.queries):
            needed = anchoring.required_sets(query.root)
            self._checks.append(tuple(needed[1 : 1 + _MAX_CHECKS]))
            if not needed:
                self._always.append(index)
                continue
            for kind, word in needed[0]:
                if kind == PREFIX:
                    self._add_prefix(word, index)
                else:
                    self._exact.setdefault(word, []).append(index)

    def _add_prefix(self, word: str, index: int) -> None:
        node = self._trie
        for char in word:
            nxt = node.children.get(char)
            if nxt is None:
                nxt = node.children[char] = _TrieNode({}, [])
            node = nxt
        node.queries.append(index)

    @property
    def unanchored(self) -> int:
        """How many queries have nothing to anchor on and so run on every document."""
        return len(self._always)

    def candidates(self, doc: Document) -> list[int]:
        """Indices of the queries that could match ``doc``, ascending.

        Every query that matches ``doc`` is among them; most that do not are not.
        """
        found: set[int] = set()
        exact, root = self._exact, self._trie
        has_prefixes = bool(root.children)
        words = _DocWords(doc)
        for word in words.exact:
            hit = exact.get(word)
            if hit is not None:
                found.update(hit)
            if has_prefixes:
                node = root
                for char in word:
                    nxt = node.children.get(char)
                    if nxt is None:
                        break
                    node = nxt
                    if node.queries:
                        found.update(node.queries)
        checks = self._checks
        kept = [i for i in found if all(words.has_any(need) for need in checks[i])]
        kept.extend(self._always)
        kept.sort()
        return kept

    def match(
        self, doc: Document, only: Container[int] | None = None
    ) -> list[tuple[int, tuple[str, ...]]]:
        """``(index, terms)`` for every query that matches ``doc``, by index.

        ``only``, when given, limits matching to those query indices (for
        example the rules that apply to the entry's source tags).
        """
        cache = SpanCache(doc)
        out: list[tuple[int, tuple[str, ...]]] = []
        for index in self.candidates(doc):
            if only is not None and index not in only:
                continue
            terms = self.queries[index].match(doc, cache)
            if terms is not None:
                out.append((index, terms))
        return out


# ------------------------------------------------------------------ anchor analysis


class _Anchoring:
    """Finds each query's required sets, cheapest (least likely present) first.

    A word costs more when it is short (``ai``, ``uk`` are everywhere) or a
    prefix, and more again the more queries use it: a word shared by hundreds
    of rules is generic, and indexing on it would wake all of them.
    """

    def __init__(self, roots: Sequence[_Node]) -> None:
        self.popularity: Counter[str] = Counter()
        for root in roots:
            words = {word for leaf in _leaves(root) for _, word in _words_anchors(leaf)}
            self.popularity.update(words)

    def required_sets(self, root: _Node) -> list[_Anchors]:
        """Sets of anchors, one of each must be present for ``root`` to match.

        Never wrong in one direction: if ``root`` matches a document, every set
        has a member in that document's text fields. Sorted cheapest first.
        """
        return sorted(set(self._required(root)), key=lambda s: (self.cost(s), sorted(s)))

    def _required(self, node: _Node) -> list[_Anchors]:
        if isinstance(node, _Words):
            anchors = _searchable_anchors(node)
            return [anchors] if anchors is not None else []
        if isinstance(node, _Regex | _Not):
            return []
        if isinstance(node, _And):
            return [need for child in node.children for need in self._required(child)]
        if isinstance(node, _Near):
            # Both sides must be present (in a text field the words search).
            sides = (_union(map(_searchable_anchors, side)) for side in (node.left, node.right))
            return [side for side in sides if side is not None]
        # OR: one branch must match, so one of the branches' cheapest sets must hold.
        per_branch: list[_Anchors] = []
        for child in node.children:
            needed = self._required(child)
            if not needed:
                return []
            per_branch.append(min(needed, key=self.cost))
        merged = _union(per_branch)
        return [merged] if merged is not None else []

    def cost(self, anchors: _Anchors) -> float:
        total = 0.0
        for kind, word in anchors:
            if kind == SPLIT:
                continue  # only a match together with its other half
            weight = 2.0 ** max(0, 7 - len(word)) * (2 if kind == PREFIX else 1)
            total += weight * self.popularity[word]
        return total


def _leaves(node: _Node) -> Iterable[_Words]:
    """The term leaves that must be present for some match (not under NOT)."""
    if isinstance(node, _Words):
        yield node
    elif isinstance(node, _And | _Or):
        for child in node.children:
            yield from _leaves(child)
    elif isinstance(node, _Near):
        yield from (*node.left, *node.right)


def _searchable_anchors(words: _Words) -> _Anchors | None:
    """The anchors of ``words``; None when it also searches tag:, link: or domain:."""
    if all(name in TEXT_FIELDS for name in words.fields):
        return _words_anchors(words)
    return None


def _words_anchors(words: _Words) -> _Anchors:
    """Words one of which every match of ``words`` in a text field starts with.

    A phrase needs all its units; the one with the longest word is taken.
    """
    return _pattern_anchors(words.pattern)


@lru_cache(maxsize=16384)
def _pattern_anchors(pattern: Pattern) -> _Anchors:
    # Shared lists put the same pattern under many rules: compute its anchors once.
    units = pattern.units
    if not units:
        return frozenset()  # matches nothing
    return max((_unit_anchors(unit) for unit in units), key=_main_length)


def _main_length(anchors: _Anchors) -> int:
    return min((len(word) for kind, word in anchors if kind != SPLIT), default=0)


def _unit_anchors(unit: Unit) -> _Anchors:
    """Words one of which a match of ``unit`` starts with (mirrors textmatch._unit_spans)."""
    first = unit.parts[0]
    if len(unit.parts) == 1:
        if unit.prefix:
            return frozenset({(PREFIX, first)})
        # "cooperation" also matches "co operation", which starts with "co".
        return frozenset({(EXACT, first), *((SPLIT, left) for left, _ in unit.splits)})
    anchors: set[_Anchor] = {(EXACT, first)}  # the parts as a phrase
    if unit.joined is not None:
        anchors.add((PREFIX if unit.prefix else EXACT, unit.joined))
    return frozenset(anchors)


def _union(parts: Iterable[_Anchors | None]) -> _Anchors | None:
    out: set[_Anchor] = set()
    for part in parts:
        if part is None:
            return None
        out |= part
    return frozenset(out)
