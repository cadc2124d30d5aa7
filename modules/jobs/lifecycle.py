"""Start, run, cancel, resume and reap jobs.

The `jobs` table is the control record every process shares: one job of a kind at a time
(unique `active_kind`), cancellation requests, heartbeats and checkpoints. The live view of
a job is its ProgressTracker, published to the progress store.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
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
from .context import JobContext
from .errors import JobAlreadyRunning, JobCancelled, JobError, JobNotFound, JobNotResumable
from .kinds import get_kind

log = logging.getLogger(__name__)
ACTIVE = (QUEUED, RUNNING)
INTERRUPTED_MESSAGE = ("The process running this job stopped (server restarted or killed). "
                       "Everything saved before that is kept; resume the job to continue from its last checkpoint.")

# Owner of a job handed to Celery and still waiting in the broker: no process runs it yet, so
# the reaper leaves it alone and the worker that receives it claims it (see celery_app.claim).
BROKER_OWNER = "celery:queued"
# "celery@" in Celery worker processes: the owner of a job a worker runs is then never taken for
# a server process of this host, whose dead pid would mark the job interrupted at once, while the
# broker is about to deliver it again to another worker.
OWNER_PREFIX = ""

# Trackers of the jobs this process runs, for cancel and heartbeat.
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


def _owner():
    # Recomputed per call: gunicorn forks workers after import, so the pid at import is the master's.
    return f"{OWNER_PREFIX}{socket.gethostname()}:{os.getpid()}"


def new_tracker(job_id, kind, initial_version=0):
    spec = get_kind(kind)
    return ProgressTracker(job_id, kind, spec.steps, publish=store().publish,
                           min_interval=settings()["PROGRESS_PUBLISH_INTERVAL"], initial_version=initial_version)


def start_job(kind, params=None):
    """Record a queued job and hand it to the runner; raises JobAlreadyRunning (409) if one of its kind runs."""
    get_kind(kind)  # unknown kinds fail before anything is written
    reap_stale_jobs()
    for _attempt in range(5):
        job = Job(id=uuid.uuid4().hex, kind=kind, status=QUEUED, active_kind=kind, params=params or {},
                  owner=_owner(), heartbeat_at=time.time(), created_at=time.time())
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
    _queue(job.id, kind, initial_version=0)
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
    try:  # SQLite reports the unique active_kind at the statement, PostgreSQL at commit
        updated = db.session.execute(
            sa.update(Job).where(Job.id == job_id, Job.status == job.status)
            .values(status=QUEUED, active_kind=job.kind, cancel_requested=False, owner=_owner(),
                    heartbeat_at=time.time(), finished_at=None, message=None)
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
    _queue(job_id, job.kind, initial_version=previous["version"] if previous else 0)
    return job_id


def _queue(job_id, kind, initial_version):
    tracker = new_tracker(job_id, kind, initial_version)
    tracker.set_message("Queued")
    tracker.flush()
    runner = current_app.extensions["sillon"]["runner"]
    if not getattr(runner, "remote", False):  # a Celery worker builds its own tracker
        with _local_lock:
            _local[job_id] = tracker
    runner.submit(current_app._get_current_object(), job_id)


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


def execute(app, job_id):
    """Run one job to its end in this thread (a greenlet under gevent)."""
    _freeze_startup_objects()
    with app.app_context():
        try:
            refresh_settings()  # a worker started before a change runs this job with the new values
            _execute(job_id)
        finally:
            with _local_lock:
                _local.pop(job_id, None)
            db.session.remove()


def _execute(job_id):
    job = db.session.get(Job, job_id)
    spec = get_kind(job.kind)
    with _local_lock:
        tracker = _local.get(job_id)
    if tracker is None:  # started by another process's runner (Celery) or after a restart
        previous = store().get(job_id)
        tracker = new_tracker(job_id, job.kind, previous["version"] if previous else 0)
        with _local_lock:
            _local[job_id] = tracker
    now = time.time()
    job.status, job.started_at, job.heartbeat_at, job.owner = RUNNING, job.started_at or now, now, _owner()
    db.session.commit()
    ctx = JobContext(job_id, job.kind, dict(job.params or {}), tracker, job.checkpoint, settings(),
                     store=store())
    db.session.remove()  # the job code opens its own transactions; hold no connection meanwhile
    ensure_heartbeat(current_app._get_current_object())
    tracker.start("Starting")
    status, message, result = COMPLETED, "Done", None
    try:
        result = spec.run(ctx)
        message = (result or {}).get("message", "Done") if isinstance(result, dict) else "Done"
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
    if status == COMPLETED:
        tracker.complete(result=result, redirect_url=spec.redirect_url, message=message)
    elif status == CANCELLED:
        tracker.cancelled(message, result=result)
    else:
        tracker.fail(message, result=result)
    snap = tracker.snapshot()
    _record_end(job_id, status=status, active_kind=None, message=message, result=snap["result"],
                finished_at=time.time())
    tracker.flush()  # the final state, if a locked database kept the flusher from publishing it


def _record_end(job_id, **values):
    """Write the job's final status, waiting out a locked or busy database (the job may have
    ended *because* it stayed locked). Given up after a while: the reaper then marks the job
    interrupted once its heartbeat stops, and it can be resumed."""
    patience = Patience(0.1, 5.0, tries=10 ** 6, seconds=max(60.0, 2 * settings()["JOB_STALE_SECONDS"]))

    def attempt():
        try:
            db.session.execute(sa.update(Job).where(Job.id == job_id).values(**values))
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
        tracker = _local.get(job_id)
    if tracker is not None:  # first: a job of this process stops even while the database is locked
        tracker.request_cancel()
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
        return False  # a worker claimed it meanwhile: it hears the cancel through its heartbeat
    snap = store().get(job_id)
    if snap is not None and snap["status"] not in FINAL_STATUSES:
        snap.update(status=CANCELLED, message=message, version=snap["version"] + 1, eta_seconds=None, rate=0.0)
        store().publish(snap)
    return True


def reap_stale_jobs(now=None):
    """Mark jobs whose process died as interrupted, and free their kind for a new start."""
    now = now or time.time()
    stale_before = now - settings()["JOB_STALE_SECONDS"]
    candidates = db.session.execute(
        sa.select(Job.id, Job.owner, Job.heartbeat_at).where(Job.status.in_(ACTIVE))).all()
    host = socket.gethostname()
    dead = []
    for job_id, owner, beat in candidates:
        if owner == BROKER_OWNER:
            continue
        with _local_lock:
            if job_id in _local:
                continue
        owner_host, _, pid = (owner or "").rpartition(":")
        if (beat or 0) < stale_before or (owner_host == host and pid.isdigit() and not _pid_alive(int(pid))):
            dead.append(job_id)
    for job_id in dead:
        _mark_interrupted(job_id, now)
    return dead


def _mark_interrupted(job_id, now):
    updated = db.session.execute(
        sa.update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(status=INTERRUPTED, active_kind=None, message=INTERRUPTED_MESSAGE, finished_at=now))
    db.session.commit()
    if updated.rowcount != 1:
        return
    snap = store().get(job_id)
    if snap is not None and snap["status"] not in FINAL_STATUSES:
        snap.update(status=INTERRUPTED, message=INTERRUPTED_MESSAGE, version=snap["version"] + 1,
                    eta_seconds=None, rate=0.0)
        store().publish(snap)
    log.warning("job %s marked interrupted: its process stopped", job_id)


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie runs nothing
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def job_snapshot(job_id):
    """A job's current snapshot (None if unknown), marking it interrupted first if its process died."""
    snap = store().get(job_id)
    if snap is None or snap["status"] in FINAL_STATUSES:
        return snap
    if job_id in reap_stale_jobs():
        return store().get(job_id)
    return snap


