"""Crash loop: SIGKILL the real ``monitor`` many times and check no alert is lost or doubled.

Usage::

    .venv/bin/python bench/chaos.py --kills 200 --mode bot       # exactly once
    .venv/bin/python bench/chaos.py --kills 200 --mode webhook   # at least once
    .venv/bin/python bench/chaos.py --kills 20 --seed 7 -v       # quick look
    .venv/bin/python bench/chaos.py --kills 200 --fault-rate 0.3 # fewer Slack faults

What it does, all on 127.0.0.1 and in a temporary directory:

1. Starts a feed server (three RSS feeds) and the Slack emulator
   (``tests/feedserver.py``, ``tests/slack_emulator.py``), writes a rules
   directory whose rule matches titles containing "partnership", and runs one
   clean ``monitor once`` so every feed's first poll (which only records the
   backlog) is behind us.
2. Then, life after life: maybe adds new matching entries (unique titles) and
   other entries to the feeds, maybe queues Slack faults (429, 5xx, an
   ``internal_error`` answer, a connection dropped after Slack read the
   request, an answer held back), starts ``monitor once`` or (one life in
   five) ``monitor run``, and SIGKILLs it at a chosen moment:

   - ``fetch``: while the feed server holds a feed request open;
   - ``parse-write``: 0–40 ms after a feed answered (parse, match, the
     database write);
   - ``slack-held``: Slack has recorded the message and holds its answer back
     (the "Slack got it, we never heard" window; the held answer is queued
     for the next Slack call, so when that call is a lookup the kill lands
     right after an ordinary post instead);
   - ``slack-answered``: right after Slack recorded a message (the answer races
     our record of it);
   - ``random``: 0–3 s after start.

   A moment that does not come within a few seconds (nothing to post, say)
   falls back to a random kill and is counted as such. A life that ends by
   itself before its kill is a clean exit, not a kill.
3. Settles: no more faults, a clean ``monitor once --force`` and ``monitor
   outbox --retry`` until the outbox is empty.
4. Checks every entry that should have alerted against the messages Slack
   holds (bot token: by ``metadata.event_payload.alert_id``, thread replies
   included, mapped to titles through the database; webhook: by the header
   block) and the database (one delivered alert per entry, integrity ok),
   prints the scorecard and exits 1 when the guarantee of the mode is broken:
   bot mode exactly once, webhook mode at least once.

The harness needs nothing but the repository's virtualenv. Every server and
child process stops by itself: each life is bounded in time, the whole run
by ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: find monitor/ and tests/
    sys.path.insert(0, str(ROOT))

from tests.feedserver import FeedServer, RequestInfo, Responder, rss  # noqa: E402
from tests.slack_emulator import SlackEmulator  # noqa: E402
from tests.support import pid_running, write_rules_dir  # noqa: E402

FEEDS = ("/gov.xml", "/news.xml", "/lab.xml")
CHANNEL = "#alerts"
CHANNEL_ID = "C0ALERTS"
MOMENTS = ("fetch", "parse-write", "slack-held", "slack-answered", "random")
RULES = """
rules:
  - name: chaos-partnerships
    description: Any title announcing a partnership.
    query: 'title:partnership'
