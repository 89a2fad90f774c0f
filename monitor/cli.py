"""The ``monitor`` command: a thin layer over :mod:`monitor.app`.

Exit codes: 0 success, 1 a problem the user must fix (bad config, unusable
state database, Slack refused the credentials), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from monitor import __version__, logs
from monitor.app import (
    DEFAULT_RULES,
    DEFAULT_STATE,
    Settings,
    env_path,
    load_config,
    make_deliverer,
    make_feed_health,
    run_cycle,
    utc_now,
)
from monitor.dedupe import Backfill
from monitor.errors import ConfigError, ConfigErrors, DeliveryError, StoreError
from monitor.feedhealth import HealthPolicy
from monitor.health import port_from_env
from monitor.models import AlertStatus
from monitor.notify import notifier_from_env
from monitor.pipeline import PollSettings
from monitor.store import FeedState, Outcome, Store

log = logging.getLogger("monitor")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="DIR",
        help=f"feeds and rule files (default: $MONITOR_RULES_DIR or {DEFAULT_RULES}/)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        metavar="PATH",
        help=f"state database (default: $MONITOR_STATE or {DEFAULT_STATE})",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (default: $MONITOR_LOG_LEVEL or INFO)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help text for every command."""
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Watch government and tech-news feeds for new AI safety partnerships "
        "and post each one to Slack exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the service: poll every feed on its schedule and deliver",
        description="Run the service: schedule every feed (interval with jitter), "
        "deliver alerts as they are found, stop cleanly on SIGTERM.",
    )
    _common(run)

    once = sub.add_parser(
        "once",
        help="poll every feed once, deliver what is pending, exit",
        description="Poll every feed once, deliver pending alerts, and exit. "
        "A feed's first poll records its backlog without alerting "
        "unless --backfill says otherwise.",
    )
    _common(once)
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="post nothing, write no state; print one JSON object per alert",
    )
    once.add_argument(
        "--backfill",
        metavar="DURATION|all",
        help="on a feed's first poll, alert on entries published within DURATION "
        "(e.g. 7d) or on all of them",
    )
    once.add_argument(
        "--force", action="store_true", help="poll feeds that are backing off after errors too"
    )

    check = sub.add_parser(
        "check",
        help="validate feeds and rules; exit non-zero on any error",
        description="Validate feeds.yaml and every rule file (schema, query "
        "syntax, names, tags, URLs, intervals, rule examples). "
        "Prints every problem with file, rule and reason.",
    )
    _common(check)
    check.add_argument(
        "--slack",
        action="store_true",
        help="also verify the Slack token or webhook (posts nothing)",
    )

    outbox = sub.add_parser(
        "outbox",
        help="list alerts waiting to be delivered; --retry sends now",
        description="List pending, in-flight and failed alerts with their "
        "last error. --retry makes all of them due and delivers.",
    )
    _common(outbox)
    outbox.add_argument("--retry", action="store_true", help="deliver every undelivered alert now")

    feeds = sub.add_parser(
        "feeds",
        help="show every feed's health: last success, failures, last error, next poll",
        description="Show a status table of every configured feed: when it last worked, "
        "consecutive failures, the last error and when it will be polled next.",
    )
    _common(feeds)

    demo = sub.add_parser(
        "demo",
        help="run the shipped rules over bundled sample feeds, offline",
        description="Serve a few bundled sample feeds on 127.0.0.1 and run one "
        "cycle of the rules against them, printing the alerts. "
        "Needs no network, no Slack and writes no state.",
    )
    demo.add_argument(
        "--rules",
        type=Path,
        metavar="DIR",
        help=f"rule files to use (default: $MONITOR_RULES_DIR or {DEFAULT_RULES}/)",
    )
    demo.add_argument("--log-level", metavar="LEVEL", help="log level (default: WARNING)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    default_level = "WARNING" if args.command == "demo" else None
    logs.configure(os.environ, level=args.log_level or default_level)
    rules_dir = env_path(args.rules, "MONITOR_RULES_DIR", DEFAULT_RULES)
    try:
        if args.command == "check":
            return _check(rules_dir, slack=args.slack)
        if args.command == "demo":
            from monitor.demo import run_demo

            return run_demo(rules_dir, stdout=sys.stdout)
        state = env_path(args.state, "MONITOR_STATE", DEFAULT_STATE)
        if args.command == "once":
            return _once(rules_dir, state, args)
        if args.command == "feeds":
            return _feeds(rules_dir, state, stdout=sys.stdout)
        if args.command == "outbox":
            return _outbox(state, retry=args.retry, stdout=sys.stdout)
        if args.command == "run":
            from monitor.service import run_service

            return run_service(rules_dir, state, env=os.environ)
    except ConfigErrors as exc:
        _print_config_errors(exc)
        return 1
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"state error: {exc}", file=sys.stderr)
        return 1
    except DeliveryError as exc:
        print(f"delivery error: {exc}", file=sys.stderr)
        return 1
    return 2


def _print_config_errors(exc: ConfigErrors) -> None:
    for error in exc.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    print(f"{len(exc.errors)} config error(s); nothing was run", file=sys.stderr)


