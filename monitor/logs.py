"""Logging to stderr: readable on a terminal, JSON lines when asked, secrets redacted.

stdout is reserved for what a command is asked to print (alerts, JSON lines,
tables), so logs never mix into a pipe.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

SECRET_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL")

# Ids of what is being worked on (alert, feed, rule), added to every record logged meanwhile.
log_ids: ContextVar[dict[str, object]] = ContextVar("log_ids", default={})  # noqa: B039


class ContextIds(logging.Filter):
    """Copy the current :data:`log_ids` onto each record (explicit ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_ids.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
            exc_text = exc_text.replace(secret, "[redacted]")
        record.msg, record.args = text, None
        record.exc_text = exc_text or None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` ids."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_text or record.exc_info:
            data["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(data, default=str, ensure_ascii=False)


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every secret the environment carries, directly or through a ``*_FILE`` variable."""
    values = []
    for name in SECRET_VARIABLES:
        if env.get(name):
            values.append(env[name].strip())
        path = env.get(f"{name}_FILE")
        if path:
            try:
                with open(path, encoding="utf-8") as handle:
                    values.append(handle.read().strip())
            except OSError:
                pass  # the notifier reports an unreadable secret file, naming the variable
    return [v for v in values if v]


def configure(
    env: Mapping[str, str], *, level: str | None = None, stream: TextIO | None = None
) -> None:
    """Set up the root logger from ``MONITOR_LOG_LEVEL`` / ``MONITOR_LOG_FORMAT``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if env.get("MONITOR_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    handler.addFilter(ContextIds())
    handler.addFilter(RedactSecrets(secret_values(env)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    name = (level or env.get("MONITOR_LOG_LEVEL") or "INFO").upper()
    root.setLevel(getattr(logging, name, logging.INFO))
    # httpx logs every request at INFO; that is our job, at our level.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
