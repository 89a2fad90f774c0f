"""Who is party to an alert, and what kind of agreement it is: ``rules/parties.yaml``.

The gazetteer is a file the team edits. Each party has a display name, a kind
and the ways it is written (aliases, acronyms, former and native-language
names); each agreement kind has the terms that announce it::

    parties:
      - name: UK AI Security Institute
        kind: institute
        country: United Kingdom
        aliases: [AI Security Institute, UK AI Safety Institute]
        acronyms: [AISI, UK AISI]          # matched only when written in capitals
    agreements:
      - kind: memorandum of understanding
        terms: [memorandum of understanding, MoU, 覚書]

Matching reuses :mod:`monitor.textmatch`, so it is whole-word, case- and
accent-insensitive and works inside unspaced Japanese and Chinese text, like
rule queries. Pure: text in, names out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import line_of, load_yaml, unknown_keys
from monitor.errors import ConfigError, ConfigErrors
from monitor.textmatch import FieldIndex, Pattern, compile_pattern, index_text

PARTIES_FILE = "parties.yaml"
KINDS = frozenset(
    {
        "institute",
        "country",
        "bloc",
        "government",
        "regulator",
        "lab",
        "network",
        "industry-body",
        "research-body",
    }
)
MULTILATERAL = frozenset({"network", "industry-body"})
_PARTY_KEYS = {"name", "kind", "country", "aliases", "acronyms", "former", "native"}
_AGREEMENT_KEYS = {"kind", "terms", "generic"}


@dataclass(frozen=True, slots=True)
class Party:
    """One entry of the gazetteer."""

    name: str  # shown in alerts
    kind: str
    country: str | None = None  # the country (or bloc) an institute or ministry belongs to
    names: tuple[str, ...] = ()  # every alias, former and native name (matched folded)
    acronyms: tuple[str, ...] = ()  # matched folded, but only if written in capitals somewhere


@dataclass(frozen=True, slots=True)
class AgreementKind:
    """One kind of agreement and the terms that announce it."""

    kind: str
    terms: tuple[str, ...]
    generic: bool = False  # a catch-all ("cooperation"): compatible with any other kind


@dataclass(frozen=True, slots=True)
class _Matcher:
    party: int
    pattern: Pattern
    case_check: re.Pattern[str] | None  # acronyms: the raw text must contain this


@dataclass(frozen=True)
class Gazetteer:
    """Parties and agreement kinds, compiled. ``find`` and ``agreement`` are pure."""

    parties: tuple[Party, ...] = ()
    agreements: tuple[AgreementKind, ...] = ()
    path: Path | None = None
    _matchers: tuple[_Matcher, ...] = field(init=False, repr=False, compare=False)
    _terms: tuple[tuple[int, Pattern], ...] = field(init=False, repr=False, compare=False)
    _by_name: Mapping[str, Party] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        matchers: list[_Matcher] = []
        for i, party in enumerate(self.parties):
            for name in party.names:
                matchers.append(_Matcher(i, compile_pattern(name), None))
            for acronym in party.acronyms:
                matchers.append(_Matcher(i, compile_pattern(acronym), _acronym_regex(acronym)))
        terms = [(i, compile_pattern(t)) for i, a in enumerate(self.agreements) for t in a.terms]
        object.__setattr__(self, "_matchers", tuple(m for m in matchers if m.pattern.units))
        object.__setattr__(self, "_terms", tuple(t for t in terms if t[1].units))
        object.__setattr__(self, "_by_name", {p.name: p for p in self.parties})

    def find(self, title: str, summary: str) -> tuple[str, ...]:
        """Canonical names of the parties named in ``title`` and ``summary``, first mention first.

        Where two names overlap the longer wins: "UK AI Security Institute" is
        the institute, not also the country "UK".
        """
        fields = _fields(title, summary)
        raw = f"{title}\n{summary}"
        found: list[tuple[int, int, int]] = []  # (start, end, party) in one position space
        for m in self._matchers:
            if m.case_check is not None and not m.case_check.search(raw):
                continue
            for offset, index in fields:
                found.extend((offset + s, offset + e, m.party) for s, e in m.pattern.spans(index))
        taken: list[tuple[int, int]] = []
        first: dict[int, int] = {}
        # Longest first, then earliest: a deterministic, greedy choice of non-overlapping names.
        for start, end, party in sorted(found, key=lambda f: (f[0] - f[1], f[0], f[2])):
            if any(start <= e and s <= end for s, e in taken):
                continue
            taken.append((start, end))
            if party not in first or start < first[party]:
                first[party] = start
        order = sorted(first, key=lambda p: (first[p], p))
        return tuple(self.parties[p].name for p in order)

    def agreement(self, title: str, summary: str) -> str | None:
        """The first agreement kind (in file order) whose terms occur in the text, or None."""
        kinds = self.agreements_in(title, summary)
        return kinds[0] if kinds else None

    def agreements_in(self, title: str, summary: str) -> tuple[str, ...]:
        """Every agreement kind whose terms occur in the text, in file order."""
        fields = _fields(title, summary)
        found: set[int] = set()
        for kind, pattern in self._terms:
            if kind not in found and any(pattern.spans(index) for _, index in fields):
                found.add(kind)
        return tuple(self.agreements[k].kind for k in sorted(found))

    def is_generic(self, kind: str | None) -> bool:
        """True for no kind or a catch-all kind: compatible with any other."""
        if kind is None:
            return True
        return any(a.kind == kind and a.generic for a in self.agreements)

    def is_multilateral(self, name: str) -> bool:
        """True for networks and industry bodies: one of them can stand for a whole story."""
        party = self._by_name.get(name)
        return party is not None and party.kind in MULTILATERAL

    def principal(self, name: str) -> str:
        """Who a party stands for when comparing stories: an institute's country, else itself."""
        party = self._by_name.get(name)
        if party is None:
            return name
        return party.country or party.name

    def party(self, name: str) -> Party | None:
        """The gazetteer entry with this display name."""
        return self._by_name.get(name)


