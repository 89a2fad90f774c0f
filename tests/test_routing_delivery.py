"""Per-rule routing in delivery: mentions, quiet hours and digests, with a fake clock.

A real SQLite store and the Slack emulator; the emulator's clock is the test's
fake clock, so message ``ts`` values and history lookups agree with it. The
clock starts on Friday 27 November 2026, 10:00 UTC (London is on UTC then).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.deliver import Deliverer, DeliveryReport
from monitor.errors import ConfigError
from monitor.models import AlertStatus, Entry, RuleMatch
from monitor.notify import Notifier, SlackBotNotifier, StdoutNotifier, WebhookNotifier
from monitor.notify.blocks import DIGEST_ITEMS
from monitor.routing import Routing, parse_routing
from monitor.rules import load_rules
from monitor.store import MIGRATIONS, Candidate, FeedState, Outcome, Store
from tests.slack_emulator import SlackEmulator
from tests.support import write_rules_dir
from tests.test_deliver import Clock
from tests.test_threads import US_UK, StoryStore

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def routing(**item: object) -> Routing:
    return parse_routing(item, lambda reason: ConfigError(reason))


HERE = routing(mention="@here")
QUIET = routing(quiet_hours={"from": "22:00", "to": "07:00", "timezone": "Europe/London"})
DIGEST = routing(
    mode="digest", digest={"schedule": "0 9 * * mon-fri", "timezone": "UTC"}, mention="@here"
)


@pytest.fixture
def clock() -> Clock:
    fake = Clock()
    fake.t = FRIDAY
    return fake


@pytest.fixture
def slack(clock: Clock) -> Iterator[SlackEmulator]:
    emulator = SlackEmulator(clock=lambda: clock.t.timestamp())
    emulator.up()
    try:
        yield emulator
    finally:
        emulator.down()
    assert not emulator.bugs, f"Slack emulator errors: {emulator.bugs}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = StoryStore.open(tmp_path / "monitor.db")
    try:
        yield db
    finally:
        db.close()


def bot(slack: SlackEmulator) -> SlackBotNotifier:
    return SlackBotNotifier(slack.token, "#alerts", base_url=slack.api_url, timeout=1)


def deliverer(store: Store, notifier: Notifier, clock: Clock) -> Deliverer:
    return Deliverer(
        store, notifier, now=clock.now, sleep=clock.sleep, logger=logging.getLogger("test.route")
    )


def run(d: Deliverer) -> DeliveryReport:
    return asyncio.run(d.deliver_pending())


def entry(
    n: int,
    clock: Clock,
    *,
    title: str | None = None,
    source: str = "GOV.UK",
    summary: str = "Two institutes agree to test models together.",
) -> Entry:
    return Entry(
        id=f"e{n}",
        source=source,
        link=f"https://www.gov.uk/news/{n}",
        title=title or f"Partnership {n} on AI safety",
        summary=summary,
        published=clock.t,
        published_from_feed=True,
    )


def match(route: Routing, rule: str = "partnerships") -> RuleMatch:
    return RuleMatch(rule, ("AI safety",), route.channel, route)


def enqueue(store: Store, clock: Clock, n: int, route: Routing, **kw: str) -> int:
    return store.enqueue_alert(entry(n, clock, **kw), match(route), clock.now())


def record(store: Store, clock: Clock, e: Entry, *matches: RuleMatch) -> list[Outcome]:
    """One poll of the entry's own feed through ``record_poll`` (stories included)."""
    state = FeedState(e.source, f"https://{e.source}.example/", f"https://{e.source}.example/")
    return store.record_poll(
        state, [e], [Candidate(e, matches)], clock.now(), link_window=timedelta(days=30)
    )


def texts(blocks: list[dict[str, object]] | None) -> str:
    return json.dumps(blocks)


# -- mentions --------------------------------------------------------------------------------


