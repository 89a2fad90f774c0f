"""The one exception tree of the monitor.

Every error a user can cause reads like advice: it names the file, the rule
or the feed, and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class MonitorError(Exception):
    """Base class of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """A feeds or rules file is wrong. Carries where and why."""

    def __init__(
        self,
        reason: str,
        *,
        file: Path | str | None = None,
        rule: str | None = None,
        feed: str | None = None,
        line: int | None = None,
    ) -> None:
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.rule = rule
        self.feed = feed
        self.line = line
        super().__init__(self.describe())

    def describe(self) -> str:
        """Render as ``file:line: rule 'x': reason``."""
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.rule:
            where += f"rule '{self.rule}': "
        if self.feed:
            where += f"feed '{self.feed}': "
        return where + self.reason


class ConfigErrors(MonitorError):
    """Several config errors found in one pass, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.describe() for e in errors))


class QuerySyntaxError(MonitorError):
    """A rule query does not parse. ``position`` is a 0-based offset into ``query``."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.message = message
        self.query = query
        self.position = position
        super().__init__(f"{message} at position {position + 1}: {self.pointer()}")

    def pointer(self) -> str:
        """The query with a marker where the problem is."""
        return f"{self.query[: self.position]}⟨here⟩{self.query[self.position :]}"


class StoreError(MonitorError):
    """The state database cannot be opened, migrated or written."""


class DeliveryError(MonitorError):
    """Sending an alert failed. ``retryable`` says whether trying later can help.

    ``code`` is the service's own error code when there is one (Slack's
    ``invalid_auth``, ``channel_not_found``, ``http_503``…): stable across alerts,
    so a repeated problem can be recognised and logged once.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        code: str | None = None,
    ) -> None:
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.code = code
        super().__init__(message)


class FeedParseError(MonitorError):
    """A fetched body is not a usable feed. Carries the feed URL and why."""

    def __init__(self, reason: str, *, url: str | None = None) -> None:
        self.reason = reason
        self.url = url
        super().__init__(f"{url}: {reason}" if url else reason)
