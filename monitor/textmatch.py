"""Text folding, tokenising and the per-entry word index that rule queries run on.

Text and query terms go through the same two steps, so they always agree:

1. :func:`fold` makes text case-, accent- and punctuation-variant-insensitive.
2. :func:`tokenize` cuts folded text into words. Words written with ``-``, ``&``
   or ``'`` inside (``co-operation``, ``AT&T``) and dotted abbreviations
   (``U.S.``) give one token per part *and* are indexed in their joined form
   (``cooperation``, ``att``, ``us``) spanning those parts.

A :class:`Document` holds one :class:`FieldIndex` per text field, built once per
entry; a :class:`Pattern` (a compiled term or phrase) finds its spans in one.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import urlsplit

Span = tuple[int, int]
"""Word positions ``(first, last)`` of one occurrence, both inclusive."""

_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u202f\u205f\u3000"
)
_FOLD_TABLE: Mapping[int, str | None] = MappingProxyType(
    {
        **{ord(c): "-" for c in _DASHES},
        **{ord(c): " " for c in _SPACES},
        **{ord(c): "'" for c in "\u2018\u2019\u201a\u201b"},
        **{ord(c): '"' for c in "\u201c\u201d\u201e\u201f"},
        # Invisible characters that sit inside words: "co\u00adoperation" is one word.
        **{ord(c): None for c in "\u00ad\u2060\ufeff"},
    }
)
# Only diacritics are dropped, not every combining mark: the Japanese voicing
# marks (\u3099) and Indic vowel signs change the letter, they are not accents.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")

# Scripts written without spaces: each character is a word of its own.
_CJK = (
    "\u3005-\u3007\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)
_HANGUL = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"
# Python's \w leaves out combining vowel signs, which would cut Hindi words apart.
_INDIC = "\u0900-\u0963\u0966-\u0dff"
_PART = rf"(?:[^\W_{_CJK}{_HANGUL}{_INDIC}]|[{_INDIC}])+"
_TOKEN_RE = re.compile(rf"([{_CJK}])|([{_HANGUL}]+)|({_PART}(?:[-.&']{_PART})*)")
_CONNECTOR_RE = re.compile(r"([-.&'])")

_TEXT_FIELDS = ("title", "summary", "content", "source")


def fold(text: str) -> str:
    """Fold ``text`` for matching.

    Case-folds, strips accents (``sécurité`` -> ``securite``), straightens
    curly quotes and apostrophes, turns every dash variant into ``-``, turns
    no-break and other Unicode spaces into a plain space, and applies NFKC-style
    compatibility mapping (full-width ``ＡＩ`` -> ``ai``). The result may be
    longer or shorter than ``text`` (``ß`` -> ``ss``).
    """
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text.casefold())
    # NFC afterwards puts Hangul syllables and Japanese kana back together.
    text = unicodedata.normalize("NFC", _DIACRITICS.sub("", text))
    return text.translate(_FOLD_TABLE)


def _split_compound(word: str) -> tuple[tuple[str, ...], str | None]:
    """Parts of a word like ``co-operation`` and its joined form (or None)."""
    pieces = _CONNECTOR_RE.split(word)
    parts = [pieces[0]]
    connectors: list[str] = []
    for k in range(1, len(pieces), 2):
        connector, part = pieces[k], pieces[k + 1]
        if connector == "'" and part == "s":
            continue  # possessive: "institute's" is the word "institute"
        connectors.append(connector)
        parts.append(part)
    if len(parts) == 1:
        return (parts[0],), None
    if "." not in connectors:
        return tuple(parts), "".join(parts)
    # "U.S." is also "US"; "gov.uk" or "3.5" are not words to be joined.
    if all(c == "." for c in connectors) and all(len(p) == 1 and p.isalpha() for p in parts):
        return tuple(parts), "".join(parts)
    return tuple(parts), None


def token_groups(folded: str) -> list[tuple[tuple[str, ...], str | None]]:
    """Cut folded text into word groups: ``(parts, joined form or None)``.

    A plain word is a group of one part. ``co-operation`` is ``(("co",
    "operation"), "cooperation")``. Each CJK ideograph or kana is a group of its
    own; a run of Hangul is one word, also where it touches Latin letters
    (``ai안전연구소와`` -> ``ai``, ``안전연구소와``).
    """
    groups: list[tuple[tuple[str, ...], str | None]] = []
    for m in _TOKEN_RE.finditer(folded):
        word = m.group(3)
        if word is None:
            groups.append(((m.group(),), None))
        elif word.isalnum():
            groups.append(((word,), None))
        else:
            groups.append(_split_compound(word))
    return groups


def tokenize(text: str) -> list[str]:
    """The folded word tokens of ``text``, in order (joined forms not included)."""
    return [part for parts, _ in token_groups(fold(text)) for part in parts]


class _Derived:
    """Lookup tables built from a field's ``spans`` on first use, then kept."""

    __slots__ = ("keys", "pairs")

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.pairs: dict[str, list[Span]] | None = None


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """One text field of a document: folded text and where each word occurs.

    ``spans`` maps a token, or the joined form of a compound word, to its
    occurrences in increasing order. Treat it as read-only.
    """

    text: str
    spans: Mapping[str, Sequence[Span]]
    length: int
    _derived: _Derived = field(default_factory=_Derived, compare=False, repr=False)

    def with_prefix(self, prefix: str) -> list[Span]:
        """The spans of every word starting with ``prefix``."""
        keys = self._derived.keys
        if keys is None:
            keys = self._derived.keys = sorted(self.spans)
        found: list[Span] = []
        for k in range(bisect_left(keys, prefix), len(keys)):
            key = keys[k]
            if not key.startswith(prefix):
                break
            found.extend(self.spans[key])
        return found

    def pairs(self) -> Mapping[str, Sequence[Span]]:
        """Two adjacent words written as one, each at least two letters, with their spans.

        ``co operation`` gives ``cooperation``: a query word matches a text that
        splits it in two (see :class:`Unit`).
        """
        pairs = self._derived.pairs
        if pairs is None:
            pairs = self._derived.pairs = _adjacent_pairs(self.spans)
        return pairs


