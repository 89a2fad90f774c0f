"""The state database: feed state, seen entries and the alert outbox (SQLite).

The database file is the only state. Schema changes are numbered migrations
recorded in ``PRAGMA user_version``. Every method that changes state commits
before it returns, so a crash leaves either the old or the new state, never a
half-written poll.

A ``Store`` belongs to one thread (the event loop's); the network calls of
fetch and delivery run elsewhere and hand their results back.
"""

from monitor.store.core import Store
from monitor.store.outbox import RETRY_HORIZON
from monitor.store.records import Candidate, Clustering, FeedState, Outcome, StoryUpdate
from monitor.store.schema import MIGRATIONS, from_db_time, to_db_time

__all__ = [
    "MIGRATIONS",
    "RETRY_HORIZON",
    "Candidate",
    "Clustering",
    "FeedState",
    "Outcome",
    "Store",
    "StoryUpdate",
    "from_db_time",
    "to_db_time",
]
