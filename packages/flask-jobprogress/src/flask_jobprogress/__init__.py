"""Live progress for a Flask app's long jobs: a thread-safe tracker, pluggable stores, group
counters for parallel parts, a Server-Sent Events stream, and a browser client.

The database and Redis stores and the group counters are imported from their own modules
(`flask_jobprogress.database_store`, `.redis_store`, `.groups`) or through the names below, which
import them only when used, so an app without SQLAlchemy or redis installed never needs them.
"""
from .extension import Cancelled, JobProgress, make_store
from .sse import HEADERS as SSE_HEADERS
from .sse import event_stream, format_event, parse_last_event_id
from .store import Fanout, MemoryStore, Subscription, end_streams, streams_ending
from .tracker import (
    CANCELLED,
    COMPLETED,
    ERROR,
    FINAL_STATUSES,
    IN_PROGRESS,
    INTERRUPTED,
    PENDING,
    QUEUED,
    RUNNING,
    SKIPPED,
    STEP_COMPLETED,
    STEP_ERROR,
    ProgressTracker,
)

__version__ = "0.1.0"
__all__ = ["ProgressTracker", "JobProgress", "Cancelled", "make_store", "MemoryStore", "DatabaseStore",
           "RedisStore", "PartReport", "GroupFollower", "Fanout", "Subscription", "end_streams", "streams_ending",
           "event_stream",
           "format_event", "parse_last_event_id", "SSE_HEADERS", "FINAL_STATUSES", "QUEUED", "RUNNING",
           "COMPLETED", "ERROR", "CANCELLED", "INTERRUPTED", "PENDING", "IN_PROGRESS", "STEP_COMPLETED",
           "STEP_ERROR", "SKIPPED", "__version__"]

_LAZY = {"DatabaseStore": "database_store", "snapshots_table": "database_store", "metadata": "database_store",
         "RedisStore": "redis_store", "PartReport": "groups", "GroupFollower": "groups"}


def __getattr__(name):
    # The stores and groups that need an extra (SQLAlchemy, redis) are imported on first use.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flask_jobprogress' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
