"""``monitor demo``: the whole pipeline, offline, in seconds.

Serves the sample feeds bundled in ``monitor/demo_feeds`` on 127.0.0.1, runs
one cycle of the given rules over them with an in-memory database and prints
the alerts to stdout, exactly as ``monitor once`` would with no Slack set.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TextIO

from monitor.app import Settings, make_deliverer, run_cycle
from monitor.dedupe import Backfill
from monitor.models import Feed
from monitor.notify import notifier_from_env
from monitor.parties import PARTIES_FILE, Gazetteer, load_parties
from monitor.pipeline import PollSettings
from monitor.rules import load_rules
from monitor.store import Clustering, Store

DEMO_FEEDS = {
    "gov-uk-dsit.xml": ("Demo GOV.UK DSIT", "application/atom+xml"),
    "nist-news.xml": ("Demo NIST news", "application/rss+xml"),
    "tech-news.xml": ("Demo tech news", "application/rss+xml"),
}


def _documents() -> dict[str, bytes]:
    folder = resources.files("monitor") / "demo_feeds"
    return {name: (folder / name).read_bytes() for name in DEMO_FEEDS}


@contextmanager
def serve_demo_feeds() -> Iterator[str]:
    """Serve the bundled feeds on an ephemeral 127.0.0.1 port; yields the base URL."""
    documents = _documents()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            body = documents.get(name)
            if body is None:
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", DEMO_FEEDS[name][1] + "; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the demo prints alerts, not access logs

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_demo(rules_dir: Path, *, stdout: TextIO) -> int:
    """Run one offline cycle over the sample feeds and print the alerts."""
    rules = load_rules(rules_dir)
    parties = rules_dir / PARTIES_FILE
    gazetteer = load_parties(parties) if parties.exists() else Gazetteer()
    settings = Settings(concurrency=1)  # poll in order, so the output is the same every run
    with serve_demo_feeds() as base:
        feeds = tuple(
            Feed(name=title, url=f"{base}/{file}", tags=("demo",), interval=timedelta(minutes=15))
            for file, (title, _) in DEMO_FEEDS.items()
        )
        store = Store.open_snapshot(Path("/nonexistent/demo.db"))
        try:
            deliverer = make_deliverer(store, notifier_from_env({}, stdout=stdout))
            poll = PollSettings(
                limits=settings.limits,
                backfill=Backfill(None),
                clustering=Clustering(gazetteer),
            )
            report = asyncio.run(
                run_cycle(
                    feeds,
                    rules,
                    store,
                    settings=settings,
                    poll=poll,
                    deliverer=deliverer,
                )
            )
        finally:
            store.close()
    entries = sum(p.entries for p in report.polls)
    alerts = sum(len(p.alerts) for p in report.polls)
    folded = sum(1 for p in report.polls for o in p.outcomes if o.duplicate_of is not None)
    print(
        f"\ndemo: {len(feeds)} sample feeds, {entries} entries, {len(rules.rules)} rules -> "
        f"{alerts} alerts ({folded} duplicate coverage folded). "
        f"Edit {rules_dir}/ and run `monitor demo` again to see the effect.",
        file=stdout,
    )
    return 0
