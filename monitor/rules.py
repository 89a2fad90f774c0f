"""Rule files: named queries compiled once at load, matched against entries.

Every ``rules/*.yaml`` except ``feeds.yaml`` is a rule file::

    lists:                 # term lists shared by all rule files, used as @name
      partnership_words: [partner*, memorandum of understanding, MoU]
    rules:
      - name: institute-partnerships
        description: Safety institutes agreeing to work together.
        query: '@safety_bodies NEAR/20 @partnership_words'
        tags: [government]        # optional: only feeds with one of these tags
        channel: "#ai-safety"     # optional: overrides SLACK_CHANNEL
        examples:                 # optional: checked by `monitor check`
          match: ["UK and Canada AI safety institutes sign partnership"]
          no_match: ["AI Safety Institute appoints new director"]
        min_score: 0.5            # optional: alert only if the scorer agrees this much

Matching is pure: ``RuleSet.match`` takes an entry and returns the matches.
A rule with ``min_score`` counts only when the second-stage model
(:mod:`monitor.scorer`) gives the entry at least that probability.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from monitor.config import FEEDS_FILE, line_of, load_yaml, unknown_keys
from monitor.errors import ConfigError, ConfigErrors, QuerySyntaxError
from monitor.matcher import RuleMatcher
from monitor.models import Entry, RuleMatch
from monitor.query import CompiledQuery, compile_query, validate_list_item
from monitor.routing import ROUTING_KEYS, Routing, parse_routing
from monitor.scorer import Scorer, load_scorer
from monitor.textmatch import prepare_document

_RULE_KEYS = {
    "name",
    "description",
    "query",
    "tags",
    "enabled",
    "examples",
    "min_score",
} | ROUTING_KEYS
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LIST_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RESERVED_FILES = {FEEDS_FILE, "parties.yaml"}


@dataclass(frozen=True, slots=True)
class Example:
    """A text a rule must (or must not) match, checked by ``monitor check``."""

    title: str
    summary: str = ""
    should_match: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    name: str
    query: CompiledQuery
    file: Path
    description: str = ""
    tags: tuple[str, ...] = ()
    channel: str | None = None
    routing: Routing = field(default_factory=Routing)
    examples: tuple[Example, ...] = ()
    min_score: float | None = None  # second-stage threshold; None: the query decides alone

    def admits(self, score: float | None) -> bool:
        """True unless the rule has a ``min_score`` that ``score`` (None: not computed)
        does not reach."""
        return self.min_score is None or (score is not None and score >= self.min_score)

    def applies_to(self, source_tags: Iterable[str]) -> bool:
        """False when the rule is limited to tags the source does not carry."""
        return not self.tags or bool(set(self.tags) & set(source_tags))


@dataclass(frozen=True)
class RuleSet:
    """Every enabled rule, in file then file order, and the shared term lists.

    Matching goes through one :class:`RuleMatcher` for all rules, so the cost
    per entry grows far slower than the number of rules.
    """

    rules: tuple[Rule, ...]
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    _applicable: dict[frozenset[str], frozenset[int]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    @cached_property
    def _matcher(self) -> RuleMatcher:
        # Built on the first entry to match, not at load: queries are already checked by then,
        # and a cycle where nothing changed (every feed 304) never needs it (~30 ms at 8 rules).
        return RuleMatcher([r.query for r in self.rules])

    def _rules_for(self, tags: frozenset[str]) -> frozenset[int]:
        # Cached per distinct tag set: there are few, and 1,000 rules x every entry adds up.
        found = self._applicable.get(tags)
        if found is None:
            found = frozenset(i for i, r in enumerate(self.rules) if r.applies_to(tags))
            self._applicable[tags] = found
        return found

    def match(self, entry: Entry) -> list[RuleMatch]:
        """The rules ``entry`` matches, with the terms that fired, in rule order."""
        only = self._rules_for(frozenset(entry.tags))
        if not only:
            return []
        doc = prepare_document(
            entry.title,
            entry.summary,
            source=entry.source,
            tags=(*entry.tags, *entry.categories),
            link=entry.link,
        )
        found = [(self.rules[i], terms) for i, terms in self._matcher.match(doc, only)]
        score = self.score_if_gated([r for r, _ in found], entry.title, entry.summary)
        return [
            RuleMatch(
                rule.name,
                terms,
                rule.channel,
                rule.routing,
                score if rule.min_score is not None else None,
            )
            for rule, terms in found
            if rule.admits(score)
        ]

    @property
    def scorer(self) -> Scorer:
        """The second-stage model (loaded on first use)."""
        return load_scorer()

    def score_if_gated(self, rules: Iterable[Rule], title: str, summary: str) -> float | None:
        """The scorer's probability for this text if any of ``rules`` has a ``min_score``."""
        if any(rule.min_score is not None for rule in rules):
            return self.scorer.score(title, summary)
        return None

    def check_examples(self) -> list[ConfigError]:
        """Every example that does not behave as its rule says, as errors."""
        errors: list[ConfigError] = []
        for rule in self.rules:
            for ex in rule.examples:
                doc = prepare_document(ex.title, ex.summary)
                matched = rule.query.match(doc) is not None and rule.admits(
                    self.score_if_gated([rule], ex.title, ex.summary)
                )
                if matched != ex.should_match:
                    verb = (
                        "should match but does not"
                        if ex.should_match
                        else "should not match but does"
                    )
                    errors.append(
                        ConfigError(f"example {verb}: {ex.title!r}", file=rule.file, rule=rule.name)
                    )
        return errors


