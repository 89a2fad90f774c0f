"""Property tests: the compiled matcher agrees with a naive reference evaluator.

Queries are generated as small syntax trees over a tiny vocabulary (terms,
prefixes, phrases, an @list, tag:, title:/summary:, AND/OR/NOT, NEAR/ONEAR),
rendered to query text and compiled; documents are random word sequences.
The reference below evaluates the tree directly over lists of lower-case
tokens, written from the language description, not from the implementation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.matcher import RuleMatcher
from monitor.query import compile_query
from monitor.textmatch import Document, prepare_document

# Several words are two others written together (co+operation, open+ai,
# net+work), so the "a word split in two" rule is exercised too.
VOCAB = tuple(
    " ".join(
        (
            "ai safety safe institute partner partners partnership uk us sign signs",
            "co operation cooperation open openai net work network memo",
        )
    ).split()
)
TAGS = ("gov", "government", "news")
LISTS = {"orgs": ["ai safety institute", "openai", "partner*", "net work"]}
FIELDS = ("title", "summary")
Hit = tuple[tuple[int, int], str]

# ----------------------------------------------------------------- query trees


@dataclass(frozen=True)
class Leaf:
    kind: str  # term, prefix, phrase, list, tag
    text: str  # as written, without field or quotes
    field: str | None = None


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    implicit: bool = False


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node
    dash: bool = False


@dataclass(frozen=True)
class Near:
    left: Leaf | Or
    right: Leaf | Or
    distance: int
    ordered: bool


Node = Leaf | And | Or | Not | Near


def render(node: Node) -> str:
    if isinstance(node, Leaf):
        prefix = f"{node.field}:" if node.field else ""
        if node.kind == "phrase":
            return f'{prefix}"{node.text}"'
        if node.kind == "list":
            return f"{prefix}@{node.text}"
        if node.kind == "tag":
            return f"tag:{node.text}"
        return prefix + node.text
    if isinstance(node, And):
        return "(" + (" " if node.implicit else " AND ").join(map(render, node.children)) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(map(render, node.children)) + ")"
    if isinstance(node, Not):
        return ("-" if node.dash else "NOT ") + render(node.child)
    op = "ONEAR" if node.ordered else "NEAR"
    return f"({render(node.left)} {op}/{node.distance} {render(node.right)})"


def _cased(draw: st.DrawFn, word: str) -> str:
    return draw(st.sampled_from((word, word.upper(), word.capitalize())))


@st.composite
def words_leaf(draw: st.DrawFn, field: str | None) -> Leaf:
    """A leaf that searches words: term, prefix, phrase or @list."""
    kind = draw(st.sampled_from(("term", "term", "prefix", "phrase", "list")))
    if kind == "list":
        return Leaf("list", "orgs", field)
    if kind == "prefix":
        word = draw(st.sampled_from(VOCAB))
        return Leaf("prefix", _cased(draw, word[: draw(st.integers(1, len(word)))]) + "*", field)
    if kind == "phrase":
        words = [
            _cased(draw, w) for w in draw(st.lists(st.sampled_from(VOCAB), min_size=2, max_size=3))
        ]
        if draw(st.booleans()):
            words[-1] = words[-1][: max(1, len(words[-1]) - 2)] + "*"
        return Leaf("phrase", " ".join(words), field)
    return Leaf("term", _cased(draw, draw(st.sampled_from(VOCAB))), field)


@st.composite
def near_side(draw: st.DrawFn, field: str | None) -> Leaf | Or:
    leaves = draw(st.lists(words_leaf(field), min_size=1, max_size=3))
    return leaves[0] if len(leaves) == 1 else Or(tuple(leaves))


@st.composite
def positive(draw: st.DrawFn, depth: int) -> Node:
    """A query tree that needs some term to be present (as the language requires)."""
    choice = draw(st.integers(0, 4 if depth > 0 else 1))
    if choice == 0:
        field = draw(st.sampled_from((None, None, *FIELDS)))
        return draw(words_leaf(field))
    if choice == 1:
        if draw(st.integers(0, 5)) == 0:
            word = draw(st.sampled_from(TAGS))
            return Leaf("tag", word[:2] + "*" if draw(st.booleans()) else word)
        field = draw(st.sampled_from((None, *FIELDS)))
        left, right = draw(near_side(field)), draw(near_side(field))
        return Near(left, right, draw(st.integers(0, 6)), draw(st.booleans()))
    if choice == 2:
        return Or(tuple(draw(st.lists(positive(depth - 1), min_size=2, max_size=3))))
    first = draw(positive(depth - 1))
    rest = draw(st.lists(any_node(depth - 1), min_size=1, max_size=2))
    children = [first, *rest]
    return And(tuple(draw(st.permutations(children))), draw(st.booleans()))


@st.composite
def any_node(draw: st.DrawFn, depth: int) -> Node:
    if draw(st.integers(0, 2)) == 0:
        return Not(draw(positive(depth)), draw(st.booleans()))
    return draw(positive(depth))


queries = positive(2)

# ------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Doc:
    title: str
    summary: str
    tags: tuple[str, ...]

    def tokens(self, field: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", getattr(self, field).lower())


@st.composite
def texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(VOCAB), min_size=2, max_size=12))
    seps = draw(st.lists(st.sampled_from((" ", ", ", "; ", " ... ")), min_size=len(words)))
    return "".join(_cased(draw, w) + sep for w, sep in zip(words, seps, strict=False)).strip()


documents = st.builds(Doc, texts(), texts(), st.lists(st.sampled_from(TAGS), max_size=2).map(tuple))

# ------------------------------------------------------------------- reference

Span = tuple[int, int]


def unit_spans(unit: str, tokens: Sequence[str]) -> list[Span]:
    """Where one query word occurs: itself, a prefix, or written as two words."""
    if unit.endswith("*"):
        stem = unit[:-1]
        return [(i, i) for i, tok in enumerate(tokens) if tok.startswith(stem)]
    found = [(i, i) for i, tok in enumerate(tokens) if tok == unit]
    for i in range(len(tokens) - 1):
        a, b = tokens[i], tokens[i + 1]
        if len(a) >= 2 and len(b) >= 2 and a + b == unit:
            found.append((i, i + 1))
    return found


def phrase_spans(text: str, tokens: Sequence[str]) -> list[Span]:
    units = text.lower().split()
    found = unit_spans(units[0], tokens)
    for unit in units[1:]:
        nxt = unit_spans(unit, tokens)
        found = [(s, e2) for s, e in found for s2, e2 in nxt if s2 == e + 1]
    return sorted(set(found))


class Reference:
    """Evaluates a query tree over a Doc, collecting (order, label) hits."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.counter = 0

    def words(self, leaf: Leaf) -> list[tuple[tuple[int, int], str, str]]:
        """(order, label, text to search) for a words leaf (several for a list)."""
        self.counter += 1
        if leaf.kind == "list":
            return [((self.counter, k), item, item) for k, item in enumerate(LISTS["orgs"])]
        return [((self.counter, 0), leaf.text, leaf.text)]

    def eval(self, node: Node) -> list[Hit] | None:
        if isinstance(node, Leaf):
            if node.kind == "tag":
                self.counter += 1
                stem = node.text.rstrip("*")
                ok = any(
                    t.startswith(stem) if node.text.endswith("*") else t == stem
                    for t in self.doc.tags
                )
                return [((self.counter, 0), node.text)] if ok else None
            fields = (node.field,) if node.field else FIELDS
            hits: list[Hit] = []
            for order, label, text in self.words(node):
                if any(phrase_spans(text, self.doc.tokens(f)) for f in fields):
                    hits.append((order, label))
            return hits or None
        if isinstance(node, Not):
            return [] if self.eval(node.child) is None else None
        if isinstance(node, And):
            results = [self.eval(child) for child in node.children]
            if any(r is None for r in results):
                return None
            return [h for r in results if r for h in r]
        if isinstance(node, Or):
            results = [self.eval(child) for child in node.children]
            matched = [r for r in results if r is not None]
            return [h for r in matched for h in r] if matched else None
        return self.near(node)

    def near(self, node: Near) -> list[Hit] | None:
        sides: list[list[tuple[Leaf, tuple[tuple[int, int], str, str]]]] = []
        for side in (node.left, node.right):
            leaves = (
                [c for c in side.children if isinstance(c, Leaf)]
                if isinstance(side, Or)
                else [side]
            )
            sides.append([(leaf, w) for leaf in leaves for w in self.words(leaf)])
        field = next(leaf.field for leaf, _ in sides[0])  # one field (or none) per near
        hits: list[Hit] = []
        for name in (field,) if field else FIELDS:
            tokens = self.doc.tokens(name)
            lefts = [(s, o, lab) for _, (o, lab, t) in sides[0] for s in phrase_spans(t, tokens)]
            rights = [(s, o, lab) for _, (o, lab, t) in sides[1] for s in phrase_spans(t, tokens)]
            for (s1, e1), o1, l1 in lefts:
                for (s2, e2), o2, l2 in rights:
                    if e1 < s2:
                        gap = s2 - e1 - 1
                    elif e2 < s1 and not node.ordered:
                        gap = s1 - e2 - 1
                    else:
                        continue
                    if gap <= node.distance:
                        hits += [(o1, l1), (o2, l2)]
        return hits or None


