"""Build the Slack message for one alert: pure functions, no I/O.

Everything in an alert came from a feed and is untrusted. Slack mrkdwn has
three control characters (``&``, ``<``, ``>``); escaping them in every piece
of feed text means ``<!channel>``, ``<@U123>`` or ``<http://evil|click>``
render as text instead of pinging people or hiding links. Every mrkdwn object
is also ``verbatim`` so Slack does not auto-link names or bare mentions.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from monitor.models import Alert
from monitor.notify.digest import DigestBatch, DigestItem
from monitor.parties import describe_parties
from monitor.stories import StoryView

HEADER_LIMIT = 150  # Slack: header text
SECTION_LIMIT = 3000  # Slack: section / context element text
FALLBACK_LIMIT = 3000  # our cap on the notification text
SUMMARY_SOFT_LIMIT = 600  # "a few sentences" before we cut
LINK_LIMIT = 2000  # longer links are almost certainly junk
LINK_LABEL = "Read the announcement"
ELLIPSIS = "…"
DIGEST_TITLE = "AI safety partnership digest"
DIGEST_ITEMS = 40  # digest lines per message: one section each, well under 50 blocks
DIGEST_BUDGET = 12_000  # characters of digest lines per message (keeps payloads small)
DIGEST_LINK_LIMIT = 1500  # a longer (escaped) link is dropped from a digest line

# The only mention markup a message may carry, as `routing.parse_routing` produces it.
_MENTION = re.compile(r"^<!(?:here|channel|subteam\^S[A-Z0-9]{2,})>$")

_WHITESPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?\s")
_UNSAFE_URL_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co", "Cn"}


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's three mrkdwn control characters (``&`` first, so nothing doubles)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_link(url: str | None) -> str | None:
    """Return ``url`` if it is a plain http(s) URL that cannot break out of ``<url|label>``.

    Anything else (``javascript:``, relative links, control or space characters,
    no host) gives None: no link at all is better than a hostile one. ``|``,
    ``<`` and ``>`` are percent-encoded.
    """
    if not url or len(url) > LINK_LIMIT:
        return None
    if any(unicodedata.category(ch) in _UNSAFE_URL_CATEGORIES for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def mention_markup(value: str | None) -> str | None:
    """``value`` when it is mention markup a rule can configure (``<!here>``…), else None.

    Mentions come from the rule config, validated at load; this check makes sure
    nothing else (a damaged database row, a feed) can ever reach Slack as a ping.
    """
    return value if value is not None and _MENTION.match(value) else None


def mention_label(value: str | None) -> str | None:
    """A mention as people write it: ``<!here>`` -> ``@here``, a user group -> ``@subteam:S…``."""
    markup = mention_markup(value)
    if markup is None:
        return None
    return "@" + markup[2:-1].replace("^", ":")


def build_message(
    alert: Alert, story: StoryView | None = None, *, mention: str | None = None
) -> dict[str, Any]:
    """Return ``{"text": fallback, "blocks": [...]}`` for one alert, within Slack's limits.

    With ``story``, the message also names the parties and the kind of agreement, and,
    once more than one source carried the story, "Reported by N sources: …" (the root
    message is edited with ``chat.update`` as reports join). ``mention`` (the rule's,
    see :func:`mention_markup`) opens the message: a section before the header and the
    start of the notification text.
    """
    title = _clean(alert.title) or "(untitled)"
    source = _clean(alert.source) or "unknown source"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            # plain_text is never parsed for mentions; escaping keeps `&lt;` literal.
            "text": {"type": "plain_text", "text": _fit(title, HEADER_LIMIT), "emoji": False},
        }
    ]
    summary = _clean(alert.summary)
    if summary:
        text = _fit(summary, min(SUMMARY_SOFT_LIMIT, SECTION_LIMIT), sentences=True)
        blocks.append({"type": "section", "text": _mrkdwn(text)})
    if story is not None:
        what = _story_lines(story)
        if what:
            blocks.append({"type": "section", "text": _mrkdwn(what)})
    blocks.append({"type": "context", "elements": [_mrkdwn(_context_line(alert, source))]})
    if story is not None and len(story.sources) > 1:
        blocks.append({"type": "context", "elements": [_mrkdwn(_sources_line(story.sources))]})
    link = safe_link(alert.link)
    if link is not None:
        blocks.append({"type": "section", "text": _mrkdwn(f"<{escape_mrkdwn(link)}|{LINK_LABEL}>")})
    markup = mention_markup(mention)
    lead = f"{markup} " if markup else ""
    if markup:
        blocks.insert(0, {"type": "section", "text": _mrkdwn(markup)})
    prefix = lead + "New AI safety partnership: "
    tail = f" — {_fit(source, 200)}"
    fallback = prefix + _fit(title, FALLBACK_LIMIT - _units(prefix) - _units(tail)) + tail
    return {"text": fallback, "blocks": blocks}


def plan_digest(
    rule: str, items: list[DigestItem], mention: str | None = None
) -> list[DigestBatch]:
    """Cut a digest's items into messages within Slack's limits (50 blocks, 3,000 per section).

    The mention opens the first message only: one ping per digest.
    """
    groups: list[list[DigestItem]] = []
    used = DIGEST_BUDGET
    for item in items:
        size = _units(digest_line(item))
        if not groups or len(groups[-1]) >= DIGEST_ITEMS or used + size > DIGEST_BUDGET:
            groups.append([])
            used = 0
        groups[-1].append(item)
        used += size
    return [
        DigestBatch(
            rule,
            tuple(group),
            mention=mention if index == 0 else None,
            part=index + 1,
            parts=len(groups),
            total=len(items),
        )
        for index, group in enumerate(groups)
    ]


def build_digest(batch: DigestBatch) -> dict[str, Any]:
    """One digest message: a header, a context line, then one section per report."""
    count = f"{batch.total} item{'s' if batch.total != 1 else ''}"
    context = f"rule: {_fit(_clean(batch.rule), 200)} · {count}"
    if batch.parts > 1:
        context += f" · part {batch.part} of {batch.parts}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": DIGEST_TITLE, "emoji": False}},
        {"type": "context", "elements": [_mrkdwn(context)]},
    ]
    blocks.extend({"type": "section", "text": _mrkdwn(digest_line(i))} for i in batch.items)
    markup = mention_markup(batch.mention)
    if markup:
        blocks.insert(0, {"type": "section", "text": _mrkdwn(markup)})
    lead = f"{markup} " if markup else ""
    return {"text": f"{lead}{DIGEST_TITLE} ({context})", "blocks": blocks}


def digest_line(item: DigestItem) -> str:
    """One report in a digest: its title (linked if http/https), source and date."""
    alert = item.alert
    title = _fit(_clean(alert.title) or "(untitled)", 300)
    link = safe_link(alert.link)
    escaped = escape_mrkdwn(link) if link is not None else None
    head = f"<{escaped}|{title}>" if escaped and _units(escaped) <= DIGEST_LINK_LIMIT else title
    published = alert.published.astimezone(UTC).strftime("%Y-%m-%d")
    source = _fit(_clean(alert.source) or "unknown source", 200)
    line = f"• {head}\n{source} · {published}"
    if item.also:
        names = ", ".join(dict.fromkeys(_clean(a.source) or "unknown source" for a in item.also))
        line += "\nAlso reported by " + _fit(names, 600)
    return line


def build_followup(alert: Alert, story: StoryView | None = None) -> dict[str, Any]:
    """A reply in the story's thread: "Also reported by FedScoop: <title>" and its link."""
    line = _followup_line(alert)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(line)}]
    if story is not None and story.parties:
        parties = "Parties: " + _fit(describe_parties(story.parties), 600)
        blocks.append({"type": "context", "elements": [_mrkdwn(parties)]})
    fallback = "Also reported by " + _fit(_clean(alert.source) or "unknown source", 200)
    return {"text": fallback, "blocks": blocks}


