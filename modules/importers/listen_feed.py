"""The listen feed: how open journals hear that listens changed, and what is playing now.

One row (`listen_feed`) holds a version and the track playing now. Every writer of listens bumps
the version first thing in its transaction (`write_plays` calls `claim`), and after the commit
publishes `{"id": topic, "version": ...}` to the progress store (`announce`); each process's
journal streams hear of it through the store's one subscription per process, from whichever
process or Celery worker wrote.

Why a row rather than a clock: the version must grow in *commit* order across processes, or a
journal could refetch on a newer event before an older transaction's rows are visible and then
drop that transaction's own (older) event. The row lock gives exactly that order, and it also
serialises writers of listens, so the same-play check of one sees what another just committed.
The topic is random per database: a Redis store shared by several databases never mixes versions.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from ..db import BUSY_SECONDS, insert_ignoring_conflicts, transient_reason
from ..models import ListenFeed

log = logging.getLogger(__name__)
feed_t = ListenFeed.__table__
FEED_ROW = 1
KIND = "listens"
NOW_PLAYING_MAX_SECONDS = 600  # ListenBrainz's own limit when a client gives no duration


@dataclass(frozen=True)
class FeedStamp:
    """The feed's topic in the progress store and the version a transaction gave it."""
    topic: str
    version: int


def _ensure_row(conn):
    insert_ignoring_conflicts(conn, feed_t, [{"id": FEED_ROW, "topic": f"listens-{secrets.token_hex(8)}",
                                              "version": 0}])


def claim(conn, **values):
    """Bump the version in the caller's transaction (taking the row's lock until it ends)."""
    for _attempt in range(2):
        row = conn.execute(feed_t.update().where(feed_t.c.id == FEED_ROW)
                           .values(version=feed_t.c.version + 1, **values)
                           .returning(feed_t.c.topic, feed_t.c.version)).first()
        if row is not None:
            return FeedStamp(row[0], row[1])
        _ensure_row(conn)
    raise RuntimeError("the listen_feed row could not be created")


def current(conn, busy_seconds=0.5):
    """The feed's stamp as committed now, the row made on first use; None when it is still to be made
    and another program holds the database's write lock (a page must not wait for that: the caller
    rolls back and shows its page without the live feed, which the next visit has)."""
    row = conn.execute(sa.select(feed_t.c.topic, feed_t.c.version).where(feed_t.c.id == FEED_ROW)).first()
    if row is None:
        try:
            _ensure_row(conn.execution_options(**{BUSY_SECONDS: busy_seconds}))
        except sa.exc.DBAPIError as exc:
            if transient_reason(exc) is None:
                raise
            return None
        row = conn.execute(sa.select(feed_t.c.topic, feed_t.c.version).where(feed_t.c.id == FEED_ROW)).first()
    return FeedStamp(row[0], row[1])


def set_now_playing(conn, track, duration_seconds=None, now=None):
    """Show `track` (a dict) as playing for its duration, or 10 minutes when unknown; never stored as a listen."""
    now = time.time() if now is None else now
    seconds = duration_seconds if duration_seconds and duration_seconds > 0 else NOW_PLAYING_MAX_SECONDS
    return claim(conn, now_playing=track, now_playing_until=now + seconds)


def now_playing(conn, now=None):
    """The track playing now with its `until` (Unix seconds), or None once it has expired."""
    now = time.time() if now is None else now
    row = conn.execute(sa.select(feed_t.c.now_playing, feed_t.c.now_playing_until)
                       .where(feed_t.c.id == FEED_ROW)).first()
    if row is None or not row[0] or not row[1] or row[1] <= now:
        return None
    return {**row[0], "until": row[1]}


def announce(store, stamp, **details):
    """Tell every open journal that the transaction which took `stamp` has committed.

    Never raises: the listens are stored whatever happens to the news of them (a journal that
    misses it catches up at the next event or when it connects again).
    """
    if stamp is None or store is None:
        return
    try:
        store.publish({"id": stamp.topic, "kind": KIND, "status": "running", "version": stamp.version,
                       "updated_at": time.time(), **details})
    except Exception:  # noqa: BLE001 - the store being down must not fail a write that committed
        log.warning("could not announce new listens to the progress store", exc_info=True)
