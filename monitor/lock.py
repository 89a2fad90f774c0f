"""One monitor per state database: an exclusive lock next to the file.

APScheduler 3.x and our outbox both assume a single writer; a second
``monitor run`` (or a ``monitor once`` from cron while the service runs) on the
same state must refuse to start instead of double-posting.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from monitor.errors import StoreError

_HELD: set[int] = set()  # file descriptors of the locks this process holds


def _release_in_child() -> None:
    # A forked child (a parse worker) shares the parent's lock through the inherited
    # descriptor: if the parent died, the child would keep the state locked. Close it.
    for fd in list(_HELD):
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_release_in_child)


def lock_path(state: Path) -> Path:
    """Where the lock for ``state`` lives (``monitor.db`` -> ``monitor.db.lock``)."""
    return state.with_name(state.name + ".lock")


@contextmanager
def state_lock(state: Path) -> Iterator[None]:
    """Hold the state's lock for the ``with`` block; StoreError if another process has it.

    ``flock`` locks vanish with the process, so a crash (even SIGKILL) never
    leaves a stale lock behind.
    """
    path = lock_path(state)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StoreError(
                f"another monitor (pid {holder}) is using {state}; stop it first, or give this "
                "one its own --state file"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _HELD.add(handle.fileno())
        yield
    finally:
        _HELD.discard(handle.fileno())
        handle.close()