def _adjacent_pairs(spans: Mapping[str, Sequence[Span]]) -> dict[str, list[Span]]:
    starting: dict[int, list[tuple[str, int]]] = {}
    for key, found in spans.items():
        if len(key) >= 2:
            for start, end in found:
                starting.setdefault(start, []).append((key, end))
    pairs: dict[str, list[Span]] = {}
    for start, heads in starting.items():
        for head, end in heads:
            tails = starting.get(end + 1)
            if tails is not None:
                for tail, tail_end in tails:
                    pairs.setdefault(head + tail, []).append((start, tail_end))
    return pairs


def index_text(text: str) -> FieldIndex:
    """Fold and index one field."""
    folded = fold(text)
    spans: dict[str, list[Span]] = {}
    pos = 0
    for parts, joined in token_groups(folded):
        start = pos
        for part in parts:
            found = spans.get(part)
            if found is None:
                spans[part] = [(pos, pos)]
            else:
                found.append((pos, pos))
            pos += 1
        if joined is not None:
            spans.setdefault(joined, []).append((start, pos - 1))
    return FieldIndex(folded, spans, pos)


@dataclass(frozen=True, slots=True)
class Document:
    """Everything a query can look at in one entry, folded and indexed once."""

    title: FieldIndex
    summary: FieldIndex
    content: FieldIndex
    source: FieldIndex
    tags: tuple[str, ...]  # folded, spaces collapsed
    link: str  # folded; "" when the entry has no link
    host: str  # the link's host name, folded, no trailing dot; "" when unknown

    def field(self, name: str) -> FieldIndex:
        """The index of text field ``name`` (title, summary, content or source)."""
        if name not in _TEXT_FIELDS:
            raise KeyError(name)
        index: FieldIndex = getattr(self, name)
        return index


@lru_cache(maxsize=16384)
def fold_phrase(text: str) -> str:
    """Fold ``text`` and collapse runs of whitespace, for exact comparisons (tags)."""
    return " ".join(fold(text).split())


def _host(link: str | None) -> str:
    if not link:
        return ""
    try:
        host = urlsplit(link.strip()).hostname
    except ValueError:  # malformed, e.g. an unclosed IPv6 bracket
        return ""
    return fold(host).rstrip(".") if host else ""


def prepare_document(
    title: str,
    summary: str,
    *,
    content: str = "",
    source: str = "",
    tags: Sequence[str] = (),
    link: str | None = None,
) -> Document:
    """Fold and index one entry's fields so any number of queries can run on it."""
    return Document(
        title=index_text(title),
        summary=index_text(summary),
        content=index_text(content),
        source=index_text(source),
        tags=tuple(fold_phrase(t) for t in tags),
        link=fold(link) if link else "",
        host=_host(link),
    )


