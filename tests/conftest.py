"""Shared fixtures: the loopback feed server and the Slack emulator."""

from __future__ import annotations

from tests.feedserver import feed_server
from tests.slack_emulator import slack

__all__ = ["feed_server", "slack"]
