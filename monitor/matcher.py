"""Run many compiled queries over one document, sharing the work between them.

Two things keep the cost per entry nearly flat as rules are added:

1. **Anchors.** Every query is analysed once for words that *must* be in the
   document for it to match: a set of alternatives ("``memorandum`` or a word
   starting with ``partner``"). A document's words are looked up once in an
   index of all anchors (a dict for whole words, a prefix trie for ``word*``),
   and only the queries with an anchor present are evaluated. Queries with no
   usable anchor (only ``tag:``/``link:``/``domain:`` or ``/regex/`` terms) are
   evaluated for every document.
2. **Shared lookups.** The candidates run over one :class:`SpanCache`, so a
   term or ``@list`` item used by many rules is looked up once per document.

Both are invisible in the result: :meth:`RuleMatcher.match` returns exactly
what calling each query's :meth:`~monitor.query.CompiledQuery.match` would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass

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
from monitor.textmatch import Document, SpanCache, Unit

# An anchor is a folded word that must occur in a text field of the document:
# as a whole word (EXACT), as the start of a word (PREFIX), or as the first half
# of a word the text splits in two (SPLIT: "co" of "co operation").
EXACT, PREFIX, SPLIT = "exact", "prefix", "split"
_Anchor = tuple[str, str]  # (kind, word)
_Anchors = frozenset[_Anchor]


@dataclass(frozen=True, slots=True)
class _TrieNode:
    children: dict[str, _TrieNode]
    queries: list[int]  # queries with a prefix anchor ending here


class RuleMatcher:
    """Many compiled queries, matched together; results as if each were run alone."""

    def __init__(self, queries: Sequence[CompiledQuery]) -> None:
        self.queries = tuple(queries)
        self._always: list[int] = []  # no anchor: evaluated for every document
        self._exact: dict[str, list[int]] = {}
        self._trie = _TrieNode({}, [])
        anchoring = _Anchoring([query.root for query in self.queries])
        for index, query in enumerate(self.queries):
            anchors = anchoring.anchors(query.root)
            if anchors is None:
                self._always.append(index)
                continue
            for kind, word in anchors:
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
        """How many queries have no anchor and so run on every document."""
        return len(self._always)

    def candidates(self, doc: Document) -> list[int]:
        """Indices of the queries that could match ``doc``, ascending.

        Every query that matches is among them; most that do not are not.
        """
        found: set[int] = set(self._always)
        exact, root = self._exact, self._trie
        has_prefixes = bool(root.children)
        for name in TEXT_FIELDS:
            for word in doc.field(name).spans:
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
        return sorted(found)

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
    """Picks, for each query, the anchors least likely to be present.

    Where a query offers a choice (the children of ``AND``, the two sides of
    ``NEAR``), the cheapest set of alternatives wins. A word costs more when
    it is short (``ai``, ``uk`` are everywhere) or a prefix, and more again
    the more queries use it: a word shared by hundreds of rules is generic,
    and anchoring on it would wake all of them.
    """

    def __init__(self, roots: Sequence[_Node]) -> None:
        self.popularity: Counter[str] = Counter()
        for root in roots:
            self.popularity.update({word for leaf in _leaves(root) for _, word in _words(leaf)})

    def anchors(self, node: _Node) -> _Anchors | None:
        """Words one of which must be present for ``node`` to match; None if unknown.

        Never wrong in one direction: if ``node`` matches a document, one of
        the anchors occurs in that document's text fields.
        """
        if isinstance(node, _Words):
            return self.best([_words(node)] if _searchable(node) else [None])
        if isinstance(node, _Regex | _Not):
            return None
        if isinstance(node, _Or):
            return _union(self.anchors(child) for child in node.children)
        if isinstance(node, _And):
            return self.best([self.anchors(child) for child in node.children])
        # Both sides of NEAR must be present: either side's anchors will do.
        return self.best(
            [_union(self.anchors(w) for w in side) for side in (node.left, node.right)]
        )

    def cost(self, anchors: _Anchors | None) -> float:
        if anchors is None:
            return float("inf")
        total = 0.0
        for kind, word in anchors:
            if kind == SPLIT:
                continue  # only a match together with its other half
            weight = 2.0 ** max(0, 7 - len(word)) * (2 if kind == PREFIX else 1)
            total += weight * self.popularity[word]
        return total

    def best(self, options: Sequence[_Anchors | None]) -> _Anchors | None:
        return min(options, key=self.cost, default=None)


def _leaves(node: _Node) -> Iterator[_Words]:
    """The term leaves that must be present for some match (not under NOT)."""
    if isinstance(node, _Words):
        yield node
    elif isinstance(node, _And | _Or):
        for child in node.children:
            yield from _leaves(child)
    elif isinstance(node, _Near):
        yield from (*node.left, *node.right)


def _searchable(words: _Words) -> bool:
    return all(name in TEXT_FIELDS for name in words.fields)


def _words(words: _Words) -> _Anchors:
    """Words one of which every match of ``words`` in a text field starts with.

    A phrase needs all its units; the one with the longest word is taken.
    """
    units = words.pattern.units
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