def build_batch(story: StoryView, alerts: list[Alert]) -> dict[str, Any]:
    """One message for several follow-ups of a story (webhook mode cannot thread)."""
    head = _fit(_clean(story.root_title) or "(untitled)", 300)
    lines = [f"More reports on: {head}"]
    budget = SECTION_LIMIT - _units(lines[0]) - 40
    shown = 0
    for alert in alerts:
        line = "• " + _followup_line(alert)
        if _units(line) + 1 > budget:
            break
        budget -= _units(line) + 1
        lines.append(line)
        shown += 1
    if shown < len(alerts):
        lines.append(f"…and {len(alerts) - shown} more")
    sources = ", ".join(_clean(a.source) for a in alerts)
    fallback = "Also reported by " + _fit(sources, FALLBACK_LIMIT - 40)
    return {"text": fallback, "blocks": [{"type": "section", "text": _mrkdwn("\n".join(lines))}]}


def _followup_line(alert: Alert) -> str:
    source = _fit(_clean(alert.source) or "unknown source", 200)
    title = _fit(_clean(alert.title) or "(untitled)", HEADER_LIMIT)
    line = f"Also reported by {source}: {title}"
    link = safe_link(alert.link)
    if link is not None:
        line += f" <{escape_mrkdwn(link)}|{LINK_LABEL}>"
    return line