# --- heartbeat: one loop per process while it runs jobs ---------------------------------
_heartbeat_thread = None
_heartbeat_lock = threading.Lock()


def ensure_heartbeat(app):
    global _heartbeat_thread
    with _heartbeat_lock:
        if _heartbeat_thread is None or not _heartbeat_thread.is_alive():
            _heartbeat_thread = threading.Thread(target=_heartbeat_loop, args=(app,), name="job-heartbeat", daemon=True)
            _heartbeat_thread.start()


def _heartbeat_loop(app):
    interval = app.extensions["sillon"]["settings"]["JOB_HEARTBEAT_SECONDS"]
    while True:
        with _local_lock:
            trackers = dict(_local)
        if not trackers:
            return  # restarted by the next job
        with app.app_context():
            try:
                beat(trackers)
            except Exception:  # noqa: BLE001 - a missed beat is retried next tick
                log.exception("job heartbeat failed")
            finally:
                db.session.remove()
        time.sleep(interval)


def beat(trackers):
    """Record that this process's jobs are alive, and pass on cancel requests made elsewhere."""
    ids = list(trackers)
    db.session.execute(sa.update(Job).where(Job.id.in_(ids)).values(heartbeat_at=time.time()))
    cancelled = db.session.execute(
        sa.select(Job.id).where(Job.id.in_(ids), Job.cancel_requested.is_(True))).scalars().all()
    db.session.commit()
    for job_id in cancelled:
        trackers[job_id].request_cancel()
