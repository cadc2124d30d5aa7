"""Where published snapshots go, and how open streams in this process hear of them.

Every store has one interface: `publish(snapshot)`, `get(job_id)`, `subscribe(job_id)` (a
Subscription to `wait` on) and `close()`. Three are shipped:
- MemoryStore (here): one process; tests and the simplest run.
- DatabaseStore (database_store.py, extra `sqlalchemy`): a row per job, seen by every process.
- RedisStore (redis_store.py, extra `redis`): a hash per job and one pub/sub channel.
"""
from __future__ import annotations

import threading
import time
import weakref

_ending = threading.Event()
_open = weakref.WeakSet()  # every Subscription of this process not yet closed
_open_lock = threading.Lock()


def end_streams():
    """End every event stream this process serves, now and from now on: for a server's shutdown.

    Each waiting Subscription.wait returns None at once (and every later one), and `streams_ending()`
    turns true: the package's event stream returns without a `done` event, so the browser's
    EventSource reconnects after its `retry` to the server that answers next. Without it a graceful
    shutdown waits for its timeout: a stream between two heartbeats does not know it should end.
    """
    _ending.set()
    with _open_lock:
        subs = list(_open)
    for sub in subs:
        sub._event.set()


def streams_ending():
    """True once `end_streams()` was called: a stream of the app's own should return (see end_streams)."""
    return _ending.is_set()


class Subscription:
    """One open stream's view of one job: the latest snapshot and an event to wait on."""

    __slots__ = ("job_id", "_event", "_latest", "_fanout", "__weakref__")

    def __init__(self, fanout, job_id):
        self.job_id = job_id
        self._fanout = fanout
        self._event = threading.Event()
        self._latest = None
        with _open_lock:
            _open.add(self)

    def _deliver(self, snapshot):
        latest = self._latest
        if latest is None or snapshot["version"] > latest["version"]:
            self._latest = snapshot
            self._event.set()

    def wait(self, after_version, timeout):
        """The newest snapshot with a version above `after_version`, or None after `timeout` (at once
        when the process ends its streams: `end_streams`)."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self._latest
            if latest is not None and latest["version"] > after_version:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0 or _ending.is_set():
                return None
            self._event.wait(remaining)
            self._event.clear()

    def close(self):
        self._fanout.unsubscribe(self)
        with _open_lock:
            _open.discard(self)


class Fanout:
    """In-process delivery of snapshots to every subscription of a job."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subs = {}  # job_id -> set of Subscription

    def subscribe(self, job_id):
        sub = Subscription(self, job_id)
        with self._lock:
            self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub):
        with self._lock:
            subs = self._subs.get(sub.job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.job_id]

    def job_ids(self):
        with self._lock:
            return list(self._subs)

    def count(self):
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def deliver(self, snapshot):
        with self._lock:
            subs = list(self._subs.get(snapshot["id"], ()))
        for sub in subs:
            sub._deliver(snapshot)


class MemoryStore:
    """Snapshots in a dict: visible to this process only."""

    def __init__(self):
        self._snapshots = {}
        self._lock = threading.Lock()  # the version check and the write are one step
        self.fanout = Fanout()

    def publish(self, snapshot):
        with self._lock:
            current = self._snapshots.get(snapshot["id"])
            if current is None or snapshot["version"] >= current["version"]:
                self._snapshots[snapshot["id"]] = snapshot
        self.fanout.deliver(snapshot)

    def get(self, job_id):
        return self._snapshots.get(job_id)

    def subscribe(self, job_id):
        return self.fanout.subscribe(job_id)

    def close(self):
        pass
