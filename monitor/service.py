"""``monitor run``: every feed on its own schedule, delivery as alerts appear.

APScheduler 3.x ``AsyncIOScheduler`` is started inside the running loop. Each
feed is one interval job with jitter, ``max_instances=1``, ``coalesce`` and a
``misfire_grace_time`` near its interval (the default of 1 s silently skips
late runs), and each run has a deadline so a hung poll cannot block its own
later runs. Delivery is one long-lived task woken after each poll that queued
alerts, and at least every ``DELIVERY_PERIOD`` seconds for retries.

SIGTERM and SIGINT stop the scheduler, give in-flight polls a short grace
period, cancel what is left (each poll commits in one transaction, so a
cancelled poll leaves no partial state) and close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.app import (
    Config,
    Settings,
    freeze_startup_objects,
    load_config,
    make_deliverer,
    make_feed_health,
    utc_now,
)
from monitor.clients import ClientPool
from monitor.deliver import Deliverer
from monitor.errors import StoreError
from monitor.feedhealth import FeedHealthReporter
from monitor.health import HealthServer, HealthState, beat, host_from_env, port_from_env
from monitor.lock import state_lock
from monitor.metrics import Metrics
from monitor.models import AlertStatus, Feed
from monitor.notify import Notifier, notifier_from_env
from monitor.parsepool import ParsePool
from monitor.pipeline import PollReport, PollSettings, poll_feed
from monitor.reload import diff_feeds, fingerprint, try_reload
from monitor.store import Store

log = logging.getLogger("monitor.service")

DELIVERY_PERIOD = 15.0
SHUTDOWN_GRACE = 10.0
PRUNE_PERIOD = timedelta(hours=6)


class Service:
    """The long-running monitor: scheduler, polls, delivery and shutdown."""

    def __init__(
        self,
        config: Config,
        store: Store,
        deliverer: Deliverer,
        settings: Settings,
        *,
        mode: str = "stdout",
        now: Callable[[], datetime] = utc_now,
        metrics: Metrics | None = None,
        health: HealthState | None = None,
        feed_health: FeedHealthReporter | None = None,
        rules_dir: Path | None = None,
        reload_every: float = 5.0,
        parser: ParsePool | None = None,
    ) -> None:
        self.feed_health = feed_health
        self.rules_dir = rules_dir
        self.reload_every = reload_every
        self.config = config
        self.mode = mode
        self.metrics = metrics or Metrics()
        self.health = health or HealthState()
        self.store = store
        self.deliverer = deliverer
        self.settings = settings
        self.now = now
        self.poll_settings = PollSettings(
            limits=settings.limits,
            retention=settings.retention,
            clustering=config.clustering(os.environ),
            parser=parser,
        )
        self._stop = asyncio.Event()
        self._wake_delivery = asyncio.Event()
        self._in_flight: set[asyncio.Task[object]] = set()
        self._gate = asyncio.Semaphore(settings.concurrency)
        self.grace = SHUTDOWN_GRACE
        self._clients: ClientPool | None = None
        self.scheduler: AsyncIOScheduler | None = None

    def stop(self) -> None:
        """Ask the service to stop (safe to call from a signal handler)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`stop` is called."""
        self._clients = ClientPool(self.settings.limits, connections=self.settings.concurrency)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        for index, feed in enumerate(self.config.feeds.feeds):
            self._schedule(feed, index)
        self.scheduler.add_job(
            self._prune,
            "interval",
            seconds=PRUNE_PERIOD.total_seconds(),
            id="prune",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(PRUNE_PERIOD.total_seconds()),
        )
        self.scheduler.start()
        self.health.set_scheduler_running(True)
        log.info(
            "monitor running: %d feeds, %d rules, delivery via %s",
            len(self.config.feeds.feeds),
            len(self.config.rules.rules),
            self.mode,
        )
        heartbeat = asyncio.create_task(beat(self.health), name="heartbeat")
        delivery = asyncio.create_task(self._delivery_loop(), name="delivery")
        watcher = asyncio.create_task(self._watch_config(), name="reload")
        try:
            await self._stop.wait()
        finally:
            heartbeat.cancel()
            watcher.cancel()
            await self._shutdown(delivery)

    async def _watch_config(self) -> None:
        """Reload feeds and rules when files under the rules directory change."""
        if self.rules_dir is None or self.reload_every <= 0:
            return
        seen = fingerprint(self.rules_dir)
        while True:
            await asyncio.sleep(self.reload_every)
            current = fingerprint(self.rules_dir)
            if current == seen:
                continue
            seen = current
            try:
                await self.reload()
            except Exception:
                log.exception("config reload failed unexpectedly; the last good config stays")

    async def reload(self) -> bool:
        """Validate the config on disk and swap it in; keep the old one if it is invalid."""
        assert self.rules_dir is not None
        config, problems = await asyncio.to_thread(try_reload, self.rules_dir)
        if config is None:
            text = (
                f"config reload refused, the last good config stays in force "
                f"({len(problems)} problem(s)): " + "; ".join(problems)
            )
            log.error("%s", text)
            self.health.set_config_loaded(True, "last reload refused: " + problems[0][:200])
            if self.feed_health is not None:
                await self.feed_health.post_ops(text)
            return False
        changes = diff_feeds(self.config.feeds.feeds, config.feeds.feeds)
        # Polls already running keep the rules they started with; new ones see the new set.
        self.config = config
        self.poll_settings = replace(self.poll_settings, clustering=config.clustering(os.environ))
        if self.scheduler is not None:
            for feed in (*changes.removed, *changes.changed):
                with contextlib.suppress(JobLookupError):
                    self.scheduler.remove_job(f"feed:{feed.name}")
            for index, feed in enumerate((*changes.added, *changes.changed)):
                self._schedule(feed, index)
        self.metrics.set_rules_loaded(len(config.rules.rules))
        self.metrics.set_feeds_configured(len(config.feeds.feeds))
        self.health.set_config_loaded(True)
        log.info(
            "config reloaded: %d feeds (%d added, %d removed, %d changed), %d rules",
            len(config.feeds.feeds),
            len(changes.added),
            len(changes.removed),
            len(changes.changed),
            len(config.rules.rules),
        )
        return True

    def _schedule(self, feed: Feed, index: int) -> None:
        assert self.scheduler is not None
        seconds = feed.interval.total_seconds()
        # Spread first polls over a few seconds so start-up is not a burst.
        first = self.now() + timedelta(seconds=min(index * 0.2, 30) + random.uniform(0, 1))
        self.scheduler.add_job(
            self._poll_job,
            "interval",
            args=[feed],
            id=f"feed:{feed.name}",
            name=f"poll {feed.name}",
            seconds=seconds,
            jitter=min(seconds * 0.1, 60),
            next_run_time=first,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(seconds * 0.9)),
        )

    async def _poll_job(self, feed: Feed) -> None:
        task = asyncio.current_task()
        assert task is not None and self._clients is not None
        self._in_flight.add(task)
        deadline = self.settings.limits.deadline * 2 + 30
        ids = {"feed": feed.name}
        try:
            async with (
                self._gate,
                self._clients.lease() as client,
                asyncio.timeout(deadline),
            ):
                report = await poll_feed(
                    feed,
                    client=client,
                    store=self.store,
                    rules=self.config.rules,
                    settings=self.poll_settings,
                    now=self.now,
                )
            self.health.set_database_writable(True)
            if self.feed_health is not None and report.state is not None:
                await self.feed_health.check(report.state, self.now())
            if report.alerts:
                log.info("feed %r: %d new alert(s)", feed.name, len(report.alerts), extra=ids)
                self._wake_delivery.set()
        except TimeoutError:
            log.warning("poll of %r abandoned after %.0fs", feed.name, deadline, extra=ids)
            report = PollReport(feed.name, "error", error=f"abandoned after {deadline:.0f}s")
        except StoreError as exc:
            # Nothing was marked seen (the transaction rolled back): the next poll retries.
            self.health.set_database_writable(False, str(exc))
            log.error("poll of %r could not be recorded: %s", feed.name, exc, extra=ids)
            report = PollReport(feed.name, "error", error=str(exc))
        except asyncio.CancelledError:
            # Only shutdown cancels a poll; its transaction never began or rolled back.
            log.warning("poll of %r abandoned at shutdown", feed.name, extra=ids)
            return
        except Exception as exc:
            log.exception("poll of %r failed unexpectedly", feed.name, extra=ids)
            report = PollReport(feed.name, "error", error=f"internal error: {exc}")
        finally:
            self._in_flight.discard(task)
        self.metrics.observe_poll(report, self.now())

    async def _delivery_loop(self) -> None:
        while True:
            try:
                report = await self.deliverer.deliver_pending()
                self.metrics.observe_delivery(report)
                self.metrics.set_outbox(
                    self.store.count_alerts(AlertStatus.PENDING)
                    + self.store.count_alerts(AlertStatus.SENDING),
                    self.store.count_alerts(AlertStatus.FAILED),
                )
            except StoreError as exc:
                self.health.set_database_writable(False, str(exc))
                log.error("delivery cycle could not use the database: %s", exc)
            except Exception:
                log.exception("delivery cycle failed; alerts stay in the outbox")
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_delivery.wait(), DELIVERY_PERIOD)
            self._wake_delivery.clear()

    async def _prune(self) -> None:
        removed = self.store.prune(self.now(), self.settings.retention)
        log.info("pruned %d seen entries older than the retention period", removed)

    async def _shutdown(self, delivery: asyncio.Task[None]) -> None:
        """Stop scheduling; give polls and the delivery cycle a grace period; then cancel.

        Cancelling is safe: a poll commits in one transaction, and an alert whose
        send was cut short stays SENDING and is looked up before any re-post.
        """
        log.info(
            "stopping: waiting up to %.0fs for %d in-flight poll(s) and delivery",
            self.grace,
            len(self._in_flight),
        )
        self.health.set_scheduler_running(False)
        if self.scheduler is not None:
            # Pause first: shutting the scheduler down cancels running jobs at once.
            self.scheduler.pause()
        self._wake_delivery.set()  # let the delivery loop see the stop and finish its cycle
        waiting: set[asyncio.Task[object]] = {*self._in_flight, delivery}
        _, pending = await asyncio.wait(waiting, timeout=self.grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
            log.warning("abandoned %d task(s) still running after the grace period", len(pending))
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._clients is not None:
            await self._clients.aclose()
        log.info("stopped")


def run_service(rules_dir: Path, state_path: Path, *, env: Mapping[str, str]) -> int:
    """Load config, open the store and run the service until SIGTERM/SIGINT."""
    port, host = port_from_env(env), host_from_env(env)
    config = load_config(rules_dir)
    settings = Settings.from_env(env)
    notifier = notifier_from_env(env, stdout=sys.stdout)
    freeze_startup_objects()
    # Parse workers (if any) are forked first, before the lock and the database are open
    # and before the health server's thread starts.
    with settings.parse_pool(len(config.feeds.feeds)) as parser, state_lock(state_path):
        return _serve(
            config,
            settings,
            notifier,
            rules_dir,
            state_path,
            env,
            port=port,
            host=host,
            parser=parser,
        )


def _serve(
    config: Config,
    settings: Settings,
    notifier: Notifier,
    rules_dir: Path,
    state_path: Path,
    env: Mapping[str, str],
    *,
    port: int | None,
    host: str,
    parser: ParsePool,
) -> int:
    metrics, health = Metrics(), HealthState()
    health.set_config_loaded(True)
    metrics.set_rules_loaded(len(config.rules.rules))
    metrics.set_feeds_configured(len(config.feeds.feeds))
    store = Store.open(state_path)
    server: HealthServer | None = None
    try:
        health.set_database_writable(True)
        metrics.seed_feeds(store.feed_states())
        if port is not None:
            server = HealthServer(health, metrics, host=host, port=port)
            server.start()
            log.info(
                "health and metrics on http://%s:%d/ (healthz, readyz, metrics)", host, server.port
            )
        service = Service(
            config,
            store,
            make_deliverer(store, notifier, env=env),
            settings,
            mode=notifier.mode,
            metrics=metrics,
            health=health,
            feed_health=make_feed_health(store, notifier, env),
            rules_dir=rules_dir,
            reload_every=settings.reload_every,
            parser=parser,
        )
        service.grace = settings.shutdown_grace
        asyncio.run(_main(service))
    finally:
        if server is not None:
            server.stop()
        store.close()
    return 0


async def _main(service: Service) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    await service.run()
