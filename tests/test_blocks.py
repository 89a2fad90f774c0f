"""Slack message building: escaping, link safety, limits, golden payloads.

Golden files live in ``tests/golden/<name>.json`` and are compared exactly.
After an intended change to the message layout, regenerate them with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_blocks.py

and review the diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.models import Alert
from monitor.notify.blocks import (
    DIGEST_ITEMS,
    build_batch,
    build_digest,
    build_followup,
    build_message,
    escape_mrkdwn,
    mention_label,
    mention_markup,
    plan_digest,
    safe_link,
)
from monitor.notify.digest import DigestItem, group_items
from monitor.stories import StoryView

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2024, 5, 21, 9, 30, tzinfo=UTC)

BASE = Alert(
    id=7,
    feed="gov-uk-aisi",
    entry_id="urn:1",
    rule="partnership",
    rules=("partnership",),
    matched_terms=("memorandum of understanding", "AI Safety Institute"),
    title="UK and US AI Safety Institutes sign memorandum of understanding",
    summary=(
        "The UK and US have signed a memorandum of understanding to work together on testing "
        "advanced AI models. The institutes will share research and run joint exercises. "
        "It takes effect immediately."
    ),
    link="https://www.gov.uk/government/news/uk-us-ai-safety?utm=1&x=2",
    source="GOV.UK AI Security Institute",
    published=T0,
    channel=None,
    created_at=T0,
)

HOSTILE = replace(
    BASE,
    title="<!channel> <!here> <!everyone> Partnership <@U123> in <#C123> & co",
    summary=(
        "Click <http://evil.example|here> now. Already-decoded &lt;!channel&gt; and "
        "&amp;lt;!channel&amp;gt; must stay literal. <!subteam^S123>"
    ),
    source="Evil <!here> News",
    rule="<!channel>",
    rules=("<!channel>",),
    matched_terms=("<@U999>", "a&b"),
    link="javascript:alert(1)",
)

CASES: dict[str, Alert] = {
    "basic": BASE,
    "hostile": HOSTILE,
    "rtl_emoji": replace(
        BASE,
        title="شراكة جديدة لسلامة الذكاء الاصطناعي 🤝🇬🇧🇺🇸 — 安全合作",
        summary="نص عربي ‏مع علامات اتجاه‏ and emoji 🧪🔬👩‍🔬.",
        link="https://example.org/ar/شراكة",
    ),
    "long": replace(
        BASE,
        title=("Partnership " * 900).strip(),
        summary=("This sentence is about AI safety. " * 400).strip(),
        matched_terms=tuple(f"term{i}" for i in range(200)),
        link=None,
    ),
    "no_summary": replace(BASE, summary="", title="   ", link="http://example.com/a|b<c>d"),
}


VIEW = StoryView(
    story=3,
    parties=("UK AI Security Institute", "US Center for AI Standards and Innovation"),
    agreement="memorandum of understanding",
    sources=("GOV.UK AI Security Institute", "FedScoop", "Reuters <!here>"),
    revision=2,
    root_title=BASE.title,
)
HOSTILE_VIEW = replace(
    VIEW, parties=("<!channel> Party", "A & B"), agreement="<@U1> deal", root_title=HOSTILE.title
)
STORY_CASES: dict[str, dict[str, Any]] = {
    "story_root": build_message(BASE, VIEW),
    "story_root_hostile": build_message(HOSTILE, HOSTILE_VIEW),
    "story_followup": build_followup(
        replace(BASE, source="FedScoop", title="US, UK sign AI testing pact", link="https://f/1"),
        replace(VIEW, followup=True, thread_ts="1.000001"),
    ),
    "story_followup_hostile": build_followup(HOSTILE, replace(HOSTILE_VIEW, followup=True)),
    "story_batch": build_batch(
        HOSTILE_VIEW,
        [
            replace(BASE, source="FedScoop", title="US, UK sign AI testing pact"),
            HOSTILE,
            replace(BASE, source="Reuters", title="Britain and US team up", link=None),
        ],
    ),
    "story_batch_long": build_batch(
        VIEW, [replace(BASE, id=i, title=("Partnership " * 20).strip()) for i in range(60)]
    ),
}
DIGEST_ALERTS = [
    BASE,
    replace(HOSTILE, id=8, mention="<!here>"),
    replace(BASE, id=9, source="FedScoop", title="US, UK sign AI testing pact", link=None),
]
# Messages that may carry markup of our own: a mention (from the rule) and titled links.
ROUTED_MESSAGES: dict[str, dict[str, Any]] = {
    "mention": build_message(BASE, mention="<!subteam^S0123ABCD>"),
    "mention_hostile": build_message(HOSTILE, VIEW, mention="<!here>"),
    "digest": build_digest(
        plan_digest(
            "institute-partnerships",
            group_items(DIGEST_ALERTS, {9: 7}),  # FedScoop joined GOV.UK's story
            "<!here>",
        )[0]
    ),
    "digest_long": build_digest(
        plan_digest(
            "long",
            [DigestItem(replace(CASES["long"], id=i)) for i in range(DIGEST_ITEMS + 2)],
        )[1]
    ),
}
ALL_MESSAGES: dict[str, dict[str, Any]] = {
    **{name: build_message(alert) for name, alert in CASES.items()},
    **STORY_CASES,
    **ROUTED_MESSAGES,
}


def _all_texts(message: dict[str, Any]) -> list[str]:
    out = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(e["text"] for e in block.get("elements", []))
    return out


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_golden(name: str) -> None:
    message = ALL_MESSAGES[name]
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(message, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert rendered == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_limits(name: str) -> None:
    message = ALL_MESSAGES[name]
    blocks = message["blocks"]
    assert len(blocks) <= 50
    if name in CASES or name.startswith("story_root"):
        assert blocks[0]["type"] == "header"
    for block in blocks:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"].encode("utf-16-le")) // 2 <= 150
            continue
        texts = [block["text"]] if "text" in block else block["elements"]
        for text in texts:
            assert text["type"] == "mrkdwn"
            assert text["verbatim"] is True
            assert 0 < len(text["text"]) <= 3000
    assert len(message["text"]) <= 3000
    assert len(json.dumps(message)) < 16_000


@pytest.mark.parametrize("name", sorted(set(ALL_MESSAGES) - set(ROUTED_MESSAGES)))
def test_no_raw_control_characters(name: str) -> None:
    # Only our own link markup may use < and >: everything else is escaped.
    for text in _all_texts(ALL_MESSAGES[name]):
        stripped = re.sub(r"<https?://[^<>|]+\|Read the announcement>", "", text)
        assert "<" not in stripped and ">" not in stripped
        assert re.search(r"&(?!amp;|lt;|gt;)", stripped) is None


@pytest.mark.parametrize("name", sorted(ROUTED_MESSAGES))
def test_routed_messages_carry_only_our_markup(name: str) -> None:
    message = ROUTED_MESSAGES[name]
    mention = [b for b in message["blocks"] if "<!" in json.dumps(b)]
    assert mention in ([], [message["blocks"][0]])  # the rule's mention, first, once
    for text in _all_texts(message)[1:]:
        if re.fullmatch(r"<!(here|subteam\^S[A-Z0-9]+)>", text):
            continue  # the mention block itself
        stripped = re.sub(r"<https?://[^<>|\s]+\|[^<>]+>", "", text)
        assert "<" not in stripped and ">" not in stripped
        assert re.search(r"&(?!amp;|lt;|gt;)", stripped) is None
    fallback = message["text"]
    assert fallback.count("<!") == (1 if mention else 0)
    assert fallback.startswith(mention[0]["text"]["text"] if mention else "")


def test_mention_markup_is_only_what_a_rule_can_configure() -> None:
    for good in ("<!here>", "<!channel>", "<!subteam^S0123ABCD>"):
        assert mention_markup(good) == good
    for bad in ("<!everyone>", "<@U123>", "<!here> hi", "@here", "<!subteam^S1|x>", None):
        assert mention_markup(bad) is None
    assert build_message(BASE, mention="<!everyone>") == build_message(BASE)
    assert mention_label("<!subteam^S0123ABCD>") == "@subteam:S0123ABCD"


def test_digest_lists_a_storys_later_reports_under_its_first() -> None:
    texts = [b["text"]["text"] for b in ROUTED_MESSAGES["digest"]["blocks"][3:]]
    assert texts[0] == (
        "• <https://www.gov.uk/government/news/uk-us-ai-safety?utm=1&amp;x=2|UK and US AI "
        "Safety Institutes sign memorandum of understanding>\nGOV.UK AI Security Institute · "
        "2024-05-21\nAlso reported by FedScoop"
    )
    assert texts[1].startswith("• &lt;!channel&gt; &lt;!here&gt;")  # javascript: link: no link
    assert len(texts) == 2


def test_digest_split_respects_limits() -> None:
    items = [DigestItem(replace(CASES["long"], id=i)) for i in range(3 * DIGEST_ITEMS)]
    batches = plan_digest("r", items, "<!here>")
    assert [b.part for b in batches] == list(range(1, len(batches) + 1))
    assert sum(len(b.items) for b in batches) == len(items)
    assert [b.mention for b in batches] == ["<!here>"] + [None] * (len(batches) - 1)
    for batch in batches:
        message = build_digest(batch)
        assert len(message["blocks"]) <= 50
        assert len(json.dumps(message)) < 40_000


def test_hostile_text_is_inert() -> None:
    message = build_message(HOSTILE)
    joined = "\n".join(_all_texts(message))
    assert "&lt;!channel&gt;" in joined
    assert "&lt;@U123&gt;" in joined
    assert "&lt;http://evil.example|here&gt;" in joined
    assert "&amp;lt;!channel&amp;gt;" in joined  # literal "&lt;" in the feed text stays literal
    assert "&amp;amp;lt;" in joined
    assert not any(
        b["type"] == "section" and "Read the announcement" in b["text"]["text"]
        for b in message["blocks"]
    )  # javascript: link dropped


def test_long_title_cut_at_word_boundary() -> None:
    header = build_message(CASES["long"])["blocks"][0]["text"]["text"]
    assert header.endswith("Partnership…")
    assert len(header) <= 150


def test_cut_never_splits_an_entity() -> None:
    alert = replace(BASE, title="&" * 400)
    header = build_message(alert)["blocks"][0]["text"]["text"]
    assert re.fullmatch(r"(&amp;)+…", header)
    assert len(header) <= 150


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a & b", "a &amp; b"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("&lt;", "&amp;lt;"),
        ("&amp;lt;!here&amp;gt;", "&amp;amp;lt;!here&amp;amp;gt;"),
        ("", ""),
    ],
)
def test_escape_mrkdwn(text: str, expected: str) -> None:
    assert escape_mrkdwn(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1&c=2", "https://example.com/a?b=1&c=2"),
        ("HTTP://Example.com/", "HTTP://Example.com/"),
        ("https://example.com/a|b<c>", "https://example.com/a%7Cb%3Cc%3E"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("data:text/html,hi", None),
        ("ftp://example.com/", None),
        ("//example.com/x", None),
        ("/relative", None),
        ("https://exa mple.com/", None),
        ("https://example.com/\nx", None),
        ("https://example.com/\u202ex", None),
        ("https://", None),
        ("https://[::1", None),
        ("https://example.com/" + "a" * 3000, None),
        ("", None),
        (None, None),
    ],
)
def test_safe_link(url: str | None, expected: str | None) -> None:
    assert safe_link(url) == expected


def test_link_ampersand_escaped_inside_markup() -> None:
    link = build_message(BASE)["blocks"][-1]["text"]["text"]
    url = "https://www.gov.uk/government/news/uk-us-ai-safety?utm=1&amp;x=2"
    assert link == f"<{url}|Read the announcement>"


def test_story_lines() -> None:
    texts = "\n".join(_all_texts(STORY_CASES["story_root"]))
    assert "Agreement: memorandum of understanding" in texts
    assert "Parties: UK AI Security Institute · US Center for AI Standards and Innovation" in texts
    assert (
        "Reported by 3 sources: GOV.UK AI Security Institute, FedScoop, Reuters &lt;!here&gt;"
        in (texts)
    )
    single = build_message(BASE, replace(VIEW, sources=("GOV.UK",)))
    assert "Reported by" not in json.dumps(single)  # one source: nothing to count yet
    bare = replace(VIEW, parties=(), agreement=None, sources=())
    assert build_message(BASE, bare) == build_message(BASE)


def test_followup_is_one_line_with_its_link() -> None:
    message = STORY_CASES["story_followup"]
    assert message["text"] == "Also reported by FedScoop"
    assert message["blocks"][0]["text"]["text"] == (
        "Also reported by FedScoop: US, UK sign AI testing pact <https://f/1|Read the announcement>"
    )


def test_batch_is_capped() -> None:
    text = STORY_CASES["story_batch_long"]["blocks"][0]["text"]["text"]
    assert len(text) <= 3000 and text.endswith("more")
