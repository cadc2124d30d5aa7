"""What a running job's code gets: its parameters, its tracker, its checkpoint, and `check()`."""
from __future__ import annotations

import time

import gevent
import sqlalchemy as sa
from gevent import monkey

from ..db import BEFORE_STATEMENT, BUSY_LISTENER, db, transient_reason
from ..models import Job
from ..waiting import GaveUp, Patience, call_with_retries, wait_message
from . import pacing
from .errors import DatabaseBusy, JobCancelled, JobLost


def cooperative_yield():
    """Let other greenlets (and the network) run.

    Under gevent, sleep(0) only switches to greenlets that are already runnable: the hub does
    not poll sockets, so open streams would still wait for the whole job. idle() waits until the
    event loop has run once, I/O included. Without gevent, sleep(0) releases the GIL. Then the job
    rests while this process answers requests (pacing.py: pages first).
    """
    if monkey.is_module_patched("threading"):
        gevent.idle()
    else:
        time.sleep(0)
    pacing.rest()


# Least seconds between two looks at the job's record by check(): a batch takes longer, so a
# cancel asked in any process, or a takeover, is heard within one batch.
CHECK_SECONDS = 0.05


class JobContext:
    def __init__(self, job_id, kind, params, tracker, checkpoint, settings, store=None, generation=None, run=None,
                 save_files_elsewhere=None):
        self.job_id = job_id
        self.kind = kind
        self.params = params or {}
        self.tracker = tracker
        self.checkpoint = checkpoint or {}
        self.settings = settings
        self.ids = None  # an importer's IdCache, when it keeps one
        self.store = store  # the progress store, where importers announce new listens (listen_feed)
        # The generation this runner was handed (lifecycle.py); None: no ownership checks (tests' own contexts).
        self.generation = generation
        self.run = run
        # An upload's files saved by other runners (a Celery group): save(ctx, state, files, readable)
        # returns the parts' checkpoint entries, or None to save them in this thread (lifecycle.py).
        self.save_files_elsewhere = save_files_elsewhere
        self._started_from = self.checkpoint
        self._rests_inside = None  # rests_in_transactions(), once looked up
        self._looked = 0.0
        # Taken now: check() is also called from an import's fetch threads, outside the app context.
        self._engine = db.engine if generation is not None else None

    def check(self):
        """Call between batches: raises JobCancelled when asked (in any process), JobLost when the
        job went to another runner, and yields to other greenlets.

        Under gevent a job is a greenlet: without this yield a CPU-bound batch loop would starve
        every open event stream of the worker. The job's record is read at most every
        CHECK_SECONDS; a database that cannot answer just now is looked at next time (the
        checkpoint write is guarded anyway, see save_checkpoint).
        """
        cooperative_yield()
        if self.run is not None and self.run.lost:
            raise JobLost()
        if self.tracker.cancel_requested:
            raise JobCancelled()
        if self.generation is None or time.monotonic() - self._looked < CHECK_SECONDS:
            return
        self._looked = time.monotonic()
        table = Job.__table__
        try:
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(table.c.generation, table.c.cancel_requested)
                                   .where(table.c.id == self.job_id)).first()
        except sa.exc.DBAPIError:
            return
        if row is None or row.generation != self.generation:
            self._lose()
        if row.cancel_requested:
            self.tracker.request_cancel()
            raise JobCancelled()

    @staticmethod
    def give_way():
        """Call at every row of a long loop, outside a transaction: rests while this process answers
        a request (pacing.py). Costs next to nothing otherwise."""
        pacing.give_way()

    def rests_in_transactions(self):
        """Whether this job may rest inside its transactions (before each statement of `write`).

        On PostgreSQL a job's transaction locks only the listen feed's row, which writers of listens
        wait for a moment; on SQLite it holds the database's one write lock, which every writer
        waits for (the progress store 0.5 s), so there the job writes smaller transactions while
        pages are answered instead (`batch_rows`). Why: docs/design-performance.md."""
        if self._rests_inside is None:
            self._rests_inside = db.engine.dialect.name != "sqlite"
        return self._rests_inside

    def batch_rows(self, usual):
        """Rows to write in one transaction now: `usual` (IMPORT_BATCH_SIZE); on SQLite fewer while this
        process answers a request, so that a page shares the process with one short transaction."""
        return usual if self.rests_in_transactions() else pacing.batch_rows(usual)

    def still_owner(self):
        """Whether the job is still this runner's (looked up now; True when the database cannot say)."""
        if self.generation is None:
            return True
        if self.run is not None and self.run.lost:
            return False
        table = Job.__table__
        try:
            with self._engine.connect() as conn:
                current = conn.execute(sa.select(table.c.generation).where(table.c.id == self.job_id)).scalar()
        except sa.exc.DBAPIError:
            return True  # the end record is written on the same condition (lifecycle._record_end)
        return current == self.generation

    def _lose(self):
        if self.run is not None:
            self.run.lost = True
        raise JobLost()

    def save_checkpoint(self, conn, data):
        """Store the checkpoint in the caller's transaction, so a batch and its checkpoint commit together.

        Only while the job is this runner's: otherwise JobLost rolls the whole batch back, so a
        runner that was taken over writes nothing more. A checkpoint that moved on ends the job's
        run of takeovers (JOB_MAX_TAKEOVERS counts those without a saved batch in between).
        """
        table = Job.__table__
        where = table.c.id == self.job_id
        values = {"checkpoint": data}
        if self.generation is not None:
            where = sa.and_(where, table.c.generation == self.generation)
            if data != self._started_from:
                values["takeover_streak"] = 0
        updated = conn.execute(sa.update(table).where(where).values(**values))
        if self.generation is not None and updated.rowcount != 1:
            self._lose()
        self.checkpoint = data

    def write(self, work):
        """Run `work(conn)` in one transaction and return what it returns.

        A lock held by another program is waited out statement by statement (db.py), with the
        wait on the progress page ("Database busy, waiting 12 s"); past SQLITE_BUSY_TIMEOUT_SECONDS,
        or when the database is busy in another way, the transaction is rolled back and run again
        whole after a doubling wait, at most DB_WRITE_ATTEMPTS times. Then the job stops with a
        message saying what was kept; every batch committed before stays committed.

        `work` must only change the job's own state after it returns (the transaction may run
        twice). Ids cached during a rolled-back try are forgotten.
        """
        s = self.settings
        patience = Patience(float(s.get("DB_RETRY_BASE_SECONDS", 1.0)), 30.0, max(1, int(s.get("DB_WRITE_ATTEMPTS", 1))),
                            tries_setting="DB_WRITE_ATTEMPTS")
        shown_before = self.tracker.message
        shown = {"waited": None, "last": None}  # the wait messages this write put up
        rests_inside = self.rests_in_transactions()

        def show(message):
            shown["last"] = message
            self.tracker.set_message(message)

        def show_lock_wait(waited):
            self.check()  # a cancel is heard during the wait; the transaction rolls back
            if waited >= 1 and int(waited) != shown["waited"]:
                shown["waited"] = int(waited)
                show(lock_wait_message(waited))

        def show_retry(delay, why, tries):
            self.tracker.incr("db_retries")
            show(wait_message(delay, why, tries, patience))

        def attempt():
            try:
                with db.engine.begin() as conn:
                    conn.execution_options(**{BUSY_LISTENER: show_lock_wait,
                                              BEFORE_STATEMENT: pacing.give_way if rests_inside else None})
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if self.ids is not None and transient_reason(exc) is not None:
                    self.ids.by_table.clear()  # rows those ids point to were rolled back
                raise

        try:
            result = call_with_retries(attempt, patience, reason=_busy_reason, check=self.check, on_wait=show_retry)
        except GaveUp as exc:
            raise DatabaseBusy(
                f"Could not save: {exc}. Everything saved before is kept; resume the job once the database is "
                "free (another program may hold it: a backup, an editor, a second import).") from None
        if shown["last"] is not None and self.tracker.message == shown["last"]:
            self.tracker.set_message(shown_before)  # the wait is over: the page stops saying it waits
        return result


def lock_wait_message(waited):
    """What a job shows while another program holds the database's write lock."""
    return f"Database busy, waiting {waited:.0f} s: another program holds its write lock"


def _busy_reason(exc):
    why = transient_reason(exc)
    return why[0].upper() + why[1:] if why else None