def rule_files(rules_dir: Path) -> list[Path]:
    """The rule files in ``rules_dir``, sorted by name."""
    files = [*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")]
    return sorted(p for p in files if p.name not in RESERVED_FILES)


def load_rules(rules_dir: Path, *, known_tags: set[str] | None = None) -> RuleSet:
    """Load, validate and compile every rule file in ``rules_dir``.

    Raises ConfigErrors listing every problem found (file, rule, reason).
    ``known_tags``, when given, makes a rule tag no feed carries an error.
    """
    if not rules_dir.is_dir():
        raise ConfigErrors([ConfigError("rules directory not found", file=rules_dir)])
    files = rule_files(rules_dir)
    if not files:
        raise ConfigErrors(
            [ConfigError("no rule files (*.yaml besides feeds.yaml) found", file=rules_dir)]
        )
    errors: list[ConfigError] = []
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for path in files:
        try:
            data = load_yaml(path)
        except ConfigError as exc:
            errors.append(exc)
            continue
        if data is None:
            continue  # an empty file is allowed: a placeholder with comments
        if not isinstance(data, Mapping):
            errors.append(
                ConfigError("expected a mapping with 'rules:' and/or 'lists:'", file=path)
            )
            continue
        extra = unknown_keys(data, {"rules", "lists"})
        if extra:
            errors.append(
                ConfigError(
                    f"unknown top-level key(s) {', '.join(extra)}; expected 'rules' and 'lists'",
                    file=path,
                )
            )
        documents.append((path, data))

    lists = _collect_lists(documents, errors)
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for path, data in documents:
        items = data.get("rules", [])
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(ConfigError("'rules:' must be a list", file=path))
            continue
        for index, item in enumerate(items, start=1):
            try:
                rule, enabled = _rule(item, index, path, lists, known_tags)
            except ConfigError as exc:
                errors.append(exc)
                continue
            if rule.name in seen:
                errors.append(
                    ConfigError(
                        f"duplicate rule name (also in {seen[rule.name]})",
                        file=path,
                        rule=rule.name,
                        line=line_of(item),
                    )
                )
                continue
            seen[rule.name] = path
            if enabled:
                rules.append(rule)
    if errors:
        raise ConfigErrors(errors)
    if not rules:
        raise ConfigErrors([ConfigError("no enabled rules found", file=rules_dir)])
    return RuleSet(tuple(rules), lists, tuple(files))


def _collect_lists(
    documents: Sequence[tuple[Path, Mapping[str, Any]]], errors: list[ConfigError]
) -> dict[str, tuple[str, ...]]:
    lists: dict[str, tuple[str, ...]] = {}
    origin: dict[str, Path] = {}
    for path, data in documents:
        raw = data.get("lists") or {}
        if not isinstance(raw, Mapping):
            errors.append(ConfigError("'lists:' must map list names to lists of terms", file=path))
            continue
        for name, items in raw.items():
            if name == "__line__":
                continue
            where = f"list '{name}': "
            if not isinstance(name, str) or not _LIST_NAME.match(name):
                errors.append(
                    ConfigError(f"{where}names are letters, digits, '_' or '-'", file=path)
                )
                continue
            if name in lists:
                errors.append(
                    ConfigError(f"{where}defined twice (also in {origin[name]})", file=path)
                )
                continue
            if not isinstance(items, list) or not items:
                errors.append(ConfigError(f"{where}must be a non-empty list of terms", file=path))
                continue
            terms: list[str] = []
            for term in items:
                text = str(term).strip()
                try:
                    validate_list_item(text)
                except QuerySyntaxError as exc:
                    errors.append(ConfigError(f"{where}item {text!r}: {exc}", file=path))
                    continue
                terms.append(text)
            lists[name] = tuple(terms)
            origin[name] = path
    return lists


def _rule(
    item: object,
    index: int,
    path: Path,
    lists: Mapping[str, Sequence[str]],
    known_tags: set[str] | None,
) -> tuple[Rule, bool]:
    if not isinstance(item, Mapping):
        raise ConfigError(f"rule #{index} must be a mapping with name and query", file=path)
    line = line_of(item)
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise ConfigError(
            f"rule #{index} needs a 'name' of lower-case letters, digits, '-' "
            f"or '_' (got {name!r})",
            file=path,
            line=line,
        )
    name = name.strip()

    def fail(reason: str) -> ConfigError:
        return ConfigError(reason, file=path, rule=name, line=line)

    extra = unknown_keys(item, _RULE_KEYS)
    if extra:
        raise fail(
            f"unknown key(s) {', '.join(extra)}; known keys: {', '.join(sorted(_RULE_KEYS))}"
        )
    text = item.get("query")
    if not isinstance(text, str) or not text.strip():
        raise fail("needs a 'query'")
    try:
        query = compile_query(text, lists)
    except QuerySyntaxError as exc:
        raise fail(f"query syntax error: {exc}") from exc
    tags = _tags(item.get("tags", []), fail)
    if known_tags is not None:
        unknown = [t for t in tags if t not in known_tags]
        if unknown:
            raise fail(
                f"tag(s) {', '.join(unknown)} are not used by any feed in feeds.yaml; "
                f"known tags: {', '.join(sorted(known_tags)) or '(none)'}"
            )
    routing = parse_routing(item, fail)
    enabled = item.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled must be true or false")
    min_score = item.get("min_score")
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, int | float)
        or not 0 <= min_score <= 1
    ):
        raise fail(f"min_score must be a number from 0 to 1 (got {min_score!r})")
    rule = Rule(
        name=name,
        query=query,
        file=path,
        description=str(item.get("description") or ""),
        tags=tags,
        channel=routing.channel,
        examples=_examples(item.get("examples"), fail),
        routing=routing,
        min_score=float(min_score) if min_score is not None else None,
    )
    return rule, enabled


def _tags(value: object, fail: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fail("tags must be a list, e.g. [government]")
    return tuple(str(t).strip().lower() for t in value)


def _examples(value: object, fail: Any) -> tuple[Example, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise fail("examples must have 'match:' and/or 'no_match:' lists")
    extra = unknown_keys(value, {"match", "no_match"})
    if extra:
        raise fail(f"examples: unknown key(s) {', '.join(extra)}; use match and no_match")
    out: list[Example] = []
    for key, should in (("match", True), ("no_match", False)):
        items = value.get(key) or []
        if not isinstance(items, list):
            raise fail(f"examples: {key} must be a list")
        for ex in items:
            if isinstance(ex, Mapping):
                out.append(Example(str(ex.get("title", "")), str(ex.get("summary", "")), should))
            else:
                out.append(Example(str(ex), "", should))
    return tuple(out)
