"""DatabaseStore: a row per job in a SQLAlchemy database, so every process sees every job.

Each process runs one watcher that polls only while it has subscribers, with one short query per
tick for all of them; streams wait on in-process events and never hold a connection. The table
(`snapshots_table`, in `metadata`) is created by `metadata.create_all(engine)` or by the app's
own migrations.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import sqlalchemy as sa

from .store import Fanout

log = logging.getLogger(__name__)


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
