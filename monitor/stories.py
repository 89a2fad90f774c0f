"""Story clustering: does a new alert belong to a story already told, and why.

Pure and deterministic: the new entry's :class:`Features` and the open
stories (with their members' features) in, a :class:`Decision` with a
sentence a person can read out. The store calls :func:`assign` inside the
poll's transaction, where concurrent polls meet.

A new entry joins a story (the first rule that holds, in this order):

1. **link** — a member has the same canonical link (the same article);
2. **text** — its title and summary are a near-duplicate of a member's:
   the Jaccard similarity of their word 3-shingles (estimated with a bottom-k
   MinHash sketch, exact for texts under ``SKETCH_SIZE`` shingles) reaches
   ``text_threshold``, and the two do not name conflicting parties (each
   naming a side the other does not) unless the texts are almost the same
   (``copy_threshold``: syndicated copies);
3. **parties** — it names the same parties as a member (at least two sides in
   common, covering ``party_overlap`` of the shorter list; an institute counts
   as its country) with a compatible kind of agreement (the same, or one of
   them generic/unknown).

Only stories whose first report was published within ``window`` of the new
entry are open to it, so two memoranda by the same institute a month apart
stay two stories. Ties go to the strongest rule, then the higher score, then
the older story.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.parties import Gazetteer
from monitor.textmatch import tokenize

SKETCH_SIZE = 128  # bottom-k MinHash: texts with fewer shingles are compared exactly
SHINGLE = 3  # words per shingle
_RULE_RANK = {"link": 0, "text": 1, "parties": 2}


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """The knobs of clustering, tuned on ``tests/data/stories.yaml``."""

    window: timedelta = timedelta(days=7)
    text_threshold: float = 0.4
    copy_threshold: float = 0.9
    party_overlap: float = 2 / 3


@dataclass(frozen=True, slots=True)
class Features:
    """What clustering looks at in one entry."""

    link: str | None
    published: datetime
    parties: tuple[str, ...] = ()  # display names, first mention first
    principals: tuple[str, ...] = ()  # sides compared between stories (institute -> country)
    bodies: tuple[str, ...] = ()  # multilateral parties named (networks, industry bodies)
    agreement: str | None = None  # the first kind named (shown in the message)
    kinds: tuple[str, ...] = ()  # every specific (not generic) kind named
    sketch: tuple[int, ...] = ()  # the smallest shingle hashes, sorted

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the store (``published`` is kept by the store itself)."""
        return {
            "link": self.link,
            "parties": list(self.parties),
            "principals": list(self.principals),
            "bodies": list(self.bodies),
            "agreement": self.agreement,
            "kinds": list(self.kinds),
            "sketch": list(self.sketch),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], published: datetime) -> Features:
        """Inverse of :meth:`to_json`."""
        return cls(
            link=data.get("link"),
            published=published,
            parties=tuple(data.get("parties") or ()),
            principals=tuple(data.get("principals") or ()),
            bodies=tuple(data.get("bodies") or ()),
            agreement=data.get("agreement"),
            kinds=tuple(data.get("kinds") or ()),
            sketch=tuple(int(x) for x in data.get("sketch") or ()),
        )


@dataclass(frozen=True, slots=True)
class Member:
    """One entry already in a story."""

    alert_id: int | None  # None for an entry folded in without a message (same link)
    source: str
    title: str
    features: Features


@dataclass(frozen=True, slots=True)
class OpenStory:
    """A story a new entry may join."""

    id: int
    started: datetime  # the earliest ``published`` among its members
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a new entry goes, and why (for ``monitor explain`` and the log)."""

    story: int | None  # None: it starts a new story
    rule: str  # "link" | "text" | "parties" | "new"
    reason: str
    score: float = 0.0
    member: Member | None = None  # the member it matched


def shingles(title: str, summary: str) -> set[str]:
    """Word 3-shingles of title and summary (folded tokens, as rules see them)."""
    words = tokenize(f"{title}\n{summary}")
    if len(words) < SHINGLE:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def sketch(title: str, summary: str) -> tuple[int, ...]:
    """The bottom-k MinHash sketch of the text: the ``SKETCH_SIZE`` smallest shingle hashes."""
    hashes = {
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")
        for s in shingles(title, summary)
    }
    return tuple(sorted(heapq.nsmallest(SKETCH_SIZE, hashes)))


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two sketches (exact when both sets fit the sketch)."""
    if not a or not b:
        return 0.0
    union = heapq.nsmallest(SKETCH_SIZE, set(a) | set(b))
    both = set(a) & set(b)
    return sum(1 for h in union if h in both) / len(union)


