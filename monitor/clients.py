"""A set of small HTTP clients shared by the polls of one cycle or service.

httpcore's connection pool rescans every idle connection for every queued
request (checking each socket for readability), so the CPU cost of a request
grows with the pool size: on loopback, 1,000 conditional GETs cost ~1.0 s of
CPU through one client of 10 kept-alive connections and ~0.45 s through five
clients of two. A poll leases the least busy client; the number of
connections open at once stays ``connections`` in total, as with one client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from monitor.feedclient import FeedClient
from monitor.fetch import DEFAULT_LIMITS, FetchLimits, make_client

PER_CLIENT = 2  # connections per client: 1 and 2 measured the same, larger pools cost more


class ClientPool:
    """``connections`` connections in all, spread over clients of ``PER_CLIENT`` each."""

    def __init__(self, limits: FetchLimits = DEFAULT_LIMITS, *, connections: int = 10) -> None:
        if isinstance(connections, bool) or connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections!r}")
        sizes = [PER_CLIENT] * (connections // PER_CLIENT)
        if connections % PER_CLIENT:
            sizes.append(connections % PER_CLIENT)
        self._clients = [make_client(limits, max_connections=size) for size in sizes]
        self._busy = [0] * len(self._clients)

    @property
    def clients(self) -> tuple[FeedClient, ...]:
        """Every client of the pool."""
        return tuple(self._clients)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[FeedClient]:
        """The client with the fewest requests in flight, for one poll."""
        index = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every client and its connections."""
        for client in self._clients:
            await client.aclose()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
