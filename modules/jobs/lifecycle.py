"""Start, run, cancel and resume jobs; the heartbeat of the jobs this process runs.

The `jobs` table is the control record every process shares: one job of a kind at a time
(unique `active_kind`), cancellation requests, heartbeats, checkpoints, and the job's
`generation`: it grows at every hand-over to a runner (start, resume, takeover), and only the
runner of the current generation may write to the job. A runner that finds another generation
(at its next `ctx.check()`, beat or checkpoint) stops without a word: the job is someone else's.
Takeovers of jobs whose runner died: reaper.py. The live view of a job is its ProgressTracker,
published to the progress store.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
import uuid

import sqlalchemy as sa
from flask import current_app
from flask_jobprogress import CANCELLED, COMPLETED, ERROR, FINAL_STATUSES, INTERRUPTED, QUEUED, RUNNING, ProgressTracker
from sqlalchemy.exc import IntegrityError

from ..db import db, transient_reason
from ..models import Job
from ..sources.errors import SourceError
from ..waiting import GaveUp, Patience, call_with_retries
from . import owner as owners
from .context import JobContext
from .errors import JobAlreadyRunning, JobCancelled, JobError, JobLost, JobNotFound, JobNotResumable
from .kinds import get_kind

log = logging.getLogger(__name__)
ACTIVE = (QUEUED, RUNNING)
BROKER_OWNER = owners.BROKER_OWNER


class Run:
    """A job this process runs, with the generation it was handed; `lost` once another runner has it."""

    def __init__(self, job_id, generation, progress_store):
        self.job_id, self.generation, self.store = job_id, generation, progress_store
        self.app = current_app._get_current_object()  # the heartbeat of its app beats it
        self.lost = False
        self.tracker = None

    def publish(self, snapshot):
        if not self.lost:  # a runner that lost the job must not show its stale progress over the new one's
            self.store.publish(snapshot)


# The jobs this process runs, for cancel and heartbeat.
_local = {}
_local_lock = threading.Lock()


def store():
    return current_app.extensions["sillon"]["progress_store"]


def settings():
    return current_app.extensions["sillon"]["settings"]


def refresh_settings():
    """Follow the settings saved in the app since this process last looked (cheap when none moved)."""
    refresh = getattr(settings(), "refresh", None)
    if refresh is not None:
        refresh()


def local_tracker(job_id):
    """The tracker of a job this process runs, else None (benchmarks sample it)."""
    with _local_lock:
        run = _local.get(job_id)
    return run.tracker if run is not None else None


def runs_here(job_id):
    with _local_lock:
        return job_id in _local


# How an upload's files are saved elsewhere than in the job's own thread: celery_app registers the
# Celery group (jobs/upload_group.py) with the test of when it applies; None: always in this thread.
_files_elsewhere = None


def save_files_with(save, applies):
    """Register `save(ctx, state, files, readable)`, used when `applies(settings, readable)`."""
    global _files_elsewhere
    _files_elsewhere = (save, applies)


def _files_saver():
    """For a job's context: save(ctx, state, files, readable), or None when nothing is registered."""
    if _files_elsewhere is None:
        return None
    save, applies = _files_elsewhere
    current = settings()

    def saver(ctx, state, files, readable):
        return save(ctx, state, files, readable) if applies(current, readable) else None
    return saver


def new_tracker(job_id, kind, initial_version=0, publish=None):
    spec = get_kind(kind)
    return ProgressTracker(job_id, kind, spec.steps, publish=publish or store().publish,
                           min_interval=settings()["PROGRESS_PUBLISH_INTERVAL"], initial_version=initial_version)


_reaper = []  # reaper.reap, registered by reaper.py (it uses this module; this one only calls it)


def set_reaper(function):
    _reaper[:] = [function]


def reap_stale_jobs(now=None):
    """Continue (or mark interrupted) the jobs whose runner stopped; returns their ids (reaper.py)."""
    return _reaper[0](now) if _reaper else []


