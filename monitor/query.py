"""The rule query language: lexer, parser and the compiled matcher.

A query such as ``@bodies NEAR/15 (partner* OR memorandum) AND NOT appoint*``
is compiled once, when rules are loaded, into a tree of small frozen nodes;
:meth:`CompiledQuery.match` then runs that tree over a prepared
:class:`~monitor.textmatch.Document`. The language is described for rule
authors in ``docs/query-language.md``.

Precedence, tightest first: ``NOT`` (and ``-term``), ``NEAR/n``/``ONEAR/n``,
``AND`` (also written as nothing), ``OR``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TypeVar

from monitor.errors import QuerySyntaxError
from monitor.textmatch import Document, Pattern, SpanCache, compile_pattern, fold_phrase

TEXT_FIELDS = ("title", "summary", "content", "source")
FIELDS = (*TEXT_FIELDS, "tag", "link", "domain")
DEFAULT_FIELDS = ("title", "summary", "content")

_Order = tuple[int, int]
_Hit = tuple[_Order, str]  # (where the term is in the query, the term as written)
_Span = tuple[int, int]  # start and end offsets of a clause in the query text

# ---------------------------------------------------------------------------- lexer

_OPEN_QUOTES = '"“”„‟'
_CLOSE_QUOTES = '"“”‟'
_TERM_RUN = re.compile(r"[\w\-.'’‘&*]+")
_LIST_NAME = re.compile(r"[\w-]+")
_DIGITS = re.compile(r"\d+")
_OPERATOR_WORDS = ("and", "or", "not")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ( ) AND OR NOT NEAR FIELD TERM PHRASE LIST REGEX END
    text: str
    pos: int
    distance: int = 0
    ordered: bool = False
    end: int = 0  # just past the token's last character


def _fail(message: str, query: str, pos: int) -> QuerySyntaxError:
    return QuerySyntaxError(message, query, pos)


def _check_star(text: str, query: str, offset: int) -> None:
    """``*`` may only end the text, right after a letter or digit."""
    star = text.find("*")
    if star == -1:
        return
    if star != len(text) - 1:
        raise _fail(
            "'*' can only end a word (it makes a prefix search, e.g. partner*)",
            query,
            offset + star,
        )
    if star == 0 or not text[star - 1].isalnum():
        raise _fail("put at least one letter or digit before '*'", query, offset + star)


def _check_has_words(text: str, query: str, pos: int) -> None:
    if not compile_pattern(text).units:
        raise _fail(f"{text!r} has no letters or digits to search for", query, pos)


def _lex_word(query: str, i: int) -> tuple[_Tok, int]:
    """A bare word at ``i``: an operator, a ``field:`` or a term."""
    run = _TERM_RUN.match(query, i)
    assert run is not None  # the caller saw a word character
    word, end = run.group(), run.end()
    nxt = query[end : end + 1]
    if nxt == ":":
        name = word.lower()
        if name not in FIELDS:
            raise _fail(f"unknown field '{word}:'; fields are {', '.join(FIELDS)}", query, i)
        after = query[end + 1 : end + 2]
        if not after or after.isspace() or after == ")":
            raise _fail(
                f"put what to search for right after '{word}:' (no space), e.g. {name}:agreement",
                query,
                end + 1,
            )
        return _Tok("FIELD", name, i), end + 1
    if word in ("AND", "OR", "NOT"):
        return _Tok(word, word, i), end
    if word in ("NEAR", "ONEAR"):
        if nxt != "/":
            raise _fail(f"{word} needs a distance in words, e.g. {word}/10", query, end)
        digits = _DIGITS.match(query, end + 1)
        if digits is None:
            raise _fail(
                f"{word}/ must be followed by a whole number of words, e.g. {word}/10",
                query,
                end + 1,
            )
        stop = digits.end()
        if _TERM_RUN.match(query, stop):
            raise _fail(f"{word}/n must be followed by a space", query, stop)
        return _Tok("NEAR", word, i, int(digits.group()), word == "ONEAR"), stop
    lower = word.lower()
    if lower in _OPERATOR_WORDS:
        raise _fail(
            f"'{word}' looks like an operator: write {word.upper()} in capitals, "
            f'or "{word}" in quotes to search for the word',
            query,
            i,
        )
    if lower in ("near", "onear") and nxt == "/":
        raise _fail(f"write {word.upper()}/n in capitals", query, i)
    _check_star(word, query, i)
    _check_has_words(word, query, i)
    return _Tok("TERM", word, i), end


def _lex_phrase(query: str, i: int) -> tuple[_Tok, int]:
    end = next((j for j in range(i + 1, len(query)) if query[j] in _CLOSE_QUOTES), -1)
    if end == -1:
        raise _fail("unterminated quote: this quote is never closed", query, i)
    body = query[i + 1 : end]
    stripped = body.strip()
    if not stripped:
        raise _fail("empty phrase: put words between the quotes", query, i)
    _check_star(stripped, query, i + 1 + body.find(stripped))
    _check_has_words(stripped, query, i)
    return _Tok("PHRASE", stripped, i), end + 1


def _lex_regex(query: str, i: int) -> tuple[_Tok, int]:
    j = i + 1
    while j < len(query) and query[j] != "/":
        j += 2 if query[j] == "\\" else 1
    if j >= len(query):
        raise _fail("unterminated /regex/: add the closing '/'", query, i)
    source = query[i + 1 : j]
    if not source:
        raise _fail("empty /regex/", query, i)
    try:
        re.compile(source)
    except re.error as exc:
        where = i + 1 + (exc.pos or 0)
        raise _fail(f"invalid regular expression: {exc.msg}", query, where) from None
    return _Tok("REGEX", source, i), j + 1


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        if toks and toks[-1].end == 0:
            toks[-1] = replace(toks[-1], end=i)
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, c, i))
            i += 1
        elif c in _OPEN_QUOTES:
            tok, i = _lex_phrase(query, i)
            toks.append(tok)
        elif c == "/":
            tok, i = _lex_regex(query, i)
            toks.append(tok)
        elif c == "@":
            name = _LIST_NAME.match(query, i + 1)
            if name is None:
                raise _fail("write a list name after '@', e.g. @bodies", query, i)
            toks.append(_Tok("LIST", name.group(), i))
            i = name.end()
        elif c == "-" and (
            i + 1 < n and (query[i + 1] in "(@/" + _OPEN_QUOTES or query[i + 1].isalnum())
        ):
            toks.append(_Tok("NOT", "-", i))  # "-term" excludes, like NOT term
            i += 1
        elif c.isalnum() or c in "_.'’‘&*":
            tok, i = _lex_word(query, i)
            toks.append(tok)
        elif c == "-":
            raise _fail(
                "a '-' must be followed directly by the term to exclude, e.g. -opinion", query, i
            )
        else:
            raise _fail(
                f"unexpected character {c!r}; put it inside quotes to search for it", query, i
            )
    if toks and toks[-1].end == 0:
        toks[-1] = replace(toks[-1], end=i)
    toks.append(_Tok("END", "", n, end=n))
    return toks


# ------------------------------------------------------------------------ matcher
#
# Every node has ``hits(cache)``: None when it does not match, else the terms
# that fired, as (order, label) pairs. Text-field lookups go through the
# document's SpanCache, so a term shared by many queries is looked up once.


@dataclass(frozen=True, slots=True)
class _Words:
    """A term, phrase or list item: words in text fields, exact in tag/link/domain."""

    label: str
    order: _Order
    pos: int
    fields: tuple[str, ...]
    pattern: Pattern
    literal: str  # folded, spaces collapsed, without '*': for tag, link and domain
    prefix: bool
    span: _Span = (0, 0)

    def spans(self, cache: SpanCache, name: str) -> list[tuple[int, int]]:
        return cache.spans(self.pattern, name) if name in self.fields else []

    def _in(self, cache: SpanCache, name: str) -> bool:
        doc = cache.doc
        if name == "tag":
            if self.prefix:
                return any(t.startswith(self.literal) for t in doc.tags)
            return self.literal in doc.tags
        if name == "link":
            return self.literal in doc.link
        if name == "domain":
            host = doc.host
            return host == self.literal or host.endswith("." + self.literal)
        return bool(cache.spans(self.pattern, name))

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        if any(self._in(cache, name) for name in self.fields):
            return [(self.order, self.label)]
        return None


@dataclass(frozen=True, slots=True)
class _Regex:
    label: str
    order: _Order
    pos: int
    fields: tuple[str, ...]
    regex: re.Pattern[str]
    span: _Span = (0, 0)

    def _texts(self, doc: Document, name: str) -> Sequence[str]:
        if name == "tag":
            return doc.tags
        if name == "link":
            return (doc.link,)
        if name == "domain":
            return (doc.host,)
        return (doc.field(name).text,)

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        for name in self.fields:
            if any(self.regex.search(text) for text in self._texts(cache.doc, name)):
                return [(self.order, self.label)]
        return None


@dataclass(frozen=True, slots=True)
class _Not:
    pos: int
    child: _Node
    span: _Span = (0, 0)

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        return None if self.child.hits(cache) is not None else []


@dataclass(frozen=True, slots=True)
class _And:
    pos: int
    children: tuple[_Node, ...]
    span: _Span = (0, 0)

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        found: list[_Hit] = []
        for child in self.children:
            got = child.hits(cache)
            if got is None:
                return None
            found.extend(got)
        return found


@dataclass(frozen=True, slots=True)
class _Or:
    pos: int
    children: tuple[_Node, ...]
    span: _Span = (0, 0)
    list_name: str = ""  # set when this is an @list reference

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        # No short cut: every branch that fired is reported.
        results = [child.hits(cache) for child in self.children]
        matched = [got for got in results if got is not None]
        return [hit for got in matched for hit in got] if matched else None


@dataclass(frozen=True, slots=True)
class _Near:
    pos: int
    left: tuple[_Words, ...]
    right: tuple[_Words, ...]
    distance: int  # at most this many other words between the two
    ordered: bool  # ONEAR: left must come first
    fields: tuple[str, ...]
    span: _Span = (0, 0)
    sides: tuple[_Node, ...] = ()  # the two operands as written, for traces

    def hits(self, cache: SpanCache) -> list[_Hit] | None:
        found: list[_Hit] = []
        for name in self.fields:
            lefts = [(s, e, w) for w in self.left for s, e in w.spans(cache, name)]
            if not lefts:
                continue
            rights = [(s, e, w) for w in self.right for s, e in w.spans(cache, name)]
            for s1, e1, w1 in lefts:
                for s2, e2, w2 in rights:
                    if e1 < s2:
                        gap = s2 - e1 - 1
                    elif e2 < s1 and not self.ordered:
                        gap = s1 - e2 - 1
                    else:
                        continue  # overlapping, or in the wrong order for ONEAR
                    if gap <= self.distance:
                        found += [(w1.order, w1.label), (w2.order, w2.label)]
        return found or None


_Node = _Words | _Regex | _Not | _And | _Or | _Near
_N = TypeVar("_N", bound=_Node)


def _labels(hits: list[_Hit]) -> tuple[str, ...]:
    """The labels of ``hits`` in query order, each once."""
    terms: dict[str, None] = {}
    for _, label in sorted(hits):
        terms.setdefault(label, None)
    return tuple(terms)


@dataclass(frozen=True)
class ClauseTrace:
    """How one clause of a query fared on one document; a tree mirroring the query.

    ``kind`` is one of term, phrase, prefix, item (an ``@list`` item), regex,
    list, and, or, not, near, onear. ``terms`` are the terms this clause
    contributes when it fired (what :meth:`CompiledQuery.match` reports for it),
    empty when it did not. The ``children`` of a near clause are its two sides,
    with ``fired`` meaning "present" (not necessarily near each other).
    """

    text: str
    kind: str
    fired: bool
    terms: tuple[str, ...] = ()
    children: tuple[ClauseTrace, ...] = ()


def _kind(node: _Node) -> str:
    if isinstance(node, _Words):
        if node.prefix:
            return "prefix"
        return "phrase" if len(node.pattern.units) > 1 else "term"
    if isinstance(node, _Regex):
        return "regex"
    if isinstance(node, _Not):
        return "not"
    if isinstance(node, _And):
        return "and"
    if isinstance(node, _Or):
        return "list" if node.list_name else "or"
    return "onear" if node.ordered else "near"


def _trace(
    node: _Node, cache: SpanCache, query: str, in_list: bool = False
) -> tuple[ClauseTrace, list[_Hit] | None]:
    """Trace ``node`` evaluating every branch; also return its hits, as ``hits()`` would."""
    children: list[ClauseTrace] = []
    hits: list[_Hit] | None
    if isinstance(node, _Not):
        child, got = _trace(node.child, cache, query)
        children.append(child)
        hits = [] if got is None else None
    elif isinstance(node, _And | _Or):
        results = []
        for sub in node.children:
            child, got = _trace(sub, cache, query, in_list=bool(getattr(node, "list_name", "")))
            children.append(child)
            results.append(got)
        if isinstance(node, _And):
            hits = None if any(g is None for g in results) else [h for g in results if g for h in g]
        else:
            matched = [g for g in results if g is not None]
            hits = [h for g in matched for h in g] if matched else None
    elif isinstance(node, _Near):
        hits = node.hits(cache)
        children.extend(_trace(side, cache, query)[0] for side in node.sides)
    else:
        hits = node.hits(cache)
    if in_list and isinstance(node, _Words):
        text, kind = node.label, "item"
    else:
        text, kind = query[node.span[0] : node.span[1]], _kind(node)
    terms = _labels(hits) if hits is not None else ()
    return ClauseTrace(text, kind, hits is not None, terms, tuple(children)), hits


@dataclass(frozen=True)
class CompiledQuery:
    """A parsed, checked query, ready to run over many documents."""

    text: str
    root: _Node = field(repr=False, compare=False)

    def match(self, doc: Document, cache: SpanCache | None = None) -> tuple[str, ...] | None:
        """None if ``doc`` does not match; else the terms that fired, in query order.

        Terms are reported as written in the query (phrases without their
        quotes) or, for ``@list`` references, as the list item that fired.
        ``cache``, a :class:`~monitor.textmatch.SpanCache` of ``doc``, lets
        several queries share term lookups on the same document.
        """
        hits = self.root.hits(cache if cache is not None else SpanCache(doc))
        return None if hits is None else _labels(hits)

    def trace(self, doc: Document) -> ClauseTrace:
        """Why ``doc`` does or does not match: every clause evaluated, none skipped.

        The root's ``fired`` and ``terms`` always agree with :meth:`match`.
        """
        return _trace(self.root, SpanCache(doc), self.text)[0]


# ------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, query: str, lists: Mapping[str, Sequence[str]]) -> None:
        self.query = query
        self.lists = lists
        self.toks = _lex(query)
        self.i = 0
        self.leaves = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, pos: int) -> QuerySyntaxError:
        return _fail(message, self.query, pos)

    def parse(self) -> _Node:
        if self.peek().kind == "END":
            raise self.fail("empty query: write at least one term", 0)
        node = self.parse_or(None)
        tok = self.peek()
        if tok.kind == ")":
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", tok.pos)
        assert tok.kind == "END"
        if not _positive(node):
            raise self.fail(
                "a query needs at least one term that must be present "
                "(NOT alone would match almost everything)",
                0,
            )
        return node

    def parse_or(self, fld: str | None) -> _Node:
        first = self.parse_and(fld)
        children = [first]
        while self.peek().kind == "OR":
            self.take()
            branch = self.parse_and(fld)
            children.append(branch)
        if len(children) == 1:
            return first
        for child in children:
            if not _positive(child):
                raise self.fail(
                    "each side of OR needs a term that must be present "
                    "(NOT alone would match almost everything)",
                    child.pos,
                )
        return self.spanned(_Or(first.pos, tuple(children)), first.span[0])

    def parse_and(self, fld: str | None) -> _Node:
        first = self.parse_near(fld)
        children = [first]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
            elif kind not in ("NOT", "FIELD", "TERM", "PHRASE", "LIST", "REGEX", "("):
                break  # not the start of another operand: no implicit AND
            children.append(self.parse_near(fld))
        if len(children) == 1:
            return first
        return self.spanned(_And(first.pos, tuple(children)), first.span[0])

    def parse_near(self, fld: str | None) -> _Node:
        left = self.parse_unary(fld)
        if self.peek().kind != "NEAR":
            return left
        op = self.take()
        right = self.parse_unary(fld)
        if self.peek().kind == "NEAR":
            raise self.fail(
                f"{self.peek().text} cannot be chained; combine pairs with AND: "
                "(a NEAR/5 b) AND (b NEAR/5 c)",
                self.peek().pos,
            )
        lefts, rights = self.near_operand(left, op), self.near_operand(right, op)
        fields = tuple(
            name
            for name in TEXT_FIELDS
            if any(name in w.fields for w in lefts) and any(name in w.fields for w in rights)
        )
        if not fields:
            raise self.fail(
                f"the two sides of {op.text} search different fields; they must share one", op.pos
            )
        near = _Near(left.pos, lefts, rights, op.distance, op.ordered, fields, sides=(left, right))
        return self.spanned(near, left.span[0])

    def near_operand(self, node: _Node, op: _Tok) -> tuple[_Words, ...]:
        if isinstance(node, _Words):
            if not any(name in TEXT_FIELDS for name in node.fields):
                raise self.fail(
                    f"{op.text} works on words in {', '.join(TEXT_FIELDS)}; "
                    "not tag:, link: or domain:",
                    node.pos,
                )
            return (node,)
        if isinstance(node, _Or):
            return tuple(w for child in node.children for w in self.near_operand(child, op))
        what = "a /regex/" if isinstance(node, _Regex) else "AND, NOT or NEAR"
        raise self.fail(
            f"{op.text} sides can only be terms, phrases, @lists or (a OR b) "
            f"groups, not {what}; move it outside: (a {op.text}/5 b) AND c",
            node.pos,
        )

    def parse_unary(self, fld: str | None) -> _Node:
        tok = self.peek()
        if tok.kind == "NOT":
            self.take()
            if self.peek().kind == "END":
                raise self.fail(f"'{tok.text}' needs a term after it", tok.pos)
            return self.spanned(_Not(tok.pos, self.parse_unary(fld)), tok.pos)
        return self.parse_primary(fld)

    def parse_primary(self, fld: str | None) -> _Node:
        tok = self.take()
        kind = tok.kind
        if kind == "FIELD":
            if fld is not None:
                raise self.fail(f"'{tok.text}:' inside a '{fld}:' group; use one field", tok.pos)
            if self.peek().kind not in ("TERM", "PHRASE", "LIST", "REGEX", "("):
                raise self.fail(
                    f"after '{tok.text}:' put a term, \"phrase\", @list, /regex/ or (group)",
                    self.peek().pos,
                )
            return self.spanned(self.parse_primary(tok.text), tok.pos)
        if kind in ("TERM", "PHRASE"):
            words = self.words(tok.text, tok.pos, fld, (self.next_leaf(), 0))
            return self.spanned(words, tok.pos)
        if kind == "LIST":
            return self.list_ref(tok, fld)
        if kind == "REGEX":
            regex = re.compile(tok.text, re.IGNORECASE)
            fields = (fld,) if fld else DEFAULT_FIELDS
            node = _Regex(f"/{tok.text}/", (self.next_leaf(), 0), tok.pos, fields, regex)
            return self.spanned(node, tok.pos)
        if kind == "(":
            if self.peek().kind == ")":
                raise self.fail("empty parentheses", tok.pos)
            inner = self.parse_or(fld)
            if self.peek().kind != ")":
                raise self.fail("unbalanced parenthesis: this '(' is never closed", tok.pos)
            self.take()
            return self.spanned(inner, tok.pos)
        if kind in (")", "END"):
            prev = self.toks[self.i - 2] if self.i >= 2 else None
            if prev is not None and prev.kind in ("AND", "OR", "NOT", "NEAR"):
                raise self.fail(f"'{prev.text}' needs a term after it", prev.pos)
            if prev is not None and prev.kind == "(" and kind == "END":
                raise self.fail("unbalanced parenthesis: this '(' is never closed", prev.pos)
            raise self.fail("unbalanced parenthesis: this ')' has no matching '('", tok.pos)
        raise self.fail(f"'{tok.text}' needs a term before it", tok.pos)

    def spanned(self, node: _N, start: int) -> _N:
        """``node`` with its span: from ``start`` to the end of the last token taken."""
        return replace(node, span=(start, self.toks[self.i - 1].end))

    def next_leaf(self) -> int:
        self.leaves += 1
        return self.leaves

    def words(
        self, text: str, pos: int, fld: str | None, order: _Order, span: _Span = (0, 0)
    ) -> _Words:
        try:
            term = _term(text, fld)
        except QuerySyntaxError as exc:
            raise self.fail(exc.message, pos) from None
        return _Words(text, order, pos, *term, span)

    def list_ref(self, tok: _Tok, fld: str | None) -> _Node:
        items = self.lists.get(tok.text)
        if items is None:
            known = ", ".join("@" + name for name in sorted(self.lists)) or "none are defined"
            raise self.fail(f"unknown list '@{tok.text}'; known lists: {known}", tok.pos)
        if not items:
            raise self.fail(f"list '@{tok.text}' has no items", tok.pos)
        try:
            terms = _list_terms(items if isinstance(items, tuple) else tuple(items), fld)
        except _BadItem as exc:
            message = f"list '@{tok.text}' item {exc.item!r}: {exc.message}"
            raise self.fail(message, tok.pos) from None
        except QuerySyntaxError as exc:
            raise self.fail(exc.message, tok.pos) from None
        order = self.next_leaf()
        span = (tok.pos, tok.end)
        leaves = tuple(
            _Words(label, (order, k), tok.pos, *term, span) for k, (label, term) in enumerate(terms)
        )
        # Kept as a group even for one item, so a trace can show the list by name.
        return _Or(tok.pos, leaves, span, tok.text)


_Term = tuple[tuple[str, ...], Pattern, str, bool]  # fields, pattern, literal, prefix


@lru_cache(maxsize=16384)
def _term(text: str, fld: str | None) -> _Term:
    """What a term means in field ``fld``; cached, as rules repeat lists and terms many times."""
    prefix = text.endswith("*")
    literal = fold_phrase(text.rstrip("*"))
    if fld == "domain":
        if prefix:
            raise _fail(
                "domain: matches whole host names (and their subdomains); drop the '*'", "", 0
            )
        literal = literal.strip(".")
    fields = (fld,) if fld else DEFAULT_FIELDS
    return fields, compile_pattern(text), literal, prefix


class _BadItem(QuerySyntaxError):
    def __init__(self, item: str, cause: QuerySyntaxError) -> None:
        super().__init__(cause.message, cause.query, cause.position)
        self.item = item


@lru_cache(maxsize=1024)
def _list_terms(items: tuple[str, ...], fld: str | None) -> tuple[tuple[str, _Term], ...]:
    """Each list item checked and analysed once, however many queries use the list."""
    terms: list[tuple[str, _Term]] = []
    for item in items:
        try:
            validate_list_item(item)
        except QuerySyntaxError as exc:
            raise _BadItem(item, exc) from None
        label = item.strip()
        terms.append((label, _term(label, fld)))
    return tuple(terms)


def _positive(node: _Node) -> bool:
    """True if every match of ``node`` needs some term to be present."""
    if isinstance(node, _Not):
        return False
    if isinstance(node, _And):
        return any(_positive(child) for child in node.children)
    if isinstance(node, _Or):
        return all(_positive(child) for child in node.children)
    return True


def compile_query(text: str, lists: Mapping[str, Sequence[str]] | None = None) -> CompiledQuery:
    """Parse and check ``text``; ``lists`` are the named term lists ``@name`` may use.

    Raises :class:`~monitor.errors.QuerySyntaxError` with a 0-based position and
    a message that says how to fix the query.
    """
    return CompiledQuery(text, _Parser(text, lists or {}).parse())


_ITEM_CLASS = r"[\w\s\-.'’‘&*]"  # what a list item may contain
_ITEM_CHARS = re.compile(_ITEM_CLASS)
_ITEM_RUN = re.compile(_ITEM_CLASS + "+")  # no character to complain about: skip the loop


@lru_cache(maxsize=16384)
def validate_list_item(item: str) -> None:
    """Raise :class:`~monitor.errors.QuerySyntaxError` unless ``item`` is a valid list item.

    An item is a word, a phrase written without quotes, or either with a
    trailing ``*`` (prefix). Positions are offsets into ``item``.
    """
    if not item.strip():
        raise _fail("empty list item", item, 0)
    for pos, char in enumerate(item if _ITEM_RUN.fullmatch(item) is None else ""):
        if char in _OPEN_QUOTES:
            raise _fail("write list items without quotes: each item is already a phrase", item, pos)
        if not _ITEM_CHARS.match(char):
            raise _fail(
                f"{char!r} cannot be used in a list item; items are words or phrases", item, pos
            )
    start = len(item) - len(item.lstrip())
    stripped = item.strip()
    _check_star(stripped, item, start)
    _check_has_words(stripped, item, start)
