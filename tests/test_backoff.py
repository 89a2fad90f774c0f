"""next_poll_after: a pure function of its arguments, tested with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.backoff import DEFAULT_CAP, RETRY_AFTER_CAP, next_poll_after

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def wait(
    failures: int,
    retry_after: float | None = None,
    interval: timedelta = 15 * MIN,
    **kwargs: timedelta,
) -> timedelta:
    return next_poll_after(NOW, interval, failures, retry_after, **kwargs) - NOW


def test_no_failure_waits_one_interval() -> None:
    assert wait(0) == 15 * MIN


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 15 * MIN), (2, 30 * MIN), (3, 60 * MIN), (4, 120 * MIN), (5, 240 * MIN)],
)
def test_failures_double_the_wait(failures: int, expected: timedelta) -> None:
    assert wait(failures) == expected


def test_backoff_is_capped() -> None:
    assert wait(6) == DEFAULT_CAP  # 480 min would exceed 6 h
    assert wait(10_000) == DEFAULT_CAP  # huge counts neither overflow nor loop for long


def test_cap_never_shortens_the_interval() -> None:
    assert wait(0, interval=timedelta(hours=12)) == timedelta(hours=12)
    assert wait(5, interval=timedelta(hours=12)) == timedelta(hours=12)


def test_custom_cap() -> None:
    assert wait(3, cap=timedelta(minutes=40)) == 40 * MIN


def test_longer_retry_after_wins() -> None:
    assert wait(1, retry_after=3600) == timedelta(hours=1)
    assert wait(0, retry_after=3600) == timedelta(hours=1)


def test_shorter_retry_after_does_not_speed_polling_up() -> None:
    assert wait(3, retry_after=5) == 60 * MIN
    assert wait(1, retry_after=0) == 15 * MIN


def test_retry_after_is_capped_so_a_server_cannot_park_a_feed() -> None:
    assert wait(1, retry_after=10 * 365 * 86400) == RETRY_AFTER_CAP
    assert wait(1, retry_after=float("inf")) == RETRY_AFTER_CAP
    assert wait(1, retry_after=7200, retry_after_cap=timedelta(hours=1)) == timedelta(hours=1)


def test_retry_after_beyond_backoff_cap_but_within_its_own_cap() -> None:
    assert wait(1, retry_after=10 * 3600) == timedelta(hours=10)


@pytest.mark.parametrize("bad", [-30.0, float("nan")])
def test_nonsense_retry_after_is_ignored(bad: float) -> None:
    assert wait(2, retry_after=bad) == 30 * MIN


def test_result_is_now_plus_delay_in_the_same_zone() -> None:
    result = next_poll_after(NOW, 15 * MIN, 0, None)
    assert result == datetime(2025, 3, 1, 12, 15, tzinfo=UTC)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("interval", "failures", "cap"),
    [
        (timedelta(0), 0, DEFAULT_CAP),
        (-MIN, 0, DEFAULT_CAP),
        (MIN, -1, DEFAULT_CAP),
        (MIN, 0, timedelta(0)),
    ],
)
def test_invalid_arguments(interval: timedelta, failures: int, cap: timedelta) -> None:
    with pytest.raises(ValueError):
        next_poll_after(NOW, interval, failures, None, cap=cap)