def _check(rules_dir: Path, *, slack: bool) -> int:
    config = load_config(rules_dir, check_examples=True)
    Settings.from_env(os.environ)
    port_from_env(os.environ)
    HealthPolicy.from_env(os.environ)
    notifier = notifier_from_env(os.environ, stdout=sys.stdout)
    if notifier.mode == "slack-bot" and not os.environ.get("SLACK_CHANNEL"):
        homeless = [r.name for r in config.rules.rules if r.channel is None]
        if homeless:
            raise ConfigError(
                f"SLACK_CHANNEL is not set and rule(s) {', '.join(homeless)} name no channel: "
                "set SLACK_CHANNEL (e.g. #ai-safety) or give each rule a 'channel:'"
            )
    examples = sum(len(r.examples) for r in config.rules.rules)
    line = (
        f"ok: {len(config.feeds.feeds)} feeds, {len(config.rules.rules)} rules in "
        f"{len(config.rules.files)} file(s), {len(config.rules.lists)} term lists, "
        f"{examples} rule examples pass; delivery: {notifier.mode}"
    )
    if slack:
        line += f" ({notifier.verify()})"
    print(line)
    return 0


def _once(rules_dir: Path, state_path: Path, args: argparse.Namespace) -> int:
    config = load_config(rules_dir)
    settings = Settings.from_env(os.environ)
    backfill = None
    if args.backfill:
        try:
            backfill = Backfill.parse(args.backfill)
        except ValueError as exc:
            raise ConfigError(f"--backfill: {exc}") from exc
    poll = PollSettings(
        limits=settings.limits, backfill=backfill, retention=settings.retention, force=args.force
    )
    dry = bool(args.dry_run)
    store = Store.open_snapshot(state_path) if dry else Store.open(state_path)
    try:
        deliverer = feed_health = None
        if not dry:
            notifier = notifier_from_env(os.environ, stdout=sys.stdout)
            deliverer = make_deliverer(store, notifier)
            feed_health = make_feed_health(store, notifier, os.environ)
        report = asyncio.run(
            run_cycle(
                config.feeds.feeds,
                config.rules,
                store,
                settings=settings,
                poll=poll,
                deliverer=deliverer,
                feed_health=feed_health,
            )
        )
        if dry:
            for poll_report in report.polls:
                for outcome in poll_report.outcomes:
                    print(json.dumps(outcome_json(outcome), ensure_ascii=False))
        else:
            store.prune(utc_now(), settings.retention)
    finally:
        store.close()
    log.info("%s", report.summary())
    return 0


def outcome_json(outcome: Outcome) -> dict[str, object]:
    """The ``--dry-run`` JSON object for one alert (or would-be duplicate)."""
    entry = outcome.entry
    data: dict[str, object] = {
        "rule": outcome.match.rule,
        "rules": list(outcome.rules),
        "title": entry.title,
        "link": entry.link,
        "source": entry.source,
        "published": entry.published.isoformat().replace("+00:00", "Z"),
        "matched_terms": list(outcome.match.matched_terms),
        "summary": entry.summary,
        "entry_id": entry.id,
        "channel": outcome.match.channel,
    }
    if outcome.duplicate_of is not None:
        data["duplicate_of"] = outcome.duplicate_of
    return data


def _feeds(rules_dir: Path, state_path: Path, *, stdout: TextIO) -> int:
    config = load_config(rules_dir)
    store = Store.open_snapshot(state_path)
    try:
        rows = [feed_status_row(store.feed_state(feed), utc_now()) for feed in config.feeds.feeds]
    finally:
        store.close()
    header = ("FEED", "LAST SUCCESS", "FAILS", "NEXT POLL", "LAST ERROR")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, str(row[4])]).rstrip(), file=stdout)
    failing = sum(1 for r in rows if r[2] not in (0, "0"))
    print(f"{len(rows)} feeds, {failing} failing", file=stdout)
    return 0


def feed_status_row(state: FeedState, now: datetime) -> tuple[str, str, int, str, str]:
    """One line of ``monitor feeds``: name, last success, failures, next poll, last error."""

    def when(value: datetime | None, empty: str) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else empty

    if state.gone:
        next_poll = "never (gone)"
    elif state.next_poll_at and state.next_poll_at > now:
        next_poll = when(state.next_poll_at, "")
    else:
        next_poll = "on schedule"
    error = (state.last_error or "")[:120]
    return (
        state.name,
        when(state.last_success_at, "never"),
        state.consecutive_failures,
        next_poll,
        error,
    )


def _outbox(state_path: Path, *, retry: bool, stdout: TextIO) -> int:
    if not state_path.exists():
        print(f"no state database at {state_path}; nothing has been queued yet", file=stdout)
        return 0
    store = Store.open(state_path)
    try:
        if retry:
            count = store.requeue(utc_now())
            deliverer = make_deliverer(store, notifier_from_env(os.environ, stdout=stdout))
            report = asyncio.run(deliverer.deliver_pending())
            print(
                f"retried {count} alert(s): delivered {report.delivered}, "
                f"retry later {report.retried}, failed {report.failed}",
                file=sys.stderr,
            )
        alerts = store.outbox()
        if not alerts:
            print("outbox is empty: every alert has been delivered", file=stdout)
            return 0
        print(
            f"{'ID':>6}  {'STATUS':<9} {'TRIES':>5}  {'NEXT TRY (UTC)':<16}  TITLE / LAST ERROR",
            file=stdout,
        )
        for a in alerts:
            nxt = f"{a.next_attempt_at:%Y-%m-%d %H:%M}" if a.next_attempt_at else "now"
            print(
                f"{a.id:>6}  {a.status.value:<9} {a.attempts:>5}  {nxt:<16}  {a.title[:70]}",
                file=stdout,
            )
            if a.last_error:
                print(f"{'':>42}  ↳ {a.last_error[:200]}", file=stdout)
        pending = sum(1 for a in alerts if a.status is not AlertStatus.FAILED)
        print(f"{len(alerts)} undelivered ({pending} will be retried automatically)", file=stdout)
    finally:
        store.close()
    return 0
