"""Second stage: a small linear text model that scores entries a rule matched.

Rules decide *what* can alert and say why (the rule and the terms that
fired); a rule with ``min_score`` alerts only when this model agrees enough.
That lets one broad rule cast a wide net (a safety topic and a cooperation
word anywhere) while the model keeps its precision, and lets the precise
rules drop what the model finds very unlikely.

The model is logistic regression over binary features: the folded word
tokens of title and summary (tokenised exactly like rule matching, so
Japanese and Chinese work too), adjacent token pairs, and title tokens marked
``T:``. It is trained by ``bench/train_scorer.py`` on the labelled set and
shipped as JSON next to this module (``data/scorer.json``): no library at run
time, a few tens of microseconds per entry, offline, deterministic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.textmatch import tokenize

FEATURE_VERSION = 1
TITLE_MARK = "T:"


def features(title: str, summary: str) -> frozenset[str]:
    """The model's features of one entry (version :data:`FEATURE_VERSION`)."""
    words = tokenize(f"{title} \n {summary}")
    pairs = {f"{a}_{b}" for a, b in pairwise(words)}
    return frozenset({*words, *pairs, *(TITLE_MARK + w for w in tokenize(title))})


@dataclass(frozen=True)
class Scorer:
    """Weights of a linear model; :meth:`score` is the probability an entry is wanted."""

    weights: Mapping[str, float]
    bias: float
    meta: Mapping[str, Any] = field(default_factory=dict)

    def score(self, title: str, summary: str) -> float:
        """Probability (0..1) that the entry is a partnership the team wants."""
        total = self.bias + sum(self.weights.get(f, 0.0) for f in features(title, summary))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, total))))

    def reasons(self, title: str, summary: str, top: int = 6) -> list[tuple[str, float]]:
        """The features that moved the score most, strongest first (for ``monitor explain``)."""
        found = [(f, w) for f in features(title, summary) if (w := self.weights.get(f, 0.0))]
        return sorted(found, key=lambda fw: (-abs(fw[1]), fw[0]))[:top]


def parse_scorer(data: object, source: str) -> Scorer:
    """A :class:`Scorer` from the JSON document ``data``; ConfigError naming ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object")
    version = data.get("feature_version")
    if version != FEATURE_VERSION:
        raise ConfigError(
            f"{source}: made for feature version {version!r}, this monitor uses "
            f"{FEATURE_VERSION}; retrain it with bench/train_scorer.py"
        )
    weights, bias = data.get("weights"), data.get("bias")
    if not isinstance(weights, dict) or not isinstance(bias, int | float):
        raise ConfigError(f"{source}: needs 'weights' (an object) and 'bias' (a number)")
    clean: dict[str, float] = {}
    for name, value in weights.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{source}: weight of {name!r} is not a finite number")
        clean[str(name)] = float(value)
    meta = data.get("meta")
    return Scorer(clean, float(bias), meta if isinstance(meta, dict) else {})


def load_scorer(path: Path | None = None) -> Scorer:
    """The model at ``path``, or the one shipped with the monitor."""
    if path is None:
        return _shipped()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the scorer model: {exc}") from exc
    return parse_scorer(data, str(path))


@cache
def _shipped() -> Scorer:
    text = resources.files("monitor").joinpath("data/scorer.json").read_text(encoding="utf-8")
    return parse_scorer(json.loads(text), "monitor/data/scorer.json")
