"""What a running job's code gets: its parameters, its tracker, its checkpoint, and `check()`."""
from __future__ import annotations

import time

import gevent
import sqlalchemy as sa
from gevent import monkey

from ..models import Job
from .errors import JobCancelled


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
    def __init__(self, job_id, kind, params, tracker, checkpoint, settings):
        self.job_id = job_id
        self.kind = kind
        self.params = params or {}
        self.tracker = tracker
        self.checkpoint = checkpoint or {}
        self.settings = settings
        self.ids = None  # an importer's IdCache, when it keeps one

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