def _fields(title: str, summary: str) -> list[tuple[int, FieldIndex]]:
    t = index_text(title)
    # The summary's positions follow the title's (+1 so nothing spans the boundary).
    return [(0, t), (t.length + 1, index_text(summary))]


def _acronym_regex(acronym: str) -> re.Pattern[str]:
    """Case-sensitive, whole word; dots between letters optional ("US" finds "U.S.")."""
    parts: list[str] = []
    for ch in acronym.strip():
        if ch.isalnum():
            parts.append(re.escape(ch) + r"\.?")
        elif ch.isspace():
            parts.append(r"\s+")
        elif ch != ".":
            parts.append(re.escape(ch))
    return re.compile(r"(?<!\w)" + "".join(parts) + r"(?!\w)")


def load_parties(path: Path) -> Gazetteer:
    """Load and validate a parties file. Raises :class:`ConfigErrors` (file, line, reason)."""
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from exc
    errors: list[ConfigError] = []
    if data is None:
        return Gazetteer(path=path)
    if not isinstance(data, Mapping):
        raise ConfigErrors(
            [ConfigError("expected a mapping with 'parties:' and 'agreements:'", file=path)]
        )
    extra = unknown_keys(data, {"parties", "agreements"})
    if extra:
        errors.append(
            ConfigError(
                f"unknown top-level key(s) {', '.join(extra)}; expected 'parties' and 'agreements'",
                file=path,
            )
        )
    parties = _parties(data.get("parties") or [], path, errors)
    agreements = _agreements(data.get("agreements") or [], path, errors)
    if errors:
        raise ConfigErrors(errors)
    return Gazetteer(tuple(parties), tuple(agreements), path)


def _strings(value: object, what: str, fail: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise fail(f"{what} must be a list of names")
    out = tuple(str(v).strip() for v in value)
    if any(not v for v in out):
        raise fail(f"{what} has an empty name")
    return out


def _parties(items: object, path: Path, errors: list[ConfigError]) -> list[Party]:
    if not isinstance(items, list):
        errors.append(ConfigError("'parties:' must be a list", file=path))
        return []
    out: list[Party] = []
    seen: dict[str, int | None] = {}
    for n, item in enumerate(items, start=1):
        line = line_of(item)
        if not isinstance(item, Mapping):
            errors.append(ConfigError(f"party #{n} must be a mapping with a name", file=path))
            continue
        name = str(item.get("name") or "").strip()

        label = name or f"#{n}"

        def fail(reason: str, label: str = label, line: int | None = line) -> ConfigError:
            return ConfigError(f"party {label!r}: {reason}", file=path, line=line)

        try:
            if not name:
                raise fail("needs a 'name'")
            if name in seen:
                raise fail(f"defined twice (also on line {seen[name]})")
            extra = unknown_keys(item, _PARTY_KEYS)
            if extra:
                raise fail(
                    f"unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(_PARTY_KEYS))}"
                )
            kind = str(item.get("kind") or "").strip()
            if kind not in KINDS:
                raise fail(f"kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
            country = item.get("country")
            if country is not None and (not isinstance(country, str) or not country.strip()):
                raise fail("country must be the name of a country party")
            names = (
                name,
                *_strings(item.get("aliases"), "aliases", fail),
                *_strings(item.get("former"), "former", fail),
                *_strings(item.get("native"), "native", fail),
            )
            acronyms = _strings(item.get("acronyms"), "acronyms", fail)
        except ConfigError as exc:
            errors.append(exc)
            continue
        seen[name] = line
        out.append(
            Party(
                name, kind, country.strip() if isinstance(country, str) else None, names, acronyms
            )
        )
    known = {p.name for p in out}
    for party in out:
        if party.country is not None and party.country not in known:
            errors.append(
                ConfigError(
                    f"party {party.name!r}: country {party.country!r} is not a party in this file",
                    file=path,
                    line=seen.get(party.name),
                )
            )
    return out


def _agreements(items: object, path: Path, errors: list[ConfigError]) -> list[AgreementKind]:
    if not isinstance(items, list):
        errors.append(ConfigError("'agreements:' must be a list", file=path))
        return []
    out: list[AgreementKind] = []
    for n, item in enumerate(items, start=1):
        line = line_of(item)
        if not isinstance(item, Mapping):
            errors.append(ConfigError(f"agreement #{n} must have 'kind' and 'terms'", file=path))
            continue
        kind = str(item.get("kind") or "").strip()

        label = kind or f"#{n}"

        def fail(reason: str, label: str = label, line: int | None = line) -> ConfigError:
            return ConfigError(f"agreement {label!r}: {reason}", file=path, line=line)

        try:
            if not kind:
                raise fail("needs a 'kind'")
            extra = unknown_keys(item, _AGREEMENT_KEYS)
            if extra:
                raise fail(f"unknown key(s) {', '.join(extra)}; known: generic, kind, terms")
            terms = _strings(item.get("terms"), "terms", fail)
            if not terms:
                raise fail("needs at least one term")
            generic = item.get("generic", False)
            if not isinstance(generic, bool):
                raise fail("generic must be true or false")
        except ConfigError as exc:
            errors.append(exc)
            continue
        out.append(AgreementKind(kind, terms, generic))
    return out


def describe_parties(names: Sequence[str], limit: int = 8) -> str:
    """``A · B · C`` (and "+N more" beyond ``limit``), for messages."""
    shown = " · ".join(names[:limit])
    if len(names) > limit:
        shown += f" · +{len(names) - limit} more"
    return shown
