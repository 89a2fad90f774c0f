"""Shared fixtures: the loopback feed server and the Slack emulator.

Every test runs without the proxy variables of the machine running the suite:
fetches go to servers on 127.0.0.1, and the tests that are about proxies set
their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.feedserver import feed_server
from tests.slack_emulator import slack

__all__ = ["feed_server", "no_proxy_environment", "slack"]

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unset ``http_proxy`` and friends (either case) for the test."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    yield