def reference(node: Node, doc: Doc) -> tuple[str, ...] | None:
    hits = Reference(doc).eval(node)
    if hits is None:
        return None
    return tuple(dict.fromkeys(label for _, label in sorted(hits)))


def prepared(doc: Doc) -> Document:
    return prepare_document(doc.title, doc.summary, tags=doc.tags)


# ----------------------------------------------------------------------- tests

SETTINGS = settings(max_examples=200, deadline=None)


def test_vocabulary_has_splits_but_no_compounds() -> None:
    joined = {a + b for a in VOCAB for b in VOCAB if len(a) >= 2 and len(b) >= 2}
    assert {"cooperation", "openai", "network"} <= joined
    assert all(re.fullmatch(r"[a-z]+", w) for w in VOCAB)


@SETTINGS
@given(queries, documents)
def test_match_agrees_with_reference(tree: Node, doc: Doc) -> None:
    query = compile_query(render(tree), LISTS)
    assert query.match(prepared(doc)) == reference(tree, doc), render(tree)


@SETTINGS
@given(queries, documents)
def test_trace_agrees_with_match(tree: Node, doc: Doc) -> None:
    query = compile_query(render(tree), LISTS)
    document = prepared(doc)
    terms = query.match(document)
    trace = query.trace(document)
    assert trace.fired == (terms is not None)
    assert trace.terms == (terms or ())


@SETTINGS
@given(st.lists(queries, min_size=1, max_size=8), st.lists(documents, min_size=1, max_size=4))
def test_rule_matcher_agrees_with_each_query(trees: list[Node], docs: list[Doc]) -> None:
    compiled = [compile_query(render(tree), LISTS) for tree in trees]
    matcher = RuleMatcher(compiled)
    for doc in docs:
        document = prepared(doc)
        expected = [(i, t) for i, q in enumerate(compiled) if (t := q.match(document)) is not None]
        assert matcher.match(document) == expected
        assert {i for i, _ in expected} <= set(matcher.candidates(document))