def start_job(kind, params=None):
    """Record a queued job and hand it to the runner; raises JobAlreadyRunning (409) if one of its kind runs."""
    get_kind(kind)  # unknown kinds fail before anything is written
    reap_stale_jobs()
    for _attempt in range(5):
        job = Job(id=uuid.uuid4().hex, kind=kind, status=QUEUED, active_kind=kind, params=params or {},
                  owner=owners.current(), heartbeat_at=time.time(), created_at=time.time(), generation=0)
        db.session.add(job)
        try:
            db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()
            running = db.session.execute(sa.select(Job.id).where(Job.active_kind == kind)).scalar()
            if running is not None:
                raise JobAlreadyRunning(kind, running) from None
            # The running one ended between our insert and our look: its kind is free, try again.
    else:
        raise JobNotResumable(f"could not start a {kind} job: jobs of its kind keep starting and ending; try again")
    queue(job.id, kind, initial_version=0, generation=0)
    return job.id


def resume_job(job_id):
    """Run an interrupted, failed or cancelled job again from its checkpoint."""
    reap_stale_jobs()
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.status not in (INTERRUPTED, ERROR, CANCELLED):
        raise JobNotResumable(f"job {job_id} is {job.status}; only interrupted, failed or cancelled jobs resume")
    if (job.result or {}).get("resumable") is False:
        raise JobNotResumable(f"job {job_id} failed on its input ({job.message}); resuming would fail the same way. "
                              "Start a new one with other files.")
    generation = job.generation + 1
    try:  # SQLite reports the unique active_kind at the statement, PostgreSQL at commit
        updated = db.session.execute(
            sa.update(Job).where(Job.id == job_id, Job.status == job.status, Job.generation == job.generation)
            .values(status=QUEUED, active_kind=job.kind, cancel_requested=False, owner=owners.current(),
                    heartbeat_at=time.time(), finished_at=None, message=None, generation=generation,
                    takeover_streak=0)
            .execution_options(synchronize_session=False))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        running = db.session.execute(sa.select(Job.id).where(Job.active_kind == job.kind)).scalar()
        if running is None:  # it ended between our update and our look
            raise JobNotResumable(f"job {job_id} could not be resumed just now; try again") from None
        raise JobAlreadyRunning(job.kind, running) from None
    if updated.rowcount != 1:
        raise JobNotResumable(f"job {job_id} changed while resuming; try again")
    previous = store().get(job_id)
    queue(job_id, job.kind, initial_version=previous["version"] if previous else 0, generation=generation)
    return job_id


def queue(job_id, kind, initial_version, generation, message="Queued"):
    """Hand generation `generation` of a job (already recorded as queued) to this app's runner."""
    runner = current_app.extensions["sillon"]["runner"]
    if getattr(runner, "remote", False):  # a Celery worker builds its own tracker
        tracker = new_tracker(job_id, kind, initial_version)
    else:
        run = Run(job_id, generation, store())
        run.tracker = tracker = new_tracker(job_id, kind, initial_version, publish=run.publish)
        with _local_lock:
            _local[job_id] = run
    tracker.set_message(message)
    tracker.flush()
    runner.submit(current_app._get_current_object(), job_id, generation)


_gc_frozen = False


def _freeze_startup_objects():
    """Once per process: move the app's long-lived objects out of the garbage collector's sight.

    Parsing answers (pylast's DOM) makes cyclic garbage, and every collection would otherwise walk
    the ~100,000 objects of the loaded app again; measured, a third of an import's CPU."""
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.collect()
        gc.freeze()


def execute(app, job_id, generation=None):
    """Run generation `generation` of a queued job to its end in this thread (a greenlet under gevent).

    Nothing happens if the job is no longer queued at that generation (cancelled, ended, or handed
    to another runner meanwhile): a late thread or broker message never starts a job again.
    """
    _freeze_startup_objects()
    run = None
    with app.app_context():
        try:
            refresh_settings()  # a worker started before a change runs this job with the new values
            run = _claim(job_id, generation)
            if run is not None:
                _execute(run)
        finally:
            with _local_lock:
                if run is not None and _local.get(job_id) is run:
                    _local.pop(job_id, None)
            db.session.remove()
    return "ran" if run is not None else "not queued"