def features(
    title: str, summary: str, link: str | None, published: datetime, gazetteer: Gazetteer
) -> Features:
    """Everything clustering and the message need from one entry."""
    parties = gazetteer.find(title, summary)
    principals = tuple(dict.fromkeys(gazetteer.principal(p) for p in parties))
    kinds = gazetteer.agreements_in(title, summary)
    bodies = tuple(p for p in parties if gazetteer.is_multilateral(p))
    return Features(
        link=link,
        published=published,
        parties=parties,
        principals=principals,
        bodies=bodies,
        agreement=kinds[0] if kinds else None,
        kinds=tuple(k for k in kinds if not gazetteer.is_generic(k)),
        sketch=sketch(title, summary),
    )


def assign(
    new: Features, stories: Sequence[OpenStory], settings: ClusterSettings | None = None
) -> Decision:
    """Decide which open story ``new`` joins, if any. Pure and deterministic."""
    settings = settings or ClusterSettings()
    best: tuple[tuple[int, float, int], Decision] | None = None
    for story in stories:
        if abs(new.published - story.started) > settings.window:
            continue
        for member in story.members:
            decision = _match(new, story.id, member, settings)
            if decision is None:
                continue
            key = (_RULE_RANK[decision.rule], -decision.score, story.id)
            if best is None or key < best[0]:
                best = (key, decision)
    if best is None:
        return Decision(None, "new", "no open story has the same link, text or parties")
    return best[1]


def _match(new: Features, story: int, member: Member, s: ClusterSettings) -> Decision | None:
    old = member.features
    what = f"alert {member.alert_id}" if member.alert_id is not None else "an entry"
    quoted = f"{what} ({member.source}: {member.title[:80]!r})"
    if new.link is not None and new.link == old.link:
        return Decision(story, "link", f"same link as {quoted}", 1.0, member)
    sim = similarity(new.sketch, old.sketch)
    if sim >= s.copy_threshold or (sim >= s.text_threshold and not _conflict(new, old)):
        return Decision(
            story,
            "text",
            f"near-duplicate text of {quoted}: similarity {sim:.2f} >= {s.text_threshold:.2f}",
            sim,
            member,
        )
    shared = [p for p in new.principals if p in old.principals]
    shorter = min(len(new.principals), len(old.principals))
    kinds = [k for k in new.kinds if k in old.kinds]
    same_sides = len(shared) >= 2 and len(shared) / shorter >= s.party_overlap
    # One multilateral body (the network, the Frontier Model Forum) is enough when the
    # agreement is named the same way: its launch has as many party lists as reports.
    # But "Kenya joins the network" and "Canada joins the network" are two events.
    same_body = (
        bool(kinds) and any(b in old.bodies for b in new.bodies) and not _other_member(new, old)
    )
    if (same_sides and _compatible(new, old)) or same_body:
        agreed = f" and agreement ({', '.join(kinds)})" if kinds else " (no specific agreement)"
        return Decision(
            story,
            "parties",
            f"same parties ({', '.join(shared)}){agreed} as {quoted}",
            len(shared) / max(len(new.principals), len(old.principals)),
            member,
        )
    return None


def _other_member(a: Features, b: Features) -> bool:
    """Each names one side besides the bodies, and not the same one: another member joining."""
    sa = [p for p in a.principals if p not in a.bodies]
    sb = [p for p in b.principals if p not in b.bodies]
    return len(sa) == 1 and len(sb) == 1 and sa != sb


def _conflict(a: Features, b: Features) -> bool:
    """Each names a side the other does not: "UK and Japan" vs "UK and Singapore"."""
    pa, pb = set(a.principals), set(b.principals)
    return bool(pa - pb) and bool(pb - pa)


def _compatible(a: Features, b: Features) -> bool:
    """A specific kind of agreement in common, or one of them names none (only "cooperation")."""
    return bool(set(a.kinds) & set(b.kinds)) or not (a.kinds and b.kinds)


@dataclass(frozen=True, slots=True)
class StoryView:
    """What one message needs to know about its alert's story (built by the store)."""

    story: int
    parties: tuple[str, ...] = ()
    agreement: str | None = None
    sources: tuple[str, ...] = ()  # every source that carried it, first report first
    revision: int = 0  # the story's revision this view shows
    followup: bool = False  # a later report: a reply in the root's thread
    thread_ts: str | None = None  # the root message's ts, once it is in Slack
    root_title: str = ""  # for webhook batches: which story the follow-ups belong to


def render_membership(rows: Sequence[tuple[int, str, str, str, str]]) -> str:
    """Lines for ``monitor explain``: ``(story, source, title, rule, reason)`` per membership."""
    lines: list[str] = []
    for story, source, title, rule, reason in rows:
        how = "started it" if rule == "new" else f"joined by {rule}: {reason}"
        lines.append(f"story {story}: {source}: {title!r} {how}")
    return "\n".join(lines)
