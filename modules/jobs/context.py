"""What a running job's code gets: its parameters, its tracker, its checkpoint, and `check()`."""
from __future__ import annotations

import time

import gevent
import sqlalchemy as sa
from gevent import monkey

from ..db import db, transient_reason
from ..importers.waiting import wait_message
from ..models import Job
from .errors import DatabaseBusy, JobCancelled


def cooperative_yield():
    """Let other greenlets (and the network) run.

    Under gevent, sleep(0) only switches to greenlets that are already runnable: the hub does
    not poll sockets, so open streams would still wait for the whole job. idle() waits until the
    event loop has run once, I/O included. Without gevent, sleep(0) releases the GIL.
    """
    if monkey.is_module_patched("threading"):
        gevent.idle()
    else:
        time.sleep(0)


class JobContext:
    def __init__(self, job_id, kind, params, tracker, checkpoint, settings, store=None):
        self.job_id = job_id
        self.kind = kind
        self.params = params or {}
        self.tracker = tracker
        self.checkpoint = checkpoint or {}
        self.settings = settings
        self.ids = None  # an importer's IdCache, when it keeps one
        self.store = store  # the progress store, where importers announce new listens (listen_feed)

    def check(self):
        """Call between batches: raises JobCancelled when asked, and yields to other greenlets.

        Under gevent a job is a greenlet: without this yield a CPU-bound batch loop would starve
        every open event stream of the worker.
        """
        cooperative_yield()
        if self.tracker.cancel_requested:
            raise JobCancelled()

    def save_checkpoint(self, conn, data):
        """Store the checkpoint in the caller's transaction, so a batch and its checkpoint commit together."""
        self.checkpoint = data
        conn.execute(sa.update(Job.__table__).where(Job.__table__.c.id == self.job_id).values(checkpoint=data))

    def write(self, work):
        """Run `work(conn)` in one transaction and return what it returns; when the database is
        locked or busy, roll back and run the whole transaction again after a doubling wait
        (shown on the progress page), at most DB_WRITE_ATTEMPTS times. Then the job stops with
        a message saying what was kept; every batch committed before stays committed.

        `work` must only change the job's own state after it returns (the transaction may run
        twice). Ids cached during a rolled-back try are forgotten.
        """
        attempts = max(1, int(self.settings.get("DB_WRITE_ATTEMPTS", 1)))
        base = float(self.settings.get("DB_RETRY_BASE_SECONDS", 1.0))
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                with db.engine.begin() as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                why = transient_reason(exc)
                if why is None:
                    raise
                if self.ids is not None:  # rows those ids point to were rolled back
                    self.ids.by_table.clear()
                if attempt == attempts:
                    raise DatabaseBusy(
                        f"Could not save: {why} (after {attempt} tries over {time.monotonic() - started:.0f} s). "
                        "Everything saved before is kept; resume the job once the database is free "
                        "(another program may hold it: a backup, an editor, a second import).") from None
                delay = min(base * 2 ** (attempt - 1), 30.0)
                self.tracker.incr("db_retries")
                self.tracker.set_message(wait_message(delay, why.capitalize(), attempt, attempts))
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    self.check()
                    time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
        raise AssertionError("unreachable")