def _claim(job_id, generation):
    """Take the job for this process (one conditional UPDATE: exactly one runner wins); a Run or None."""
    job = db.session.get(Job, job_id)
    if job is None:
        return None
    if generation is None:  # a message sent before generations existed
        generation = job.generation
    if job.status != QUEUED or job.generation != generation:
        log.info("job %s: generation %s is not queued (%s, generation %s); nothing to run",
                 job_id, generation, job.status, job.generation)
        return None
    with _local_lock:
        run = _local.get(job_id)
        if run is None or run.generation != generation:
            run = _local[job_id] = Run(job_id, generation, store())
    me, now = owners.current(), time.time()
    takeovers = list(job.takeovers or [])
    if takeovers and not takeovers[-1].get("to"):
        takeovers[-1] = {**takeovers[-1], "to": me}
    updated = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == QUEUED, Job.generation == generation)
        .values(status=RUNNING, started_at=job.started_at or now, heartbeat_at=now, owner=me,
                takeovers=takeovers or None)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if updated.rowcount != 1:
        with _local_lock:
            if _local.get(job_id) is run:
                _local.pop(job_id, None)
        return None
    return run


def _execute(run):
    job_id, generation = run.job_id, run.generation
    job = db.session.get(Job, job_id)
    db.session.refresh(job)
    spec = get_kind(job.kind)
    if run.tracker is None:  # started by another process's runner (Celery) or after a restart
        previous = store().get(job_id)
        run.tracker = new_tracker(job_id, job.kind, previous["version"] if previous else 0, publish=run.publish)
    tracker = run.tracker
    ctx = JobContext(job_id, job.kind, dict(job.params or {}), tracker, job.checkpoint, settings(),
                     store=store(), generation=generation, run=run, save_files_elsewhere=_files_saver())
    db.session.remove()  # the job code opens its own transactions; hold no connection meanwhile
    ensure_heartbeat(current_app._get_current_object())
    tracker.start("Starting")
    status, message, result = COMPLETED, "Done", None
    try:
        result = spec.run(ctx)
        message = (result or {}).get("message", "Done") if isinstance(result, dict) else "Done"
    except JobLost:
        run.lost = True
        log.warning("job %s: generation %s was handed to another runner; this one stops and writes nothing",
                    job_id, generation)
        return
    except JobCancelled:
        status, message = CANCELLED, "Cancelled. Everything saved before the cancel is kept."
    except (JobError, SourceError) as exc:
        status, message = ERROR, str(exc)
        if not getattr(exc, "resumable", True):  # the same input would fail the same way
            result = {"resumable": False}
    except Exception as exc:  # noqa: BLE001 - the person gets a message; the log gets the trace
        log.exception("job %s (%s) failed", job_id, job.kind)
        status, message = ERROR, (f"Unexpected error: {exc.__class__.__name__}: {exc}. "
                                  "Everything saved before it is kept; the job can be resumed.")
    if not ctx.still_owner():
        run.lost = True
        return
    if status == COMPLETED:
        tracker.complete(result=result, redirect_url=spec.redirect_url, message=message)
    elif status == CANCELLED:
        tracker.cancelled(message, result=result)
    else:
        tracker.fail(message, result=result)
    snap = tracker.snapshot()
    _record_end(job_id, generation, status=status, active_kind=None, message=message, result=snap["result"],
                finished_at=time.time())
    tracker.flush()  # the final state, if a locked database kept the flusher from publishing it


def _record_end(job_id, generation, **values):
    """Write the job's final status, waiting out a locked or busy database (the job may have
    ended *because* it stayed locked). Given up after a while: the reaper then continues the job
    once its heartbeat stops."""
    patience = Patience(0.1, 5.0, tries=10 ** 6, seconds=max(60.0, 2 * settings()["JOB_STALE_SECONDS"]))

    def attempt():
        try:
            db.session.execute(sa.update(Job).where(Job.id == job_id, Job.generation == generation).values(**values))
            db.session.commit()
        except sa.exc.DBAPIError:
            db.session.rollback()
            raise

    def show(delay, why, _tries):
        log.warning("job %s: could not record its end (%s); trying again in %.1f s", job_id, why, delay)

    try:
        call_with_retries(attempt, patience, reason=transient_reason, on_wait=show)
    except GaveUp as exc:
        raise exc.last from None