def test_mention_opens_the_message_once_and_feed_text_stays_escaped(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    hostile = "Partnership <!channel> <!subteam^S999> on AI safety <!here>"
    enqueue(store, clock, 1, HERE, title=hostile)
    enqueue(store, clock, 2, Routing(), title=hostile)  # no mention configured
    assert run(deliverer(store, bot(slack), clock)).delivered == 2
    routed, plain = slack.messages
    assert routed.blocks is not None and plain.blocks is not None
    assert routed.blocks[0] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "<!here>", "verbatim": True},
    }
    assert routed.blocks[1]["type"] == "header"
    assert routed.text.startswith("<!here> New AI safety partnership: ")
    assert texts(routed.blocks).count("<!") == 1  # our mention, and nothing from the feed
    assert routed.text.count("<!") == 1
    assert "&lt;!channel&gt;" in routed.text and "&lt;!here&gt;" in routed.text
    assert "<!" not in texts(plain.blocks) and "<!" not in plain.text


def test_followups_and_story_updates_carry_no_mention(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    d = deliverer(store, bot(slack), clock)
    for n, (source, title, summary) in enumerate(US_UK[:3]):
        record(
            store, clock, entry(n, clock, title=title, source=source, summary=summary), match(HERE)
        )
        if n == 0:
            assert run(d).delivered == 1  # the root is in Slack before the others join
            [root] = slack.messages
            assert root.blocks is not None and root.blocks[0]["text"]["text"] == "<!here>"
        clock.advance(minutes=1)
    assert run(d).delivered == 2
    replies = slack.replies(root.ts)
    assert len(replies) == 2
    assert all("<!" not in texts(r.blocks) + r.text for r in replies)
    [edit] = slack.updates  # the root now counts three sources, and pings no one again
    assert "Reported by 3 sources" in texts(edit.blocks)
    assert "<!" not in texts(edit.blocks) + edit.text


# -- quiet hours -----------------------------------------------------------------------------


def test_quiet_hours_hold_an_alert_then_deliver_it(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    clock.t = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 23:30 in London
    i = enqueue(store, clock, 1, QUIET)
    held = store.get_alert(i)
    assert held is not None and held.next_attempt_at == datetime(2026, 11, 28, 7, tzinfo=UTC)
    d = deliverer(store, bot(slack), clock)
    assert run(d) == DeliveryReport()
    assert [a.id for a in store.outbox()] == [i]  # `monitor outbox` shows it, with its next try
    clock.t = datetime(2026, 11, 28, 6, 59, tzinfo=UTC)
    assert run(d) == DeliveryReport() and slack.messages == []
    clock.t = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert run(d).delivered == 1
    assert len(slack.messages) == 1
    outside = enqueue(store, clock, 2, QUIET)  # 07:00: not quiet, goes at once
    assert run(d).delivered == 1
    alert = store.get_alert(outside)
    assert alert is not None and alert.status is AlertStatus.DELIVERED


def test_quiet_hours_hold_a_webhook_followup_out_of_its_batch(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    reports = [entry(n, clock, title=t, source=s, summary=x) for n, (s, t, x) in enumerate(US_UK)]
    d = deliverer(store, WebhookNotifier(slack.webhook_url, timeout=1), clock)
    clock.t = datetime(2026, 11, 27, 21, 30, tzinfo=UTC)
    record(store, clock, reports[0], match(Routing()))
    assert run(d).delivered == 1
    record(store, clock, reports[1], match(Routing()))  # batched for an hour
    clock.advance(minutes=40)
    record(store, clock, reports[2], match(QUIET, "quiet"))  # 22:10: quiet until 07:00
    clock.advance(minutes=21)
    assert run(d).delivered == 1  # 22:31: the batch, without the quiet rule's report
    assert "Commerce" in slack.messages[-1].text and "FedScoop" not in slack.messages[-1].text
    clock.t = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert run(d).delivered == 1
    assert "FedScoop" in slack.messages[-1].text and len(slack.messages) == 3


# -- digests ---------------------------------------------------------------------------------


def test_digest_holds_alerts_until_the_schedule_and_posts_one_message(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    d = deliverer(store, bot(slack), clock)
    ids = []
    for n in range(3):
        ids.append(enqueue(store, clock, n, DIGEST, title=f"Pact {n} <!channel>"))
        clock.advance(hours=5)  # Friday 10:00, 15:00, 20:00
        assert run(d) == DeliveryReport()
    now = enqueue(store, clock, 9, Routing())  # an immediate rule is not held
    assert run(d).delivered == 1
    held = store.get_alert(ids[0])
    assert held is not None and held.next_attempt_at == MONDAY_9 and held.digest == "partnerships"
    clock.t = MONDAY_9 - timedelta(seconds=1)
    assert run(d) == DeliveryReport()
    clock.t = MONDAY_9
    report = run(d)
    assert (report.delivered, report.digests) == (3, 1)
    immediate, digest = slack.messages
    assert store.get_alert(now) is not None and immediate.metadata is not None
    assert digest.metadata == {
        "event_type": "ai_safety_partnership_digest",
        "event_payload": {
            "digest": "partnerships",
            "alert_ids": ids,
            "instance": store.instance_id,
        },
    }
    assert digest.blocks is not None
    assert digest.blocks[0]["text"]["text"] == "<!here>"
    assert digest.text.startswith("<!here> AI safety partnership digest")
    assert texts(digest.blocks).count("<!") == 1
    items = [b["text"]["text"] for b in digest.blocks if b["type"] == "section"][1:]
    assert items == [
        f"• <https://www.gov.uk/news/{n}|Pact {n} &lt;!channel&gt;>\nGOV.UK · 2026-11-27"
        for n in range(3)
    ]
    for i in ids:
        alert = store.get_alert(i)
        assert alert is not None and alert.status is AlertStatus.DELIVERED
        assert alert.delivered_ts == digest.ts
    assert run(d) == DeliveryReport()


def test_interrupted_digest_is_not_posted_twice(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    ids = [enqueue(store, clock, n, DIGEST) for n in range(3)]
    clock.t = MONDAY_9
    slack.drop_after_read(1)
    report = run(deliverer(store, bot(slack), clock))
    assert report.retried == 3 and report.delivered == 0
    assert {a.status for a in store.outbox()} == {AlertStatus.SENDING}
    assert len(slack.messages) == 1  # Slack has it; we did not hear back
    later = enqueue(store, clock, 7, DIGEST)  # queued meanwhile: next digest, not this one
    clock.advance(minutes=5)
    report = run(deliverer(store, bot(slack), clock))  # a restart: new notifier, same DB
    assert (report.delivered, report.digests) == (3, 0)
    assert len(slack.messages) == 1
    for i in ids:
        alert = store.get_alert(i)
        assert alert is not None and alert.status is AlertStatus.DELIVERED
        assert alert.delivered_ts == slack.messages[0].ts
    pending = store.get_alert(later)
    assert pending is not None and pending.status is AlertStatus.PENDING


def test_a_long_digest_is_split_and_pings_once(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    count = DIGEST_ITEMS + 5
    ids = [enqueue(store, clock, n, DIGEST, title="Partnership " * 20) for n in range(count)]
    clock.t = MONDAY_9
    report = run(deliverer(store, bot(slack), clock))
    assert (report.delivered, report.digests) == (count, 2)
    first, second = slack.messages
    assert first.blocks is not None and second.blocks is not None
    assert all(len(m.blocks or []) <= 50 for m in (first, second))
    assert "<!here>" in first.text and "<!" not in second.text + texts(second.blocks)
    assert "part 1 of 2" in texts(first.blocks) and "part 2 of 2" in texts(second.blocks)
    listed = [
        *first.metadata["event_payload"]["alert_ids"],  # type: ignore[index]
        *second.metadata["event_payload"]["alert_ids"],  # type: ignore[index]
    ]
    assert listed == ids


def test_digest_per_rule_and_channel(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    policy = routing(
        mode="digest", digest={"schedule": "0 9 * * *", "timezone": "UTC"}, channel="#policy"
    )
    store.enqueue_alert(entry(1, clock), match(DIGEST, "a"), clock.now())
    store.enqueue_alert(entry(2, clock), match(DIGEST, "b"), clock.now())
    store.enqueue_alert(entry(3, clock), match(policy, "c"), clock.now())
    clock.t = MONDAY_9
    assert run(deliverer(store, bot(slack), clock)).digests == 3
    assert len(slack.messages_in("C0ALERTS")) == 2 and len(slack.messages_in("C0POLICY")) == 1


def test_webhook_digest_is_one_message(slack: SlackEmulator, store: Store, clock: Clock) -> None:
    ids = [enqueue(store, clock, n, DIGEST) for n in range(3)]
    clock.t = MONDAY_9
    report = run(deliverer(store, WebhookNotifier(slack.webhook_url, timeout=1), clock))
    assert (report.delivered, report.digests) == (3, 1)
    [message] = slack.messages
    assert message.via == "webhook" and message.text.startswith("<!here> AI safety")
    assert all(texts(message.blocks).count(f"news/{n}|") == 1 for n in range(3))
    assert {a.status for a in (store.get_alert(i) for i in ids) if a} == {AlertStatus.DELIVERED}


def test_stdout_digest_is_one_printed_block(store: Store, clock: Clock) -> None:
    for n in range(3):
        enqueue(store, clock, n, DIGEST)
    clock.t = MONDAY_9
    out = io.StringIO()
    assert run(deliverer(store, StdoutNotifier(out), clock)).digests == 1
    text = out.getvalue()
    assert text.count("=" * 78) == 1
    assert "Digest for rule partnerships: 3 item(s)" in text and "@here" in text
    assert [line for line in text.splitlines() if line.startswith("- ")] == [
        f"- Partnership {n} on AI safety" for n in range(3)
    ]


# -- digests and stories ---------------------------------------------------------------------


def test_digest_lists_a_story_once_and_its_later_reports_stand_alone(
    slack: SlackEmulator, store: Store, clock: Clock
) -> None:
    reports = [entry(n, clock, title=t, source=s, summary=x) for n, (s, t, x) in enumerate(US_UK)]
    [first] = record(store, clock, reports[0], match(DIGEST))
    [same] = record(store, clock, reports[1], match(DIGEST))  # joins the story, in the digest
    assert same.followup and same.story == first.story
    [urgent] = record(store, clock, reports[2], match(Routing(), "urgent"))
    d = deliverer(store, bot(slack), clock)
    assert run(d).delivered == 1  # not held for the digest, and not a thread reply
    [alone] = slack.messages
    assert alone.thread_ts is None and "FedScoop" in alone.text
    clock.t = MONDAY_9
    report = run(d)
    assert (report.delivered, report.digests, report.updated) == (2, 1, 0)
    digest = slack.messages[-1]
    items = [b for b in digest.blocks or [] if b["type"] == "section"][1:]
    assert len(items) == 1 and "Also reported by Commerce" in items[0]["text"]["text"]
    assert urgent.alert_id is not None
    assert run(d) == DeliveryReport() and slack.updates == []  # a digest is never edited


def test_rules_pass_their_routing_to_the_outbox(tmp_path: Path, store: Store, clock: Clock) -> None:
    rules_dir = write_rules_dir(
        tmp_path,
        [{"name": "GOV.UK", "url": "https://gov.uk/feed"}],
        """
        rules:
          - name: daily
            query: partnership
            mode: digest
            mention: subteam:S0123ABCD
            digest: {schedule: "0 9 * * mon-fri", timezone: Europe/London}
          - name: now
            query: partnership
        """,
    )
    rules = load_rules(rules_dir)
    e = entry(1, clock)
    matches = rules.match(e)
    assert [m.routing.mode for m in matches if m.routing] == ["digest", "immediate"]
    [outcome] = record(store, clock, e, *matches)
    alert = store.get_alert(outcome.alert_id or 0)
    # Both rules share the default channel: the immediate one wins, nothing is held.
    assert alert is not None and alert.rule == "now" and alert.next_attempt_at is None
    assert alert.digest is None and alert.mention is None
    [daily] = record(store, clock, entry(2, clock), matches[0])
    held = store.get_alert(daily.alert_id or 0)
    assert held is not None and held.digest == "daily"
    assert held.mention == "<!subteam^S0123ABCD>" and held.next_attempt_at == MONDAY_9


def test_migration_keeps_existing_alerts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:3]:
        for statement in (s.strip() for s in script.split(";") if s.strip()):
            conn.execute(statement)
    conn.execute("INSERT INTO meta (key, value) VALUES ('instance_id', 'old')")
    conn.execute(
        """INSERT INTO alerts (feed, entry_id, rule, rules, matched_terms, title, summary,
           source, published, created_at)
           VALUES ('f', 'e', 'r', '["r"]', '[]', 'Old', '', 'GOV.UK',
                   '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"""
    )
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    db = Store.open(path)
    try:
        assert db.schema_version == len(MIGRATIONS) == 4
        [old] = db.outbox()
        assert (old.title, old.mention, old.digest, old.next_attempt_at) == (
            "Old",
            None,
            None,
            None,
        )
    finally:
        db.close()