def _story_lines(story: StoryView) -> str:
    lines = []
    if story.agreement:
        lines.append("Agreement: " + _fit(_clean(story.agreement), 200))
    if story.parties:
        lines.append("Parties: " + _fit(_clean(describe_parties(story.parties)), 1000))
    return "\n".join(lines)


def _sources_line(sources: tuple[str, ...]) -> str:
    names = ", ".join(_clean(s) for s in sources)
    return f"Reported by {len(sources)} sources: " + _fit(names, 1500)


def _context_line(alert: Alert, source: str) -> str:
    published = alert.published.astimezone(UTC).strftime("%Y-%m-%d")
    rules = ", ".join(_clean(r) for r in alert.rules if _clean(r)) or _clean(alert.rule)
    terms = ", ".join(_clean(t) for t in alert.matched_terms if _clean(t))
    parts = [_fit(source, 200), published, "rule: " + _fit(rules or "?", 300)]
    if terms:
        parts.append("matched: " + _fit(terms, 600))
    return " · ".join(parts)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _clean(text: str) -> str:
    """Turn control characters into spaces and fold runs of whitespace (headers are one line)."""
    kept = "".join(ch if unicodedata.category(ch) not in ("Cc", "Cs") else " " for ch in text)
    return _WHITESPACE.sub(" ", kept).strip()


def _units(text: str) -> int:
    """Length in UTF-16 code units: never less than the code-point count, whichever Slack uses."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int, *, sentences: bool = False) -> str:
    """Escape ``text`` and cut it so the escaped result fits ``limit``, at a word boundary.

    The cut is made on the raw text, so an entity such as ``&amp;`` is never split.
    """
    escaped = escape_mrkdwn(text)
    if _units(escaped) <= limit:
        return escaped
    budget = limit - _units(ELLIPSIS)
    used = 0
    end = 0
    for i, ch in enumerate(text):
        used += _units(escape_mrkdwn(ch))
        if used > budget:
            break
        end = i + 1
    cut = text[:end]
    if sentences:
        ends = [m.end() for m in _SENTENCE_END.finditer(cut + " ")]
        if ends and ends[-1] > len(cut) // 3:
            return escape_mrkdwn(cut[: ends[-1]].rstrip())
    space = cut.rfind(" ")
    if space > len(cut) // 2:  # a word boundary not too far back; else hard cut (CJK, URLs)
        cut = cut[:space]
    return escape_mrkdwn(cut.rstrip()) + ELLIPSIS
