"""Where published snapshots go, and how open streams in this process hear of them.

One interface, chosen by configuration:
- MemoryStore: one process; tests and the simplest run.
- DatabaseStore: a row per job in the app's database, so every process sees every job. Each
  process runs one watcher that polls only while it has subscribers, with one short query per
  tick for all of them; streams wait on in-process events and never hold a connection.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import sqlalchemy as sa

log = logging.getLogger(__name__)


class Subscription:
    """One open stream's view of one job: the latest snapshot and an event to wait on."""

    __slots__ = ("job_id", "_event", "_latest", "_fanout")

    def __init__(self, fanout, job_id):
        self.job_id = job_id
        self._fanout = fanout
        self._event = threading.Event()
        self._latest = None

    def _deliver(self, snapshot):
        latest = self._latest
        if latest is None or snapshot["version"] > latest["version"]:
            self._latest = snapshot
            self._event.set()

    def wait(self, after_version, timeout):
        """The newest snapshot with a version above `after_version`, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self._latest
            if latest is not None and latest["version"] > after_version:
                return latest
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._event.wait(remaining)
            self._event.clear()

    def close(self):
        self._fanout.unsubscribe(self)


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


metadata = sa.MetaData()
snapshots_table = sa.Table(
    "progress_snapshots", metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("snapshot", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


class DatabaseStore:
    """Snapshots in the `progress_snapshots` table, shared by every process on the database."""

    def __init__(self, engine, poll_interval=0.1):
        self.engine = engine
        self.poll_interval = poll_interval
        self.fanout = Fanout()
        self._known = {}  # job_id -> version last delivered to local subscribers
        self._unsaved = {}  # job_id -> newest snapshot of this process the database refused
        self._watcher = None
        self._watcher_lock = threading.Lock()
        self._stopped = False

    def publish(self, snapshot):
        values = {"job_id": snapshot["id"], "kind": snapshot["kind"], "status": snapshot["status"],
                  "version": snapshot["version"], "snapshot": json.dumps(snapshot),
                  "updated_at": time.time()}
        try:
            try:
                self._write(values)
            except sa.exc.IntegrityError:
                # Another process inserted this job's first row between our update and our insert:
                # the row exists now, so the update path applies.
                self._write(values)
        except Exception:
            # The database refused it (locked by another program, say): this process's streams and
            # reads still get it, and the caller publishes again later.
            self._unsaved[snapshot["id"]] = snapshot
            self.fanout.deliver(snapshot)
            raise
        unsaved = self._unsaved.get(snapshot["id"])
        if unsaved is not None and unsaved["version"] <= snapshot["version"]:
            self._unsaved.pop(snapshot["id"], None)
        # Local streams hear of it now; the watcher need not fetch it back from the database.
        if snapshot["version"] > self._known.get(snapshot["id"], -1):
            self._known[snapshot["id"]] = snapshot["version"]
        self.fanout.deliver(snapshot)

    def _write(self, values):
        t = snapshots_table
        with self.engine.begin() as conn:
            # Only ever move forward: an older snapshot never overwrites a newer one.
            updated = conn.execute(
                t.update().where(t.c.job_id == values["job_id"], t.c.version <= values["version"])
                .values(**values)).rowcount
            if not updated:
                exists = conn.execute(sa.select(t.c.version).where(t.c.job_id == values["job_id"])).first()
                if exists is None:
                    conn.execute(t.insert().values(**values))

    def get(self, job_id):
        t = snapshots_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.snapshot).where(t.c.job_id == job_id)).first()
        saved = json.loads(row[0]) if row else None
        unsaved = self._unsaved.get(job_id)
        if unsaved is not None and (saved is None or unsaved["version"] > saved["version"]):
            return unsaved
        return saved

    def subscribe(self, job_id):
        sub = self.fanout.subscribe(job_id)
        self._ensure_watcher()
        return sub

    def close(self):
        self._stopped = True

    # The watcher: one per process, polling only while someone is subscribed.
    def _ensure_watcher(self):
        with self._watcher_lock:
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name="progress-db-watcher", daemon=True)
                self._watcher.start()

    def _watch(self):
        idle_ticks = 0
        while not self._stopped:
            time.sleep(self.poll_interval)
            ids = self.fanout.job_ids()
            if not ids:
                idle_ticks += 1
                if idle_ticks > 50:  # nobody listening for a while: stop until the next subscribe
                    with self._watcher_lock:
                        if not self.fanout.job_ids():
                            self._watcher = None
                            return
                continue
            idle_ticks = 0
            try:
                self.poll_once(ids)
            except Exception:  # noqa: BLE001 - keep watching through a transient database error
                log.exception("progress watcher poll failed")

    def poll_once(self, ids):
        t = snapshots_table
        with self.engine.connect() as conn:
            versions = conn.execute(sa.select(t.c.job_id, t.c.version).where(t.c.job_id.in_(ids))).all()
            changed = [job_id for job_id, version in versions if version > self._known.get(job_id, -1)]
            rows = conn.execute(sa.select(t.c.snapshot).where(t.c.job_id.in_(changed))).all() if changed else []
        for (text,) in rows:
            snap = json.loads(text)
            self._known[snap["id"]] = snap["version"]
            self.fanout.deliver(snap)
        for job_id in list(self._known):
            if job_id not in ids:
                del self._known[job_id]