def cancel_job(job_id):
    """Ask a queued or running job to stop at its next checkpoint (any process may be running it)."""
    job = db.session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    if job.status in FINAL_STATUSES:
        return job.status
    if job.status == QUEUED and job.owner == BROKER_OWNER and _cancel_in_broker(job_id):
        return CANCELLED
    with _local_lock:
        run = _local.get(job_id)
    if run is not None and run.tracker is not None:  # first: stops even while the database is locked
        run.tracker.request_cancel()
    job.cancel_requested = True
    db.session.commit()
    return "cancelling"


def _cancel_in_broker(job_id):
    """End a job still waiting in the Celery broker (no worker runs it): the task that arrives later does nothing."""
    message = "Cancelled before it started."
    updated = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status == QUEUED, Job.owner == BROKER_OWNER)
        .values(status=CANCELLED, active_kind=None, cancel_requested=True, message=message, finished_at=time.time())
        .execution_options(synchronize_session=False))
    db.session.commit()
    if updated.rowcount != 1:
        return False  # a worker claimed it meanwhile: it hears the cancel at its next check
    publish_end(job_id, CANCELLED, message)
    return True


def publish_end(job_id, status, message):
    """Put a job's end on its page when no runner of it is there to do so."""
    snap = store().get(job_id)
    if snap is not None and snap["status"] not in FINAL_STATUSES:
        snap.update(status=status, message=message, version=snap["version"] + 1, eta_seconds=None, rate=0.0)
        store().publish(snap)


def job_snapshot(job_id):
    """A job's current snapshot (None if unknown), its runner's death seen to first (reaper.py).

    A running job whose beat is late (two beats missed) says so at once: `stalled_seconds`.
    """
    snap = store().get(job_id)
    if snap is None or snap["status"] in FINAL_STATUSES:
        return snap
    if job_id in reap_stale_jobs():
        snap = store().get(job_id)
    beat = db.session.execute(sa.select(Job.heartbeat_at).where(Job.id == job_id, Job.status == RUNNING)).scalar()
    late = time.time() - beat if beat else 0
    if snap is not None and snap["status"] == RUNNING and late > 2 * settings()["JOB_HEARTBEAT_SECONDS"]:
        snap = {**snap, "stalled_seconds": round(late, 1)}
    return snap


# --- heartbeat: one loop per app (one per process, but tests build several) while it runs jobs -------
_heartbeats = {}
_heartbeat_lock = threading.Lock()


def ensure_heartbeat(app):
    with _heartbeat_lock:
        thread = _heartbeats.get(id(app))
        if thread is None or not thread.is_alive():
            thread = _heartbeats[id(app)] = threading.Thread(target=_heartbeat_loop, args=(app,),
                                                             name="job-heartbeat", daemon=True)
            thread.start()


def _heartbeat_loop(app):
    interval = app.extensions["sillon"]["settings"]["JOB_HEARTBEAT_SECONDS"]
    while True:
        with _local_lock:
            runs = {job_id: run for job_id, run in _local.items() if run.app is app}
        if not runs:
            return  # restarted by the next job
        with app.app_context():
            try:
                beat(runs)
            except Exception:  # noqa: BLE001 - a missed beat is retried next tick
                log.exception("job heartbeat failed")
            finally:
                db.session.remove()
        time.sleep(interval)


def beat(runs):
    """Record that this process's jobs are alive, and pass on cancel requests made elsewhere.

    Only the generation each run was handed is beaten: a run whose job went to another runner
    learns it here (and at its next check) and stops."""
    now = time.time()
    lost = []
    for job_id, run in runs.items():
        updated = db.session.execute(sa.update(Job).where(Job.id == job_id, Job.generation == run.generation)
                                     .values(heartbeat_at=now).execution_options(synchronize_session=False))
        if updated.rowcount != 1:
            lost.append(run)
    cancelled = db.session.execute(
        sa.select(Job.id).where(Job.id.in_(list(runs)), Job.cancel_requested.is_(True))).scalars().all()
    db.session.commit()
    for run in lost:
        run.lost = True
    for job_id in cancelled:
        if runs[job_id].tracker is not None:
            runs[job_id].tracker.request_cancel()
