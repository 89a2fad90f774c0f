"""The ``monitor`` command: a thin layer over :mod:`monitor.app`.

Exit codes: 0 success, 1 a problem the user must fix (bad config, unusable
state database, Slack refused the credentials), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

import httpx

from monitor import __version__, logs
from monitor.app import (
    DEFAULT_RULES,
    DEFAULT_STATE,
    Config,
    Settings,
    env_path,
    freeze_startup_objects,
    load_config,
    make_deliverer,
    make_feed_health,
    run_cycle,
    utc_now,
)
from monitor.backtest import backtest, render_backtest, stored_entries
from monitor.config import FEEDS_FILE, dump_feeds, load_feeds
from monitor.dedupe import Backfill
from monitor.deliver import FollowupPolicy
from monitor.durations import parse_duration
from monitor.errors import ConfigError, ConfigErrors, DeliveryError, StoreError
from monitor.explain import explain, render_explanation, score_reasons, stored_entry_by_link
from monitor.feedhealth import HealthPolicy
from monitor.fetch import make_client
from monitor.links import canonical_link
from monitor.lock import state_lock
from monitor.models import AlertStatus
from monitor.notify import notifier_from_env
from monitor.opml import OpmlError, export_opml, parse_opml
from monitor.parties import describe_parties
from monitor.pipeline import PollSettings
from monitor.store import FeedState, Outcome, Store
from monitor.stories import render_membership

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
        help="feed health table; discover feeds on a site; import/export OPML",
        description="With no sub-command: a status table of every configured feed (when it "
        "last worked, consecutive failures, the last error, the next poll). "
        "`feeds discover URL` lists the feeds a page offers as feeds.yaml entries; "
        "`feeds import FILE.opml` and `feeds export` move source lists to and from "
        "feed readers.",
    )
    _common(feeds)
    feeds_sub = feeds.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND")
    found = feeds_sub.add_parser(
        "discover",
        help="list the feeds a page advertises, as ready-to-paste feeds.yaml entries",
        description="Fetch a page and list the feeds it advertises (link rel=alternate, "
        "common feed paths) with titles and item counts, printed as feeds.yaml entries; "
        "suggests a type: html entry when the page has no feed but a list of dated links.",
    )
    found.add_argument("url", help="a site or page, e.g. https://www.example.gov/news")
    found.add_argument("--name", help="name to give the suggested feed(s)")
    imported = feeds_sub.add_parser(
        "import",
        help="print feeds.yaml entries for the feeds in an OPML file",
        description="Read an OPML file (from a feed reader) and print feeds.yaml entries for "
        "the feeds not already configured, ready to paste under feeds:.",
    )
    imported.add_argument("file", type=Path, help="the .opml file")
    exported = feeds_sub.add_parser(
        "export",
        help="write the configured feeds as OPML",
        description="Write every feed in feeds.yaml as an OPML 2.0 document.",
    )
    exported.add_argument("--output", type=Path, help="file to write (default: stdout)")
    for child in (imported, exported):
        # SUPPRESS: a value given before the sub-command is not reset to None.
        child.add_argument(
            "--rules",
            type=Path,
            metavar="DIR",
            default=argparse.SUPPRESS,
            help="feeds and rule files (default: $MONITOR_RULES_DIR or rules/)",
        )

    explain = sub.add_parser(
        "explain",
        help="show, rule by rule, why a text or a stored entry matches or not",
        description="Show, for every rule, whether it matches and which clauses and terms "
        "fired: for a text (--text, with optional --summary) or an entry already in the "
        "state database (--link).",
    )
    _common(explain)
    what = explain.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a title to test")
    what.add_argument("--link", help="the link of an entry the monitor has seen")
    explain.add_argument("--summary", default="", help="summary text to test with --text")
    explain.add_argument("--source", default="", help="source (feed) name to test with --text")

    backtest = sub.add_parser(
        "backtest",
        help="replay stored entries through edited rules: what would alert, added, removed",
        description="Replay entries from the state database through the rules in --rules "
        "and compare with the live rules (--live, default $MONITOR_RULES_DIR or rules/): "
        "what would have alerted, and what an edit adds or removes.",
    )
    _common(backtest)
    backtest.add_argument(
        "--since", default="30d", metavar="DURATION", help="how far back to replay (default 30d)"
    )
    backtest.add_argument(
        "--live",
        type=Path,
        metavar="DIR",
        help="the rules in force (default $MONITOR_RULES_DIR or rules/)",
    )

    probe = sub.add_parser(
        "healthcheck",
        help="ask a running `monitor run` on this host whether it is healthy (for HEALTHCHECK)",
        description="Request /healthz from the `monitor run` on 127.0.0.1:$MONITOR_HTTP_PORT "
        "(default 8080); exit 0 when it answers 200, 1 otherwise.",
    )
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")

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
    logs.configure(os.environ, level=getattr(args, "log_level", None) or default_level)
    rules_dir = env_path(getattr(args, "rules", None), "MONITOR_RULES_DIR", DEFAULT_RULES)
    try:
        if args.command == "healthcheck":
            return _healthcheck(timeout=args.timeout)
        if args.command == "check":
            return _check(rules_dir, slack=args.slack)
        if args.command == "demo":
            from monitor.demo import run_demo

            return run_demo(rules_dir, stdout=sys.stdout)
        state = env_path(args.state, "MONITOR_STATE", DEFAULT_STATE)
        if args.command == "once":
            return _once(rules_dir, state, args)
        if args.command == "explain":
            return _explain(rules_dir, state, args, stdout=sys.stdout)
        if args.command == "backtest":
            live = env_path(args.live, "MONITOR_RULES_DIR", DEFAULT_RULES)
            return _backtest(rules_dir, live, state, since=args.since, stdout=sys.stdout)
        if args.command == "feeds":
            if args.feeds_command == "discover":
                return _discover(args.url, name=args.name)
            if args.feeds_command == "import":
                return _import_opml(rules_dir, args.file)
            if args.feeds_command == "export":
                return _export_opml(rules_dir, args.output)
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
    except BrokenPipeError:
        # stdout was closed early (`monitor once --dry-run | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 2


def _healthcheck(*, timeout: float) -> int:
    # The image's HEALTHCHECK runs this often: keep its imports to what it needs.
    from monitor.health import port_from_env

    port = port_from_env(os.environ)
    if port is None:
        print("MONITOR_HTTP_PORT=0: the health endpoint is disabled", file=sys.stderr)
        return 1
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=timeout)
    except httpx.HTTPError as exc:
        print(f"unhealthy: no answer on port {port} ({type(exc).__name__})", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"unhealthy: {response.status_code} {response.text[:300]}", file=sys.stderr)
        return 1
    return 0


def _print_config_errors(exc: ConfigErrors) -> None:
    for error in exc.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    print(f"{len(exc.errors)} config error(s); nothing was run", file=sys.stderr)


def _check(rules_dir: Path, *, slack: bool) -> int:
    from monitor.health import port_from_env

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
    config.clustering(os.environ)
    FollowupPolicy.from_env(os.environ)
    examples = sum(len(r.examples) for r in config.rules.rules)
    line = (
        f"ok: {len(config.feeds.feeds)} feeds, {len(config.rules.rules)} rules in "
        f"{len(config.rules.files)} file(s), {len(config.rules.lists)} term lists, "
        f"{examples} rule examples pass, {len(config.parties.parties)} parties and "
        f"{len(config.parties.agreements)} agreement kinds; delivery: {notifier.mode}"
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
        limits=settings.limits,
        backfill=backfill,
        retention=settings.retention,
        force=args.force,
        clustering=config.clustering(os.environ),
    )
    freeze_startup_objects()
    # Parse workers (if any) are forked first, before the lock and the database are open
    # and before anything starts a thread.
    with settings.parse_pool(len(config.feeds.feeds)) as parser:
        poll = replace(poll, parser=parser)
        if args.dry_run:
            return _once_in(config, state_path, settings, poll, dry=True)
        with state_lock(state_path):
            return _once_in(config, state_path, settings, poll, dry=False)


def _once_in(
    config: Config, state_path: Path, settings: Settings, poll: PollSettings, *, dry: bool
) -> int:
    store = Store.open_snapshot(state_path) if dry else Store.open(state_path)
    try:
        deliverer = feed_health = None
        if not dry:
            notifier = notifier_from_env(os.environ, stdout=sys.stdout)
            deliverer = make_deliverer(store, notifier, env=os.environ)
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
        "score": None if outcome.match.score is None else round(outcome.match.score, 3),
        "summary": entry.summary,
        "entry_id": entry.id,
        "channel": outcome.match.channel,
    }
    data["story"] = outcome.story
    data["parties"] = list(outcome.parties)
    data["agreement"] = outcome.agreement
    if outcome.followup:
        data["followup"] = True  # posted as a reply in the story's thread
    if outcome.story_reason:
        data["story_reason"] = outcome.story_reason
    if outcome.duplicate_of is not None:
        data["duplicate_of"] = outcome.duplicate_of
    return data


def _explain(rules_dir: Path, state_path: Path, args: argparse.Namespace, *, stdout: TextIO) -> int:
    config = load_config(rules_dir)
    feed_tags = {f.name: f.tags for f in config.feeds.feeds}
    if args.link:
        link = canonical_link(args.link) or args.link
        store = Store.open_snapshot(state_path)
        try:
            found = stored_entry_by_link(store.connection, link)
        finally:
            store.close()
        if found is None:
            print(f"no stored entry has the link {link}", file=sys.stderr)
            return 1
        title, summary, source = found.title, found.summary, found.source
        link = found.link
    else:
        title, summary, source, link = args.text, args.summary, args.source, None
    explanations = explain(
        config.rules,
        title=title,
        summary=summary,
        source=source,
        tags=feed_tags.get(source, ()),
        link=link,
    )
    print(render_explanation(explanations), file=stdout)
    reasons = score_reasons(config.rules, title, summary)
    if reasons:
        print(reasons, file=stdout)
    parties = config.parties.find(title, summary)
    agreement = config.parties.agreement(title, summary)
    print(f"\nParties: {describe_parties(parties) or '(none found)'}", file=stdout)
    print(f"Agreement: {agreement or '(no kind recognised)'}", file=stdout)
    if args.link:
        store = Store.open_snapshot(state_path)
        try:
            rows = store.story_membership(link=link)
        finally:
            store.close()
        print("\n" + render_membership(rows), file=stdout)
    return 0


def _backtest(
    rules_dir: Path, live_dir: Path, state_path: Path, *, since: str, stdout: TextIO
) -> int:
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from exc
    candidate = load_config(rules_dir, check_examples=True)
    live = load_config(live_dir)
    feed_tags = {f.name: f.tags for f in live.feeds.feeds}
    if not state_path.exists():
        print(f"no state database at {state_path}: nothing to replay yet", file=sys.stderr)
        return 1
    store = Store.open_snapshot(state_path)
    try:
        entries = list(stored_entries(store.connection, utc_now() - window, feed_tags))
    finally:
        store.close()
    result = backtest(entries, candidate.rules, live.rules)
    print(render_backtest(result), file=stdout)
    return 0


def _discover(url: str, *, name: str | None) -> int:
    # Imported here: it pulls in the HTML parser, which other commands do not need.
    from monitor.discover import DiscoveredFeed, DiscoveryError, discover, render_yaml

    settings = Settings.from_env(os.environ)

    async def go() -> list[DiscoveredFeed]:
        async with make_client(settings.limits) as client:
            return await discover(client, url, settings.limits, now=utc_now())

    try:
        found = asyncio.run(go())
    except DiscoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"no feeds found at {url}", file=sys.stderr)
        return 1
    print(render_yaml(found, name=name), end="")
    return 0


def _import_opml(rules_dir: Path, path: Path) -> int:
    config = load_feeds(rules_dir / FEEDS_FILE)
    try:
        result = parse_opml(path.read_bytes())
    except (OpmlError, OSError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 1
    names = {f.name.casefold() for f in config.feeds}
    urls = {f.url for f in config.feeds}
    fresh = []
    for feed in result.feeds:
        if feed.name.casefold() in names or feed.url in urls:
            print(f"already in feeds.yaml: {feed.name} ({feed.url})", file=sys.stderr)
        else:
            fresh.append(feed)
    for reason in result.skipped:
        print(f"skipped: {reason}", file=sys.stderr)
    if fresh:
        print(dump_feeds(fresh), end="")
    print(
        f"{len(fresh)} new feed(s) to paste under feeds: in {rules_dir / FEEDS_FILE}",
        file=sys.stderr,
    )
    return 0


def _export_opml(rules_dir: Path, output: Path | None) -> int:
    config = load_feeds(rules_dir / FEEDS_FILE)
    data = export_opml(config.feeds)
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
        print(f"wrote {len(config.feeds)} feeds to {output}", file=sys.stderr)
    return 0


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
    with state_lock(state_path) if retry else contextlib.nullcontext():
        return _outbox_in(state_path, retry=retry, stdout=stdout)


def _outbox_in(state_path: Path, *, retry: bool, stdout: TextIO) -> int:
    store = Store.open(state_path)
    try:
        if retry:
            count = store.requeue(utc_now())
            notifier = notifier_from_env(os.environ, stdout=stdout)
            deliverer = make_deliverer(store, notifier, env=os.environ)
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
