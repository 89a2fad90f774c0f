"""The floor: a bare concurrent conditional fetch of every URL, feedparser on changed bodies only.

Usage::

    .venv/bin/python bench/floor.py --urls urls.txt --state validators.json [--concurrency 10]

This is the least a feed poller on this stack (httpx + feedparser) must do
per cycle, with nothing else: no config, no database, no normalising,
matching or delivery. ETags and Last-Modified values are kept in the
``--state`` JSON file between runs (like a poller's database would keep
them), so the second run sends conditional requests and parses nothing that
answered ``304``. Bodies are parsed inline as they arrive, on the event loop:
the cheapest single-process arrangement (no thread hand-off), acceptable
here because the floor does not care about loop latency.

The harness (``bench/cycle.py``) runs this as a subprocess and measures its
wall time, CPU time and peak memory exactly as it measures ``monitor once``.
Prints one JSON line: ``{"fetched", "not_modified", "parsed", "entries", "errors"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import feedparser
import httpx


async def poll(
    urls: Sequence[str], validators: dict[str, list[str]], concurrency: int
) -> dict[str, int]:
    """Fetch every URL (at most ``concurrency`` at once) and parse what changed."""
    counts = {"fetched": 0, "not_modified": 0, "parsed": 0, "entries": 0, "errors": 0}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def one(url: str) -> None:
            headers = {}
            etag, modified = validators.get(url, ["", ""])
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
            async with gate:
                try:
                    response = await client.get(url, headers=headers)
                except httpx.HTTPError:
                    counts["errors"] += 1
                    return
            counts["fetched"] += 1
            if response.status_code == 304:
                counts["not_modified"] += 1
                return
            if response.status_code != 200:
                counts["errors"] += 1
                return
            validators[url] = [
                response.headers.get("etag", ""),
                response.headers.get("last-modified", ""),
            ]
            lowered = {k.lower(): v for k, v in response.headers.items()}
            lowered.pop("content-encoding", None)
            parsed = feedparser.parse(io.BytesIO(response.content), response_headers=lowered)
            counts["parsed"] += 1
            counts["entries"] += len(parsed.entries)

        await asyncio.gather(*(one(u) for u in urls))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: one floor cycle over the URLs in ``--urls``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=Path, required=True, help="file with one URL a line")
    parser.add_argument("--state", type=Path, required=True, help="JSON file of validators")
    parser.add_argument("--concurrency", type=int, default=10, help="requests at once (pool size)")
    args = parser.parse_args(argv)
    urls = [line.strip() for line in args.urls.read_text().splitlines() if line.strip()]
    validators: dict[str, list[str]] = (
        json.loads(args.state.read_text()) if args.state.exists() else {}
    )
    counts = asyncio.run(poll(urls, validators, args.concurrency))
    args.state.write_text(json.dumps(validators))
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
