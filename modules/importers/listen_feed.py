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

import atexit
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field

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
    # The version of the last change to listens other than new ones (current() reads it): figures
    # kept for a version at or after it can be brought forward by adding the listens stored since.
    rewritten: int = field(default=0, compare=False)


def _ensure_row(conn):
    insert_ignoring_conflicts(conn, feed_t, [{"id": FEED_ROW, "topic": f"listens-{secrets.token_hex(8)}",
                                              "version": 0}])


# Sent as plain SQL (the same on SQLite and PostgreSQL): every write of listens starts with it, and
# building and compiling the statement through SQLAlchemy cost ten times the database's work.
_CLAIM_SQL = f"UPDATE listen_feed SET version = version + 1 WHERE id = {FEED_ROW} RETURNING topic, version"


def claim(conn, rewrites=False, **values):
    """Bump the version in the caller's transaction (taking the row's lock until it ends).

    `rewrites`: this transaction deletes or changes listens (not only adds some). Every such writer
    must say so: what a process keeps for a version is otherwise brought forward by adding the
    listens stored since (analytics.by_listens_version)."""
    if rewrites:  # rare (deletions, rebuilds): the general statement below, not a plain-SQL copy
        values["rewritten"] = feed_t.c.version + 1
    for _attempt in range(2):
        if values:
            row = conn.execute(feed_t.update().where(feed_t.c.id == FEED_ROW)
                               .values(version=feed_t.c.version + 1, **values)
                               .returning(feed_t.c.topic, feed_t.c.version)).first()
        else:
            row = conn.exec_driver_sql(_CLAIM_SQL).first()
        if row is not None:
            return FeedStamp(row[0], row[1])
        _ensure_row(conn)
    raise RuntimeError("the listen_feed row could not be created")


def current(conn, busy_seconds=0.5):
    """The feed's stamp as committed now, the row made on first use; None when it is still to be made
    and another program holds the database's write lock (a page must not wait for that: the caller
    rolls back and shows its page without the live feed, which the next visit has)."""
    columns = (feed_t.c.topic, feed_t.c.version, feed_t.c.rewritten)
    row = conn.execute(sa.select(*columns).where(feed_t.c.id == FEED_ROW)).first()
    if row is None:
        try:
            _ensure_row(conn.execution_options(**{BUSY_SECONDS: busy_seconds}))
        except sa.exc.DBAPIError as exc:
            if transient_reason(exc) is None:
                raise
            return None
        row = conn.execute(sa.select(*columns).where(feed_t.c.id == FEED_ROW)).first()
    return FeedStamp(row[0], row[1], row[2])


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


class Announcer:
    """Announces stamps from a thread of its own, so a request answers without waiting for the store.

    The store's publish is a write of its own (a second transaction with the database store, a
    round trip with Redis): a scrobble's answer need not wait for it. The latest stamp of a topic
    wins, as in the store itself (it keeps one snapshot per topic); `imported` adds up, so news of
    several quick listens reads as one event. The thread stops when idle and starts again on demand;
    what is still pending when the process exits is published then.
    """

    IDLE_SECONDS = 5.0

    def __init__(self, store):
        self._store = weakref.ref(store)  # the registry below must not keep a store alive
        self._pending = {}  # topic -> (stamp, details)
        self._wake = threading.Condition()
        self._thread = None

    def announce(self, stamp, **details):
        if stamp is None:
            return
        with self._wake:
            earlier = self._pending.get(stamp.topic)
            if earlier is not None:
                imported = earlier[1].get("imported", 0) + details.get("imported", 0)
                if earlier[0].version > stamp.version:
                    stamp, details = earlier
                if imported:
                    details = {**details, "imported": imported}
            self._pending[stamp.topic] = (stamp, details)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="listen-feed-announcer", daemon=True)
                self._thread.start()
            self._wake.notify()

    def flush(self):
        """Publish what is pending now, in the caller's thread."""
        with self._wake:
            pending, self._pending = self._pending, {}
        store = self._store()
        for stamp, details in pending.values():
            announce(store, stamp, **details)

    def _run(self):
        while True:
            with self._wake:
                if not self._pending and not self._wake.wait_for(lambda: self._pending, self.IDLE_SECONDS):
                    self._thread = None  # idle: the next announce starts another
                    return
            self.flush()


_announcers = weakref.WeakKeyDictionary()  # store -> its Announcer
_announcers_lock = threading.Lock()


def announce_soon(store, stamp, **details):
    """`announce`, from the store's announcer thread: the caller does not wait for the store."""
    if stamp is None or store is None:
        return
    with _announcers_lock:
        announcer = _announcers.get(store)
        if announcer is None:
            announcer = _announcers[store] = Announcer(store)
    announcer.announce(stamp, **details)


@atexit.register
def _flush_at_exit():
    for announcer in list(_announcers.values()):
        announcer.flush()