@dataclass(frozen=True, slots=True)
class Unit:
    """One word of a pattern; a compound word (``co-operation``) has several parts."""

    parts: tuple[str, ...]
    joined: str | None
    prefix: bool  # the last part (and the joined form) is a prefix
    # Ways to write a single word as two ("co operation" for "cooperation").
    splits: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Pattern:
    """A term or phrase compiled to words, matched against a :class:`FieldIndex`.

    ``key`` is the same for equal patterns (``Partner*`` and ``partner*``), so a
    :class:`SpanCache` can share one lookup between every query that uses it.
    """

    units: tuple[Unit, ...]
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", repr(self.units))

    def spans(self, index: FieldIndex) -> list[Span]:
        """Every occurrence of the pattern in ``index``, sorted."""
        if not self.units or not index.length:
            return []
        first = self.units[0]
        if len(self.units) == 1 and len(first.parts) == 1 and not first.prefix:
            # One plain word, by far the commonest pattern: the index has it sorted.
            found = index.spans.get(first.parts[0], ())
            if first.splits and (split := index.pairs().get(first.parts[0])):
                return sorted({*found, *split})
            return list(found)
        found = _unit_spans(first, index)
        for unit in self.units[1:]:
            if not found:
                return []
            found = _follow(found, _unit_spans(unit, index))
        return sorted(set(found))


@lru_cache(maxsize=16384)
def compile_pattern(text: str) -> Pattern:
    """Compile a term or phrase as written; a trailing ``*`` makes the last word a prefix.

    The text is folded and tokenised exactly like document text, so a term
    that is several tokens (``AI-safety``, ``安全研究所``) is a phrase.
    Patterns are immutable, so one is shared by every rule and list that
    spells the term the same way (a rule set compiles each list once per use).
    """
    stripped = text.strip()
    prefix = stripped.endswith("*")
    groups = token_groups(fold(stripped.rstrip("*")))
    units: list[Unit] = []
    for i, (parts, joined) in enumerate(groups):
        is_prefix = prefix and i == len(groups) - 1
        splits: tuple[tuple[str, str], ...] = ()
        if len(parts) == 1 and not is_prefix:
            word = parts[0]
            # Both halves at least two letters: "a greement" is not "agreement".
            splits = tuple((word[:k], word[k:]) for k in range(2, len(word) - 1))
        units.append(Unit(parts, joined, is_prefix, splits))
    return Pattern(tuple(units))


class SpanCache:
    """One document and the spans of every pattern looked up in it so far.

    Queries that share a term (the same ``@list`` in many rules) then look it
    up once per document. Create one per document; it is not thread-safe.
    """

    __slots__ = ("_memo", "doc")

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self._memo: dict[str, dict[str, list[Span]]] = {name: {} for name in _TEXT_FIELDS}

    def spans(self, pattern: Pattern, name: str) -> list[Span]:
        """``pattern.spans`` in text field ``name`` of the document, computed once."""
        memo = self._memo[name]
        found = memo.get(pattern.key)
        if found is None:
            index = self.doc.field(name)
            found = pattern.spans(index) if index.length else []
            memo[pattern.key] = found
        return found


def _follow(first: Sequence[Span], then: Sequence[Span]) -> list[Span]:
    """Spans of ``first`` immediately followed by one of ``then``, joined."""
    if not then:
        return []
    ends_by_start: dict[int, list[int]] = {}
    for start, end in then:
        ends_by_start.setdefault(start, []).append(end)
    return [(s, e2) for s, e in first for e2 in ends_by_start.get(e + 1, ())]


def _word_spans(unit: Unit, index: FieldIndex) -> list[Span]:
    found = list(index.spans.get(unit.parts[0], ()))
    if unit.splits:
        # Every way of writing the word as two (both halves in unit.splits).
        found.extend(index.pairs().get(unit.parts[0], ()))
    return found


def _unit_spans(unit: Unit, index: FieldIndex) -> list[Span]:
    spans = index.spans
    last = len(unit.parts) - 1
    if last == 0:
        if unit.prefix:
            return index.with_prefix(unit.parts[0])
        return _word_spans(unit, index)
    # A compound: its parts as a phrase ("co operation"), or its joined form.
    found: list[Span] = list(spans.get(unit.parts[0], ()))
    for i in range(1, last + 1):
        if not found:
            break
        part = unit.parts[i]
        after = index.with_prefix(part) if unit.prefix and i == last else spans.get(part, ())
        found = _follow(found, after)
    if unit.joined is not None:
        if unit.prefix:
            found.extend(index.with_prefix(unit.joined))
        else:
            found.extend(spans.get(unit.joined, ()))
    return found