"""
MAX_DELAY = 3.0  # seconds: the latest random kill
MOMENT_WAIT = 6.0  # seconds to wait for a targeted moment before a random kill instead
LIFE_LIMIT = 60.0  # seconds: no life may take longer (a clean one is killed and reported)
HANG_SECONDS = 1.5  # how long Slack holds a "held" answer
SETTLE_LIMIT = 900.0  # seconds for one settling command (the outbox drains at 1 post/s)


@dataclass
class Scorecard:
    """The numbers a crash loop produces; :meth:`render` prints them."""

    mode: str
    seed: int
    fault_rate: float = 0.8
    lives: int = 0
    kills: int = 0
    clean_exits: int = 0
    run_lives: int = 0
    kills_by_moment: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0  # targeted kills whose moment never came (killed at random instead)
    write_commits: Counter[bool] = field(default_factory=Counter)  # parse-write: committed?
    faults: Counter[str] = field(default_factory=Counter)
    expected: int = 0
    once: int = 0  # expected entries posted exactly once
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)  # title -> times posted
    unexpected: list[str] = field(default_factory=list)  # posted but never expected
    outbox_left: int = 0
    posted_in_loop: int = 0  # messages Slack held when the last kill was done
    db_problems: list[str] = field(default_factory=list)
    nonzero_exits: list[str] = field(default_factory=list)  # clean lives that failed
    elapsed: float = 0.0
    stopped_early: str = ""
    parse_processes: int | None = None  # MONITOR_PARSE_PROCESSES of the lives (None: auto)
    leftovers: list[int] = field(default_factory=list)  # monitor processes alive at the end

    @property
    def duplicates(self) -> int:
        """Extra posts: a title posted three times counts two."""
        return sum(n - 1 for n in self.duplicated.values())

    @property
    def passed(self) -> bool:
        """The mode's guarantee held (bot: exactly once; webhook: at least once)."""
        ok = not self.lost and not self.unexpected and not self.db_problems
        ok = ok and not self.nonzero_exits and not self.stopped_early and not self.leftovers
        if self.mode == "bot":
            ok = ok and not self.duplicated and self.outbox_left == 0
        return ok

    def render(self) -> str:
        """The scorecard as printed by the command line."""
        guarantee = "exactly once" if self.mode == "bot" else "at least once"
        moments = ", ".join(f"{m} {self.kills_by_moment[m]}" for m in MOMENTS)
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        lines = [
            f"chaos scorecard: mode={self.mode} ({guarantee}), seed={self.seed}, "
            f"fault rate {self.fault_rate:g}/life",
            f"  lives:        {self.lives} ({self.run_lives} `monitor run`, the rest "
            f"`monitor once`); kills {self.kills}, clean exits {self.clean_exits}",
            f"  kills at:     {moments} (moment never came, killed at random: {self.fallbacks})",
            f"  parse-write:  the poll's write had committed before the kill "
            f"{self.write_commits[True]}, had not {self.write_commits[False]}",
            f"  slack faults: {faults}",
            f"  should alert: {self.expected}",
            f"  posted once:  {self.once} ({self.posted_in_loop} posts during the kill loop, "
            "the rest once faults and kills stopped)",
            f"  lost:         {len(self.lost)}",
            f"  duplicated:   {len(self.duplicated)} entries, {self.duplicates} extra posts",
            f"  unexpected:   {len(self.unexpected)}",
            f"  outbox left:  {self.outbox_left}",
            f"  database:     {'ok' if not self.db_problems else '; '.join(self.db_problems)}",
            "  parse in:     "
            + (
                "auto"
                if self.parse_processes is None
                else f"{self.parse_processes} processes"
                if self.parse_processes
                else "threads"
            )
            + f"; monitor processes left running (orphaned workers): {len(self.leftovers)}",
            f"  elapsed:      {self.elapsed:.0f} s",
        ]
        if self.nonzero_exits:
            lines.append(f"  failed lives: {len(self.nonzero_exits)}: {self.nonzero_exits[:3]}")
        if self.stopped_early:
            lines.append(f"  stopped early: {self.stopped_early}")
        for title in self.lost[:10]:
            lines.append(f"  LOST: {title}")
        for title, n in list(self.duplicated.items())[:10]:
            lines.append(f"  POSTED {n}x: {title}")
        lines.append(f"RESULT: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


class ChaosFeeds:
    """Three feeds whose items grow over time, served fresh on every request.

    ``hold`` makes the next feed request wait (so a kill lands during the
    fetch); ``answered`` counts requests that got their body.
    """

    def __init__(self, server: FeedServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._items: dict[str, list[dict[str, object]]] = {path: [] for path in FEEDS}
        self._hold = threading.Event()
        self.holding = threading.Event()  # set while a request is being held
        self.asked = 0
        self.answered = 0
        self._serial = 0
        self._start = datetime.now(UTC) - timedelta(days=1)
        for path in FEEDS:
            server.route(path, self._serve)

    def add(self, path: str, title: str, summary: str = "") -> None:
        """Put a new item at the top of the feed at ``path``."""
        with self._lock:
            self._serial += 1
            n = self._serial
            self._items[path].insert(
                0,
                {
                    "title": title,
                    "guid": f"chaos-{n}",
                    "link": f"https://chaos.example/{n}",
                    "description": summary,
                    "pubDate": self._start + timedelta(minutes=n),
                },
            )

    def hold_next(self) -> None:
        """Hold the next feed request open (up to two seconds)."""
        self.holding.clear()
        self._hold.set()

    def release(self) -> None:
        """Stop holding requests."""
        self._hold.clear()

    def _serve(self, request: RequestInfo, responder: Responder) -> None:
        with self._lock:
            self.asked += 1
            body = rss(list(self._items[request.path]), title=f"Chaos {request.path}")
        if self._hold.is_set():
            self._hold.clear()
            self.holding.set()
            responder.wait(2.0)
        responder.send(200, body)
        with self._lock:
            self.answered += 1


@dataclass
class _World:
    """Everything one crash loop uses."""

    workdir: Path
    rules_dir: Path
    state: Path
    feeds: ChaosFeeds
    slack: SlackEmulator
    env: dict[str, str]
    expected: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print


def _env(slack: SlackEmulator, mode: str, parse_processes: int | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONITOR_"))}
    base.update(
        {
            "PYTHONPATH": str(ROOT),
            "MONITOR_HTTP_PORT": "0",
            "MONITOR_FETCH_DEADLINE": "5",
            "MONITOR_SHUTDOWN_GRACE": "1",
            "MONITOR_LOG_LEVEL": "WARNING",
        }
    )
    if parse_processes is not None:
        base["MONITOR_PARSE_PROCESSES"] = str(parse_processes)
    if mode == "bot":
        base.update(
            {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_API_URL": slack.api_url,
                "SLACK_CHANNEL": CHANNEL,
            }
        )
    else:
        base["SLACK_WEBHOOK_URL"] = slack.webhook_url
    return base


def _command(world: _World, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", *args]


def _once(
    world: _World, *extra: str, timeout: float = LIFE_LIMIT
) -> subprocess.CompletedProcess[str]:
    """One clean, unkilled command against the state (``once`` unless ``extra`` says)."""
    args = list(extra) or ["once"]
    if args[0] in ("once", "run"):
        args += ["--rules", str(world.rules_dir)]
    args += ["--state", str(world.state)]
    return subprocess.run(
        _command(world, *args),
        env=world.env,
        cwd=world.workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _queue_faults(slack: SlackEmulator, rng: random.Random, card: Scorecard, rate: float) -> None:
    """Queue zero, one or two Slack misbehaviours for the next calls (``rate`` on average)."""
    for _ in range(sum(rng.random() < rate / 2 for _ in range(2))):
        kind = rng.choice(("rate_limit", "server_error", "internal_error", "drop_after_read"))
        if kind == "rate_limit":
            slack.rate_limit(rng.choice((1, 2)), retry_after=rng.choice(("1", "2")))
        elif kind == "server_error":
            slack.server_error(1, status=rng.choice((500, 502, 503)))
        elif kind == "internal_error":
            slack.fail("internal_error")
        else:
            slack.drop_after_read(1)
        card.faults[kind] += 1


def _clear_faults(slack: SlackEmulator) -> None:
    """Forget queued faults (the emulator has no public call for it yet)."""
    state = slack._state  # reaching into the emulator: a test helper
    with state.lock:
        state.faults.clear()


_SYLLABLES = ("ka", "lo", "mi", "ru", "te", "vo", "zi", "ne", "pa", "su", "do", "fe", "gu", "xi")


def _word(rng: random.Random) -> str:
    """A made-up word: no party, country or institute name, so no two entries share a story."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(3, 4)))


def _grow_feeds(world: _World, rng: random.Random, life: int, *, must_alert: bool) -> list[str]:
    """Add this life's entries: often one new matching entry, sometimes noise; returns titles.

    Titles and summaries are made of random made-up words, so story clustering
    never folds two of them together: each must be its own message.
    """
    count = 1 if must_alert or rng.random() < 0.5 else 0
    titles: list[str] = []
    for k in range(count):
        words = [_word(rng) for _ in range(5)]
        title = f"{words[0].title()} {words[1]} partnership {words[2]} {words[3]} {life}-{k}"
        summary = " ".join(_word(rng) for _ in range(8))
        world.feeds.add(rng.choice(FEEDS), title, summary)
        world.expected.append(title)
        titles.append(title)
    if rng.random() < 0.3:
        noise = f"{_word(rng).title()} {_word(rng)} weather {life}"
        world.feeds.add(rng.choice(FEEDS), noise, _word(rng))
        titles.append(noise)
    return titles


def _recorded(state: Path, titles: Sequence[str]) -> bool | None:
    """Whether any of ``titles`` is in the seen table (None when there is nothing to ask)."""
    if not titles:
        return None
    marks = ",".join("?" * len(titles))
    try:
        with sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True) as conn:
            row = conn.execute(f"SELECT count(*) FROM seen WHERE title IN ({marks})", titles)
            return bool(row.fetchone()[0])
    except sqlite3.Error:
        return None


def _wait_for(condition: Callable[[], bool], timeout: float, proc: subprocess.Popen[str]) -> bool:
    """Poll ``condition`` every few ms until true (True), the process ends or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.003)
    return False


def _live(world: _World, rng: random.Random, card: Scorecard, *, moment: str, run: bool) -> str:
    """Start one life, kill it at ``moment``; returns "killed", "fallback" or "exited"."""
    slack, feeds = world.slack, world.feeds
    if moment == "slack-held":
        slack.hang(1)
        card.faults["hang"] += 1
    if moment == "fetch":
        feeds.hold_next()
    asked, messages = feeds.answered, len(slack.messages)
    args = ["run"] if run else ["once", "--backfill", "all"]
    args += ["--rules", str(world.rules_dir), "--state", str(world.state)]
    errors = world.workdir / "life.stderr"
    with errors.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            _command(world, *args),
            env=world.env,
            cwd=world.workdir,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
    try:
        hit = True
        if moment == "fetch":
            hit = _wait_for(feeds.holding.is_set, MOMENT_WAIT, proc)
        elif moment == "parse-write":
            hit = _wait_for(lambda: feeds.answered > asked, MOMENT_WAIT, proc)
            if hit:
                time.sleep(rng.uniform(0.0, 0.04))
        elif moment in ("slack-held", "slack-answered"):
            hit = _wait_for(lambda: len(slack.messages) > messages, MOMENT_WAIT, proc)
        if (moment == "random" or not hit) and proc.poll() is None:
            _wait_for(lambda: False, rng.uniform(0.0, MAX_DELAY), proc)
        if proc.poll() is not None:
            return _exited(proc, card, errors)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return "killed" if hit or moment == "random" else "fallback"
    finally:
        feeds.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _exited(proc: subprocess.Popen[str], card: Scorecard, errors: Path) -> str:
    """A life that ended by itself: fine for ``once`` with exit 0, a failure otherwise."""
    code = proc.wait(10)
    run = "run" in proc.args  # type: ignore[operator]
    if code != 0 or run:
        last = errors.read_text("utf-8", "replace").strip().splitlines()[-1:]
        card.nonzero_exits.append(f"{'run' if run else 'once'} exit {code}: {last}")
    return "exited"


def _settle(world: _World, card: Scorecard) -> None:
    """No more faults: poll everything once more and retry the outbox until it is empty."""
    _clear_faults(world.slack)
    world.feeds.release()
    done = _once(world, "once", "--force", timeout=SETTLE_LIMIT)
    if done.returncode != 0:
        card.nonzero_exits.append(f"settle once: {done.stderr.strip()[-300:]}")
    for _ in range(6):
        listing = _once(world, "outbox")
        if "outbox is empty" in listing.stdout:
            return
        _once(world, "outbox", "--retry", timeout=SETTLE_LIMIT)
    listing = _once(world, "outbox")
    card.outbox_left = max(0, len(listing.stdout.splitlines()) - 2)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _posted_titles(slack: SlackEmulator) -> list[str]:
    titles = []
    for message in slack.messages_in(CHANNEL_ID):
        header = (message.blocks or [{}])[0].get("text", {}).get("text", "")
        titles.append(_unescape(header))
    return titles


def _check(world: _World, card: Scorecard) -> None:
    """Compare what should have alerted with what Slack holds and what the database says.

    Bot mode counts posts by the alert id in each message's metadata (thread
    replies included), mapped to titles through the database; webhook mode,
    which has no metadata, counts message headers.
    """
    with sqlite3.connect(world.state) as conn:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            card.db_problems.append("integrity_check failed")
        rows = conn.execute("SELECT id, title, status FROM alerts").fetchall()
    ids_by_title: dict[str, list[int]] = {}
    for alert_id, title, _ in rows:
        ids_by_title.setdefault(title, []).append(int(alert_id))
    expected = set(world.expected)
    card.expected = len(expected)
    if card.mode == "bot":
        per_id = Counter(
            int((m.metadata or {}).get("event_payload", {}).get("alert_id", -1))
            for m in world.slack.messages_in(CHANNEL_ID)
        )
        posts = {t: sum(per_id[i] for i in ids_by_title.get(t, [])) for t in expected}
        known = {int(r[0]) for r in rows}
        card.unexpected = sorted(f"alert id {i}" for i in per_id if i not in known)
    else:
        headers = Counter(_posted_titles(world.slack))
        posts = {t: headers[t] for t in expected}
        card.unexpected = sorted(t for t in headers if t not in expected)
    card.lost = sorted(t for t, n in posts.items() if n == 0)
    card.duplicated = {t: n for t, n in posts.items() if n > 1}
    card.once = sum(1 for n in posts.values() if n == 1)
    queued_twice = sorted(t for t, ids in ids_by_title.items() if len(ids) > 1)
    if queued_twice:
        card.db_problems.append(f"{len(queued_twice)} entries queued more than once")
    undelivered = [t for _, t, status in rows if status != "delivered"]
    if undelivered:
        card.db_problems.append(f"{len(undelivered)} alerts not delivered after settling")


def run_chaos(
    *,
    kills: int,
    mode: str = "bot",
    seed: int = 1,
    run_share: float = 0.2,
    fault_rate: float = 0.8,
    max_seconds: float = 1800.0,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
    parse_processes: int | None = None,
) -> Scorecard:
    """Run one crash loop of ``kills`` SIGKILLs and return its scorecard."""
    if mode not in ("bot", "webhook"):
        raise ValueError(f"mode must be bot or webhook, got {mode!r}")
    rng = random.Random(seed)
    if not 0 <= fault_rate <= 2:
        raise ValueError(f"fault_rate must be between 0 and 2, got {fault_rate!r}")
    card = Scorecard(mode=mode, seed=seed, fault_rate=fault_rate, parse_processes=parse_processes)
    say = log or (lambda _line: None)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-", dir=workdir) as tmp:
        server = FeedServer().start()
        slack = SlackEmulator(hang_seconds=HANG_SECONDS, channels={CHANNEL: CHANNEL_ID})
        slack.up()
        try:
            feeds = ChaosFeeds(server)
            rules_dir = write_rules_dir(
                Path(tmp),
                [
                    {"name": f"Feed {p.strip('/').split('.')[0]}", "url": server.url(p)}
                    for p in FEEDS
                ],
                RULES,
            )
            world = _World(
                workdir=Path(tmp),
                rules_dir=rules_dir,
                state=Path(tmp) / "state" / "monitor.db",
                feeds=feeds,
                slack=slack,
                env=_env(slack, mode, parse_processes),
                log=say,
            )
            for path in FEEDS:  # a backlog the first poll records without alerting
                feeds.add(path, f"Old news on {path}")
            first = _once(world)
            if first.returncode != 0:
                raise RuntimeError(f"the first clean run failed: {first.stderr[-2000:]}")
            _loop(
                world,
                rng,
                card,
                kills=kills,
                run_share=run_share,
                fault_rate=fault_rate,
                deadline=started + max_seconds,
            )
            card.posted_in_loop = len(slack.messages)
            _settle(world, card)
            _check(world, card)
            # Parse workers of killed lives must not outlive them (they exit when their
            # parent's end of the task pipe closes).
            time.sleep(1)
            card.leftovers = _processes_using(rules_dir)
        finally:
            slack.down()
            server.stop()
    card.elapsed = time.monotonic() - started
    return card


def _processes_using(rules_dir: Path) -> list[int]:
    """Live processes (not zombies) whose command line names ``rules_dir``."""
    found: list[int] = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(rules_dir) in cmdline and pid_running(int(proc.name)):
            found.append(int(proc.name))
    return found


def _loop(
    world: _World,
    rng: random.Random,
    card: Scorecard,
    *,
    kills: int,
    run_share: float,
    fault_rate: float,
    deadline: float,
) -> None:
    max_lives = kills * 3 + 10
    while card.kills < kills:
        if card.lives >= max_lives:
            card.stopped_early = f"{card.lives} lives for {card.kills} kills"
            return
        if time.monotonic() > deadline:
            card.stopped_early = f"time limit reached after {card.kills} kills"
            return
        card.lives += 1
        moment = MOMENTS[card.lives % len(MOMENTS)]
        run = rng.random() < run_share
        card.run_lives += run
        titles = _grow_feeds(world, rng, card.lives, must_alert=moment != "random")
        _queue_faults(world.slack, rng, card, fault_rate)
        outcome = _live(world, rng, card, moment=moment, run=run)
        if moment == "parse-write" and outcome == "killed":
            committed = _recorded(world.state, titles)
            if committed is not None:
                card.write_commits[committed] += 1
        if outcome == "exited":
            card.clean_exits += 1
        else:
            card.kills += 1
            card.kills_by_moment[moment if outcome == "killed" else "random"] += 1
            card.fallbacks += outcome == "fallback"
        world.log(
            f"life {card.lives:4d} {'run ' if run else 'once'} {moment:<14} {outcome:<8} "
            f"kills {card.kills}/{kills} posted {len(world.slack.messages)} "
            f"expected {len(world.expected)}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the loop, print the scorecard, exit 1 unless it passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs to deliver (200)")
    parser.add_argument("--mode", choices=("bot", "webhook"), default="bot")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--run-share", type=float, default=0.2, help="share of `monitor run` lives (0.2)"
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.8,
        help="Slack faults queued per life, on average, 0-2 (0.8)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="stop after this long (1800)"
    )
    parser.add_argument(
        "--parse-processes",
        type=int,
        help="MONITOR_PARSE_PROCESSES for every life (default: auto, i.e. threads for 3 feeds)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per life")
    args = parser.parse_args(argv)
    card = run_chaos(
        kills=args.kills,
        mode=args.mode,
        seed=args.seed,
        run_share=args.run_share,
        fault_rate=args.fault_rate,
        max_seconds=args.max_seconds,
        parse_processes=args.parse_processes,
        log=(lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(card.render())
    return 0 if card.passed else 1


if __name__ == "__main__":
    sys.exit(main())
