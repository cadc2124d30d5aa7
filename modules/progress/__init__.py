"""Live progress for long jobs: a thread-safe tracker, pluggable stores, and an SSE stream.

Imports nothing else from the app, so it can be lifted into another Flask project.
"""
from .sse import HEADERS as SSE_HEADERS
from .sse import event_stream, format_event, parse_last_event_id
from .store import DatabaseStore, MemoryStore, snapshots_table
from .tracker import CANCELLED, COMPLETED, ERROR, FINAL_STATUSES, INTERRUPTED, QUEUED, RUNNING, ProgressTracker

__all__ = ["ProgressTracker", "MemoryStore", "DatabaseStore", "snapshots_table", "event_stream",
           "format_event", "parse_last_event_id", "SSE_HEADERS", "FINAL_STATUSES", "QUEUED", "RUNNING",
           "COMPLETED", "ERROR", "CANCELLED", "INTERRUPTED"]


def make_store(kind, engine=None, redis_url=None, **options):
    """Build the store named by configuration: 'memory', 'database' or 'redis'."""
    if kind == "memory":
        return MemoryStore()
    if kind == "database":
        if engine is None:
            raise ValueError("the database progress store needs an engine")
        return DatabaseStore(engine, **options)
    if kind == "redis":
        from .redis_store import RedisStore  # redis is only needed when chosen

        if not redis_url:
            raise ValueError("the redis progress store needs REDIS_URL")
        return RedisStore(redis_url)
    raise ValueError(f"unknown progress store {kind!r}: use 'memory', 'database' or 'redis'")
