"""Per-rule routing config: mentions, digests, quiet hours (pure, fixed clocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import ConfigError, ConfigErrors
from monitor.routing import Routing, parse_routing
from monitor.rules import load_rules
from tests.support import write_rules_dir


def routing(**item: object) -> Routing:
    return parse_routing(item, lambda reason: ConfigError(reason))


def test_defaults_are_immediate_with_no_mention() -> None:
    r = routing()
    assert r == Routing() and r.hold_until(datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("given", "markup"),
    [
        ("@here", "<!here>"),
        ("@channel", "<!channel>"),
        ("subteam:S0123ABCD", "<!subteam^S0123ABCD>"),
    ],
)
def test_mentions(given: str, markup: str) -> None:
    assert routing(mention=given).mention == markup


@pytest.mark.parametrize("bad", ["@everyone", "<!channel>", "subteam:nope", "@U123"])
def test_bad_mentions_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="mention"):
        routing(mention=bad)


def test_quiet_hours_across_midnight_in_a_time_zone() -> None:
    r = routing(quiet_hours={"from": "22:00", "to": "07:00", "timezone": "Europe/London"})
    # 23:30 London (winter, = UTC) is quiet until 07:00 London the next morning.
    assert r.hold_until(datetime(2026, 11, 27, 23, 30, tzinfo=UTC)) == datetime(
        2026, 11, 28, 7, 0, tzinfo=UTC
    )
    assert r.hold_until(datetime(2026, 11, 28, 6, 59, tzinfo=UTC)) == datetime(
        2026, 11, 28, 7, 0, tzinfo=UTC
    )
    assert r.hold_until(datetime(2026, 11, 28, 7, 0, tzinfo=UTC)) is None
    # Summer time: 22:30 London is 21:30 UTC, and quiet ends at 06:00 UTC.
    assert r.hold_until(datetime(2026, 7, 1, 21, 30, tzinfo=UTC)) == datetime(
        2026, 7, 2, 6, 0, tzinfo=UTC
    )


def test_quiet_hours_within_a_day() -> None:
    r = routing(quiet_hours={"from": "12:00", "to": "14:00"})
    assert r.hold_until(datetime(2026, 1, 1, 13, 0, tzinfo=UTC)) == datetime(
        2026, 1, 1, 14, 0, tzinfo=UTC
    )
    assert r.hold_until(datetime(2026, 1, 1, 11, 59, tzinfo=UTC)) is None


def test_digest_holds_until_the_next_scheduled_time() -> None:
    r = routing(mode="digest", digest={"schedule": "0 9 * * mon-fri", "timezone": "Asia/Tokyo"})
    friday_night = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # Sat 08:00 in Tokyo
    assert r.hold_until(friday_night) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Mon 09:00


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"mode": "weekly"}, "mode must be"),
        ({"mode": "digest"}, "needs a digest"),
        ({"digest": {"schedule": "0 9 * * *"}}, "mode is not 'digest'"),
        ({"mode": "digest", "digest": {"schedule": "every morning"}}, "not a crontab"),
        (
            {"mode": "digest", "digest": {"schedule": "0 9 * * *", "timezone": "Mars/Base"}},
            "unknown time zone",
        ),
        ({"quiet_hours": {"from": "25:00", "to": "07:00"}}, "time like 22:00"),
        ({"quiet_hours": {"from": "07:00", "to": "07:00"}}, "same time"),
        ({"channel": ""}, "channel must be"),
    ],
)
def test_routing_errors(item: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        routing(**item)


def test_rule_file_routing_errors_name_the_rule(tmp_path: Path) -> None:
    rules_dir = write_rules_dir(
        tmp_path,
        [{"name": "A", "url": "https://a/"}],
        "rules:\n  - name: r\n    query: x\n    mode: digest\n",
    )
    with pytest.raises(ConfigErrors, match="rule 'r': mode: digest needs a digest"):
        load_rules(rules_dir)
    ok = write_rules_dir(
        tmp_path / "ok",
        [{"name": "A", "url": "https://a/"}],
        "rules:\n  - name: r\n    query: x\n    channel: '#x'\n    mention: '@here'\n",
    )
    [rule] = load_rules(ok).rules
    assert rule.channel == "#x" and rule.routing.mention == "<!here>"
