"""Stories in Slack: one root per story, follow-ups in its thread, the root edited with sources.

Real feeds on the loopback feed server go through the real pipeline into a real
SQLite store (with the shipped ``rules/parties.yaml``), and the deliverer posts
to the Slack emulator. Time is a fake clock (see tests/test_deliver.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.deliver import Deliverer, DeliveryReport, FollowupPolicy
from monitor.errors import ConfigError
from monitor.fetch import make_client
from monitor.models import AlertStatus, Entry, Feed, RuleMatch
from monitor.notify import Notifier, SlackBotNotifier, StdoutNotifier, WebhookNotifier
from monitor.parties import load_parties
from monitor.pipeline import PollSettings, poll_all
from monitor.rules import load_rules
from monitor.store import Candidate, Clustering, FeedState, Outcome, Store
from tests.feedserver import FeedServer, rss
from tests.slack_emulator import SlackEmulator
from tests.support import write_rules_dir
from tests.test_deliver import Clock

REPO = Path(__file__).resolve().parent.parent
GAZETTEER = load_parties(REPO / "rules" / "parties.yaml")
CLUSTERING = Clustering(GAZETTEER)

# The US-UK memorandum of April 2024 as five outlets carried it (one link each).
US_UK = [
    (
        "GOV.UK",
        "UK & United States announce partnership on science of AI safety",
        "The UK and US have signed a Memorandum of Understanding which will see them work "
        "together to develop tests for the most advanced AI models.",
    ),
    (
        "Commerce",
        "U.S. and UK Announce Partnership on Science of AI Safety",
        "Secretary Raimondo and Secretary Donelan signed a Memorandum of Understanding under "
        "which the U.S. and UK AI Safety Institutes will work closely on evaluations.",
    ),
    (
        "FedScoop",
        "US, UK AI safety institutes to jointly test models under new pact <!channel>",
        "The two countries signed a memorandum of understanding on AI safety testing.",
    ),
    (
        "Reuters",
        "Britain and United States team up on AI safety testing",
        "The two governments will share research and run joint tests of advanced models "
        "under a memorandum signed in Washington.",
    ),
    (
        "TechCrunch",
        "US and UK sign landmark agreement to test AI models together",
        "The two countries' AI safety institutes signed a memorandum of understanding and plan "
        "joint tests on frontier models.",
    ),
]


class StoryStore(Store):
    """A store whose direct record_poll calls use the shipped gazetteer (polls pass it too)."""

    def record_poll(self, *args: Any, **kwargs: Any) -> list[Outcome]:
        kwargs.setdefault("clustering", CLUSTERING)
        return super().record_poll(*args, **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = StoryStore.open(tmp_path / "monitor.db")
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def deliverer(
    store: Store, notifier: Notifier, clock: Clock, policy: FollowupPolicy | None = None
) -> Deliverer:
    return Deliverer(
        store,
        notifier,
        now=clock.now,
        sleep=clock.sleep,
        logger=logging.getLogger("test.threads"),
        followups=policy,
    )


def bot(slack: SlackEmulator) -> SlackBotNotifier:
    return SlackBotNotifier(slack.token, "#alerts", base_url=slack.api_url, timeout=1)


def run(d: Deliverer) -> DeliveryReport:
    return asyncio.run(d.deliver_pending())


def poll_feeds(
    feed_server: FeedServer, tmp_path: Path, store: Store, clock: Clock, stories: Sequence[Any]
) -> list[Outcome]:
    """Serve one feed per outlet and poll them all once (first poll with backfill)."""
    from monitor.dedupe import Backfill

    feeds = []
    for n, (source, title, summary) in enumerate(stories):
        path = f"/{source.lower()}.xml"
        item = {
            "title": title,
            "guid": f"{source}-{n}",
            "link": f"https://{source.lower()}.example/news/{n}",
            "description": summary,
            "pubDate": clock.t - timedelta(hours=len(stories) - n),
        }
        feed_server.set(path, rss([item]))
        feeds.append({"name": source, "url": feed_server.url(path)})
    rules_dir = write_rules_dir(tmp_path, feeds)
    rules = load_rules(rules_dir)
    feed_objs = [Feed(f["name"], f["url"]) for f in feeds]

    async def go() -> list[Outcome]:
        async with make_client() as client:
            reports = await poll_all(
                feed_objs,
                client=client,
                store=store,
                rules=rules,
                settings=PollSettings(backfill=Backfill(None), clustering=CLUSTERING),
                now=clock.now,
                concurrency=1,  # fixed order: the first outlet's report is the root
            )
        return [o for r in reports for o in r.outcomes]

    return asyncio.run(go())


def test_five_sources_one_root_four_replies_and_an_updated_count(
    feed_server: FeedServer, tmp_path: Path, store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    d = deliverer(store, bot(slack), clock)
    [first] = poll_feeds(feed_server, tmp_path, store, clock, US_UK[:1])
    assert run(d).delivered == 1
    [root] = slack.top_level("C0ALERTS")
    assert "Reported by" not in str(root.blocks)  # one source so far
    clock.advance(minutes=20)
    later = poll_feeds(feed_server, tmp_path, store, clock, US_UK[1:])
    outcomes = [first, *later]
    assert len({o.story for o in outcomes}) == 1 and first.story is not None
    assert [o.followup for o in outcomes] == [False, True, True, True, True]
    assert first.parties == ("United Kingdom", "United States")
    assert first.agreement == "memorandum of understanding"
    assert all(o.story_reason for o in later) and first.story_reason is None

    report = run(d)
    assert (report.delivered, report.failed, report.updated) == (4, 0, 1)
    assert slack.top_level("C0ALERTS") == [
        replace(root, blocks=slack.messages[0].blocks, text=slack.messages[0].text, edits=1)
    ]
    replies = slack.replies(root.ts)
    assert [r.text for r in replies] == [
        "Also reported by Commerce",
        "Also reported by FedScoop",
        "Also reported by Reuters",
        "Also reported by TechCrunch",
    ]
    # Every reply carries its alert id, so a lost answer can be settled in the thread.
    ids = {m.metadata["event_payload"]["alert_id"] for m in slack.messages if m.metadata}
    assert ids == {o.alert_id for o in outcomes}
    # Four joins, one edit: updates coalesce and render the whole state.
    [edit] = slack.updates
    assert edit.ts == root.ts and edit.edits == 1
    body = str(edit.blocks)
    assert "Reported by 5 sources: GOV.UK, Commerce, FedScoop, Reuters, TechCrunch" in body
    assert "Parties: United Kingdom · United States" in body
    assert "Agreement: memorandum of understanding" in body
    assert edit.metadata == root.metadata  # still findable by a history lookup
    hostile = next(r for r in replies if "FedScoop" in r.text)
    assert "&lt;!channel&gt;" in str(hostile.blocks) and "<!channel>" not in str(hostile.blocks)
    assert run(d) == DeliveryReport()  # nothing left, nothing edited again
    assert len(slack.updates) == 1


def test_root_posted_after_reports_joined_needs_no_edit(
    feed_server: FeedServer, tmp_path: Path, store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    poll_feeds(feed_server, tmp_path, store, clock, US_UK[:3])
    report = run(deliverer(store, bot(slack), clock))
    assert (report.delivered, report.updated) == (3, 0)
    [root] = slack.top_level("C0ALERTS")
    assert "Reported by 3 sources: GOV.UK, Commerce, FedScoop" in str(root.blocks)
    assert len(slack.replies(root.ts)) == 2 and slack.updates == []


def test_two_events_by_the_same_institute_are_two_stories(store: Store, clock: Clock) -> None:
    state = FeedState("GOV.UK", "https://gov.example/feed", "https://gov.example/feed")
    cohere = entry(
        "c",
        "UK government and Cohere agree partnership on secure AI",
        "The memorandum of understanding will see Cohere work with the UK AI Security "
        "Institute on research into the security of frontier models.",
        clock.t,
    )
    openai = entry(
        "o",
        "UK and OpenAI sign strategic partnership to boost AI security research",
        "The memorandum of understanding commits OpenAI to expand technical information "
        "sharing with the UK AI Security Institute.",
        clock.t + timedelta(days=36),
    )
    first = store.record_poll(
        state, [cohere], [cand(cohere)], clock.t, link_window=timedelta(days=30)
    )
    second = store.record_poll(
        state,
        [openai],
        [cand(openai)],
        clock.t + timedelta(days=36),
        link_window=timedelta(days=30),
        clustering=CLUSTERING,
    )
    assert first[0].story is not None and second[0].story is not None
    assert first[0].story != second[0].story
    assert not second[0].followup


def test_same_link_from_another_feed_is_folded_not_replied(
    store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    a = entry("a", US_UK[0][1], US_UK[0][2], clock.t, source="GOV.UK DSIT", link="https://x/1")
    b = entry(
        "b", "Other headline", "Other text.", clock.t, source="GOV.UK AISI", link="https://x/1"
    )
    [root] = record(store, clock, a)
    d = deliverer(store, bot(slack), clock)
    assert run(d).delivered == 1
    [folded] = record(store, clock, b, feed="GOV.UK AISI")
    assert folded.alert_id is None and folded.duplicate_of == root.alert_id
    assert folded.story == root.story and folded.story_reason is not None
    assert "same link" in folded.story_reason
    report = run(d)
    assert report.delivered == 0 and report.updated == 1
    assert len(slack.messages) == 1
    assert "Reported by 2 sources: GOV.UK DSIT, GOV.UK AISI" in str(slack.updates[0].blocks)


def test_lost_reply_answer_is_found_in_the_thread(
    store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    outcomes = [
        record(store, clock, entry(str(n), t, s, clock.t, source=src))[0]
        for n, (src, t, s) in enumerate(US_UK[:2])
    ]
    d = deliverer(store, bot(slack), clock)
    slack.drop_after_read(0)
    run_root = run(d)
    assert run_root.delivered == 2
    # A third report; Slack records its reply but the answer is lost.
    late = entry("late", *US_UK[3][1:], clock.t, source=US_UK[3][0])
    [reply] = record(store, clock, late, feed=US_UK[3][0])
    assert reply.followup and reply.story == outcomes[0].story
    slack.drop_after_read(1)
    report = run(d)
    alert = store.get_alert(reply.alert_id or 0)
    assert alert is not None and alert.status is AlertStatus.SENDING
    assert report.retried == 1
    posted = len(slack.messages)
    clock.advance(minutes=5)
    report = run(deliverer(store, bot(slack), clock))  # a restart: fresh notifier
    assert report.delivered == 1
    assert len(slack.messages) == posted  # looked up in the thread, not posted again
    alert = store.get_alert(reply.alert_id or 0)
    assert (
        alert is not None
        and alert.delivered_ts == slack.replies(slack.top_level("C0ALERTS")[0].ts)[-1].ts
    )
    assert "Reported by 3 sources" in str(slack.top_level("C0ALERTS")[0].blocks)


def test_reply_waits_for_its_root(store: Store, clock: Clock, slack: SlackEmulator) -> None:
    for n, (src, t, s) in enumerate(US_UK[:2]):
        record(store, clock, entry(str(n), t, s, clock.t, source=src), feed=src)
    slack.rate_limit(1, retry_after="120")  # the root is refused for two minutes
    report = run(deliverer(store, bot(slack), clock))
    assert (report.delivered, report.retried, report.held) == (0, 1, 1)
    assert slack.messages == []
    clock.advance(seconds=121)
    report = run(deliverer(store, bot(slack), clock))
    assert report.delivered == 2
    [root] = slack.top_level("C0ALERTS")
    assert len(slack.replies(root.ts)) == 1


def test_failed_root_lets_follow_ups_stand_alone(
    store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    for n, (src, t, s) in enumerate(US_UK[:2]):
        record(store, clock, entry(str(n), t, s, clock.t, source=src), feed=src)
    slack.fail("invalid_blocks")  # Slack refuses the root for good
    report = run(deliverer(store, bot(slack), clock))
    assert (report.delivered, report.failed) == (1, 1)
    [message] = slack.top_level("C0ALERTS")
    assert message.thread_ts is None and message.blocks and message.blocks[0]["type"] == "header"


def test_story_update_rate_limited_is_retried(
    store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    record(store, clock, entry("0", *US_UK[0][1:], clock.t, source="GOV.UK"))
    d = deliverer(store, bot(slack), clock)
    run(d)
    record(store, clock, entry("1", *US_UK[1][1:], clock.t, source="Commerce"), feed="Commerce")
    slack.rate_limit(1, retry_after="1")  # hits the reply: waited out in-cycle
    slack.allow(1)  # the reply's second try
    slack.server_error(1)  # hits the edit: retried later
    report = run(d)
    assert report.delivered == 1 and report.updated == 0
    assert slack.updates == []
    clock.advance(minutes=2)
    report = run(d)
    assert report.updated == 1 and len(slack.updates) == 1


def test_webhook_batches_follow_ups_per_story_per_window(
    store: Store, clock: Clock, slack: SlackEmulator
) -> None:
    hook = WebhookNotifier(slack.webhook_url, timeout=1)
    d = deliverer(store, hook, clock, FollowupPolicy("batch", timedelta(hours=1)))
    record(store, clock, entry("0", *US_UK[0][1:], clock.t, source="GOV.UK"))
    record(store, clock, entry("1", *US_UK[1][1:], clock.t, source="Commerce"), feed="Commerce")
    report = run(d)
    assert (report.delivered, report.held) == (1, 1)
    clock.advance(minutes=30)
    record(store, clock, entry("2", *US_UK[2][1:], clock.t, source="FedScoop"), feed="FedScoop")
    assert run(d).delivered == 0  # still inside the hour of the first follow-up
    assert len(slack.messages) == 1
    clock.advance(minutes=31)
    report = run(d)
    assert report.delivered == 2
    assert len(slack.messages) == 2
    batch = slack.messages[1]
    text = str(batch.blocks)
    assert "More reports on: UK &amp; United States announce partnership" in text
    assert "Also reported by Commerce" in text and "Also reported by FedScoop" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert run(d) == DeliveryReport()


def test_webhook_drop_mode(store: Store, clock: Clock, slack: SlackEmulator) -> None:
    hook = WebhookNotifier(slack.webhook_url, timeout=1)
    d = deliverer(store, hook, clock, FollowupPolicy("drop"))
    record(store, clock, entry("0", *US_UK[0][1:], clock.t, source="GOV.UK"))
    [f] = record(store, clock, entry("1", *US_UK[1][1:], clock.t, source="Commerce"), feed="C")
    report = run(d)
    assert (report.delivered, report.dropped) == (1, 1)
    assert len(slack.messages) == 1
    alert = store.get_alert(f.alert_id or 0)
    assert alert is not None and alert.status is AlertStatus.DELIVERED


def test_stdout_prints_follow_ups_as_one_line(store: Store, clock: Clock) -> None:
    record(store, clock, entry("0", *US_UK[0][1:], clock.t, source="GOV.UK"))
    record(store, clock, entry("1", *US_UK[1][1:], clock.t, source="Commerce"), feed="C")
    out = io.StringIO()
    assert run(deliverer(store, StdoutNotifier(out), clock)).delivered == 2
    text = out.getvalue()
    assert "parties: United Kingdom · United States" in text
    assert "agreement: memorandum of understanding" in text
    assert "   Also reported by Commerce: U.S. and UK Announce Partnership" in text
    assert text.count("=" * 78) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FollowupPolicy("batch", timedelta(hours=1))),
        ({"MONITOR_WEBHOOK_FOLLOWUPS": "drop"}, FollowupPolicy("drop", timedelta(hours=1))),
        ({"MONITOR_WEBHOOK_BATCH": "30m"}, FollowupPolicy("batch", timedelta(minutes=30))),
    ],
)
def test_followup_policy_from_env(env: dict[str, str], expected: FollowupPolicy) -> None:
    assert FollowupPolicy.from_env(env) == expected


@pytest.mark.parametrize(
    "env", [{"MONITOR_WEBHOOK_FOLLOWUPS": "thread"}, {"MONITOR_WEBHOOK_BATCH": "soon"}]
)
def test_followup_policy_refuses_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="MONITOR_WEBHOOK_"):
        FollowupPolicy.from_env(env)


# -- helpers -------------------------------------------------------------------------------


def entry(
    entry_id: str,
    title: str,
    summary: str,
    published: datetime,
    *,
    source: str = "GOV.UK",
    link: str | None = None,
) -> Entry:
    return Entry(
        id=entry_id,
        source=source,
        link=link or f"https://{source.lower().replace(' ', '')}.example/{entry_id}",
        title=title,
        summary=summary,
        published=published,
        published_from_feed=True,
    )


def cand(e: Entry) -> Candidate:
    return Candidate(e, (RuleMatch("partnerships", ("memorandum",)),))


def record(store: Store, clock: Clock, e: Entry, *, feed: str | None = None) -> list[Outcome]:
    name = feed or e.source
    state = FeedState(name, f"https://{name}.example/feed", f"https://{name}.example/feed")
    return store.record_poll(state, [e], [cand(e)], clock.now(), link_window=timedelta(days=30))
