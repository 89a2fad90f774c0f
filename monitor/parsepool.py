"""Where feed bodies are parsed: worker processes, or threads for small setups.

feedparser is pure Python: ~12 ms of CPU for a 35 KB feed. Parsed in threads
of the monitor's own process, it holds the GIL the event loop needs, so with
hundreds of changed feeds the loop wakes up late (timers, health checks,
Slack sends) even though no code of ours blocks it. Worker processes take the
parse off the loop's interpreter entirely; only the small ``Entry`` records
come back.

Workers are forked once, when the pool starts, which the commands do before
any other thread exists (forking a threaded process can copy a held lock).
A worker that dies (a hostile feed exhausting memory, a crash in a C
extension) fails only the feed it was parsing: the pool is replaced and the
feed is retried on its next poll. A parse that runs past ``timeout`` (a
pathological document) has its workers killed the same way, so one feed can
never hold a worker for good. Platforms without ``fork`` use threads, which
cannot be stopped: there the limit does not apply.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from monitor.errors import FeedParseError

log = logging.getLogger(__name__)

T = TypeVar("T")

AUTO_MIN_FEEDS = 50  # below this, threads: a process pool is not worth its memory
MAX_PROCESSES = 16
PARSE_TIMEOUT = 60.0  # seconds one body may take in a worker (feedparser: ~0.3 s per MB)
PARENT_CHECK = 0.5  # seconds between a worker's checks that the monitor is still alive


def auto_processes(feed_count: int, cpus: int | None = None) -> int:
    """How many parse processes ``MONITOR_PARSE_PROCESSES=auto`` means for ``feed_count`` feeds.

    None (threads) for a small feed list; otherwise one per CPU, at most 4.
    """
    if feed_count < AUTO_MIN_FEEDS:
        return 0
    return max(1, min(4, cpus if cpus is not None else (os.cpu_count() or 1)))


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # concurrent.futures has no public way to stop a running task; its worker processes
    # are in ``_processes`` (pid -> Process) in every Python version we support.
    workers = getattr(pool, "_processes", None) or {}
    for process in list(workers.values()):
        process.kill()


def _worker_init() -> None:
    # The parent decides when to stop; a terminal's Ctrl-C must not print a
    # traceback from every worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A worker waits on a pipe its siblings also hold open, so it would outlive a parent
    # killed with SIGKILL: leave as soon as the parent is gone.
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK)
    os._exit(0)


class ParsePool:
    """Runs parse functions in ``processes`` forked workers (0: in threads)."""

    def __init__(self, processes: int, *, timeout: float = PARSE_TIMEOUT) -> None:
        if processes < 0 or processes > MAX_PROCESSES:
            raise ValueError(f"parse processes must be between 0 and {MAX_PROCESSES}")
        if processes and "fork" not in multiprocessing.get_all_start_methods():
            log.info("this platform cannot fork: feeds are parsed in threads")
            processes = 0
        self.processes = processes
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None

    @property
    def uses_processes(self) -> bool:
        """True when parsing happens in worker processes."""
        return self.processes > 0

    def start(self) -> None:
        """Fork the workers now (call before starting other threads). Idempotent."""
        if not self.processes or self._pool is not None:
            return
        context = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_worker_init)
        # Python forks every worker of a "fork" pool at the first submit, before it starts
        # its own manager thread: do that here, while this process has no other thread.
        pool.submit(int).result()
        self._pool = pool

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker (a module-level function with picklable arguments).

        Raises :class:`FeedParseError` when the worker died while running it, or
        when it ran longer than ``timeout`` (the workers are then killed and replaced).
        """
        if not self.processes:
            return await asyncio.to_thread(func, *args)
        if self._pool is None:
            self.start()
        pool = self._pool
        assert pool is not None
        running = asyncio.get_running_loop().run_in_executor(pool, func, *args)
        try:
            return await asyncio.wait_for(running, self.timeout)
        except BrokenProcessPool:
            self._replace(pool, "a feed parser process died")
            raise FeedParseError(
                "the parser process died while reading this feed (out of memory or a crash); "
                "it will be tried again on the next poll"
            ) from None
        except TimeoutError:
            log.error("parsing a feed took over %.0fs", self.timeout)
            _kill_workers(pool)
            self._replace(pool, "stopped the parser processes")
            raise FeedParseError(
                f"parsing took longer than {self.timeout:.0f}s and was stopped; "
                "it will be tried again on the next poll"
            ) from None

    def _replace(self, broken: ProcessPoolExecutor, why: str) -> None:
        if self._pool is not broken:
            return  # another feed's failure already replaced it
        log.error("%s; starting a new pool of %d", why, self.processes)
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.start()

    def close(self) -> None:
        """Stop the workers (waits for them to exit)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParsePool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
