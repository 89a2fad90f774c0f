"""How matching cost per entry grows with the number of rules.

Usage::

    .venv/bin/python bench/eval_rules.py            # (quality: a different script)
    .venv/bin/python bench/bench_matching.py [--entries 2000] [--seed 7] [--repeat 3]

Generates 1,000 rules of the shapes real rule files use (term lists, phrases,
prefixes, ``@lists``, ``NEAR``/``ONEAR``, ``NOT``, ``title:``), each with its
own subject vocabulary, and about 2,000 news-like entries drawn from the same
vocabularies, so each rule matches a few entries. For the first 10, 100 and
1,000 rules it prints entries per second:

- ``matcher``: :class:`monitor.matcher.RuleMatcher` (anchors + shared lookups);
- ``naive``: every query's ``match()`` in turn (how RuleSet matched before);

each both end to end (folding and indexing the entry included, as
``RuleSet.match`` does) and for matching alone (documents prepared once).
It checks that both give identical results, and ends with the ratio of the
per-entry cost at 1,000 rules to that at 10. Timings are the best of
``--repeat`` runs (the naive 1,000-rule run is timed once: it is slow).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: find the monitor package
    sys.path.insert(0, str(ROOT))

from monitor.matcher import RuleMatcher  # noqa: E402
from monitor.query import CompiledQuery, compile_query  # noqa: E402
from monitor.textmatch import Document, prepare_document  # noqa: E402

RULE_COUNTS = (10, 100, 1000)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


COUNTRIES = _split(
    "UK US Canada France Germany Japan Korea India Singapore Australia Kenya Brazil Italy "
    "Spain Netherlands Sweden Norway Finland Denmark Ireland Poland Estonia Israel Mexico "
    "Chile Argentina Nigeria Ghana Rwanda Indonesia Vietnam Thailand Philippines Malaysia "
    "Taiwan Switzerland Austria Belgium Portugal Greece Turkey Egypt Morocco"
)
ORGS = _split(
    "OpenAI Anthropic DeepMind Google Microsoft Meta Amazon Cohere Mistral Nvidia IBM Intel "
    "NIST AISI CAISI OECD UNESCO NATO ITU IEEE Europol Interpol"
)
ACTIONS = (
    *_split(
        "partner* memorandum MoU agreement collaborat* cooperat* sign* joint alliance "
        "consortium network pact accord treaty framework initiative programme launch* "
        "establish* commit* pledge* declaration statement evaluat* fund*"
    ),
    '"work together"',
    '"joint research"',
    '"testing agreement"',
    '"safety research"',
)
EXCLUSIONS = _split(
    "appoint* resign* opinion lawsuit sue* fined layoff* earnings podcast review rumor* "
    "hire* depart* budget tariff*"
)
FILLER = _split(
    "the a of and to in for on with by at from as its their new said says today week "
    "government minister ministry department officials announced plans report after "
    "ai artificial intelligence safety security model models frontier research testing "
    "standards institute technology digital data risk risks global international "
    "national public sector companies industry experts leaders summit talks policy "
    "regulation rules law bill chips compute cloud systems tools launch support"
)
_SYLLABLES = _split(
    "ka to ri mo na sel vor tan qui zel bra dor fen gal hest ist jor kul lam mer nov "
    "pra rud sat tel urb vex wil yar zon ber cal dex"
)


def _pseudo_words(rng: random.Random, count: int) -> list[str]:
    """Made-up proper nouns: the long tail of names real feeds are full of."""
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass(frozen=True)
class Corpus:
    """Generated rules (queries with their lists) and entry texts."""

    queries: list[str]
    lists: dict[str, list[str]]
    entries: list[tuple[str, str]]  # (title, summary)


def _quoted(words: Sequence[str]) -> str:
    return f'"{" ".join(words)}"'


def generate(rng: random.Random, rules: int, entries: int) -> Corpus:
    """Rules with their own subject vocabularies, and entries that mention some of them."""
    subjects = [*COUNTRIES, *ORGS, *_pseudo_words(rng, 3000)]
    lists: dict[str, list[str]] = {}
    queries: list[str] = []
    for k in range(rules):
        own = rng.sample(subjects, 6)
        acts = " OR ".join(rng.sample(ACTIONS, rng.randint(2, 5)))
        excl = " OR ".join(rng.sample(EXCLUSIONS, rng.randint(1, 3)))
        shape = k % 5
        if shape == 0:
            subj = f"{own[0]} OR {own[1]} OR {_quoted(own[2:4])}"
            queries.append(f"({subj}) NEAR/10 ({acts}) AND NOT ({excl})")
        elif shape == 1:
            queries.append(
                f"title:({own[0]} OR {own[1]} OR {own[2]}) AND ({acts}) -{excl.split()[0]}"
            )
        elif shape == 2:
            name = f"bodies_{k}"
            lists[name] = [*own[:4], f"{own[4]} {own[5]}", f"{own[5]}*"]
            queries.append(f"@{name} ONEAR/8 ({acts})")
        elif shape == 3:
            queries.append(f"{_quoted(own[:2])} AND ({acts}) AND NOT ({excl})")
        else:
            queries.append(f"({own[0]} OR {own[1]}) AND ({own[2]} OR {own[3]}*) AND safety")
    texts = []
    for _ in range(entries):
        texts.append((_sentence(rng, subjects, 12), _sentence(rng, subjects, 45)))
    return Corpus(queries, lists, texts)


def _sentence(rng: random.Random, subjects: Sequence[str], length: int) -> str:
    words: list[str] = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.12:
            words.append(rng.choice(subjects))
        elif roll < 0.22:
            act = rng.choice(ACTIONS).strip('"').rstrip("*")
            words.append(act + rng.choice(("", "s", "ed", "ship", "ing")))
        elif roll < 0.25:
            words.append(rng.choice(EXCLUSIONS).rstrip("*") + rng.choice(("", "s", "ed")))
        else:
            words.append(rng.choice(FILLER))
    return " ".join(w for w in words if w).capitalize() + "."


def _best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of ``repeat`` timed runs of ``run`` (NaN when ``repeat`` is 0)."""
    best = float("inf") if repeat else float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true", help="time the matcher only")
    args = parser.parse_args(argv)

    corpus = generate(random.Random(args.seed), max(RULE_COUNTS), args.entries)
    compiled = [compile_query(q, corpus.lists) for q in corpus.queries]
    texts = corpus.entries
    docs = [prepare_document(title, summary) for title, summary in texts]
    n = len(texts)

    print(f"{n} entries, rules of 5 shapes, seed {args.seed}; entries/second (higher is better)")
    header = (
        f"{'rules':>6} {'matcher e2e':>12} {'naive e2e':>10} {'matcher only':>13} "
        f"{'naive only':>11} {'cands/entry':>12} {'hits/entry':>11}"
    )
    print(header)
    per_entry: dict[int, tuple[float, float]] = {}
    for count in RULE_COUNTS:
        queries = compiled[:count]
        matcher = RuleMatcher(queries)

        def naive(
            prepared: Sequence[Document], qs: Sequence[CompiledQuery] = queries
        ) -> list[list[tuple[int, tuple[str, ...]]]]:
            return [
                [(i, t) for i, q in enumerate(qs) if (t := q.match(d)) is not None]
                for d in prepared
            ]

        fast = [matcher.match(d) for d in docs]
        if fast != naive(docs):
            print(f"MISMATCH at {count} rules: RuleMatcher differs from query.match()")
            return 1
        naive_repeat = 0 if args.skip_naive else 1 if count >= 1000 else args.repeat
        t_fast = _best_of(args.repeat, lambda m=matcher: [m.match(d) for d in docs])
        t_naive = _best_of(naive_repeat, lambda: naive(docs))
        t_prep = _best_of(args.repeat, lambda: [prepare_document(t, s) for t, s in texts])
        cands = sum(len(matcher.candidates(d)) for d in docs) / n
        hits = sum(len(f) for f in fast) / n
        per_entry[count] = ((t_prep + t_fast) / n, t_fast / n)
        print(
            f"{count:>6} {n / (t_prep + t_fast):>12,.0f} {n / (t_prep + t_naive):>10,.0f} "
            f"{n / t_fast:>13,.0f} {n / t_naive:>11,.0f} {cands:>12.1f} {hits:>11.2f}"
        )
    lo, hi = min(RULE_COUNTS), max(RULE_COUNTS)
    print(
        f"cost per entry, {hi} rules / {lo} rules: end to end "
        f"{per_entry[hi][0] / per_entry[lo][0]:.2f}x, matching only "
        f"{per_entry[hi][1] / per_entry[lo][1]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
