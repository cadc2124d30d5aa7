"""Jobs whose runner died are continued by a live one, without anyone pressing Resume.

Every server process and every Celery worker runs `reap` on a timer of its own (every
JOB_HEARTBEAT_SECONDS, `start_reaper`), and before each start, resume and snapshot. A queued or
running job whose runner stopped (no beat for JOB_STALE_SECONDS, or a dead pid on this host) is
taken over with one conditional UPDATE on its generation, so exactly one process wins however many
look at once; the winner hands the new generation to its runner: a thread of this process, or a
new Celery message carrying the generation. The old runner, if it still lives, finds another
generation at its next check or checkpoint and writes nothing more. Broker redelivery plays no
part (docs/faults.md says why).

JOB_MAX_TAKEOVERS takeovers in a row (without a saved batch in between) and the next death stops
the job with a message that says so: a job that kills its runner must not loop. With
JOB_AUTO_RESUME off, a job whose runner died is marked interrupted instead, to be resumed by hand.
"""
from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from flask import current_app
from flask_jobprogress import ERROR, INTERRUPTED, QUEUED, RUNNING
from sqlalchemy.exc import IntegrityError

from ..db import db
from ..models import Job
from . import lifecycle
from . import owner as owners

log = logging.getLogger(__name__)
INTERRUPTED_MESSAGE = ("The process running this job stopped (server restarted or killed). "
                       "Everything saved before that is kept; resume the job to continue from its last checkpoint.")
_reap_lock = threading.Lock()  # one reap at a time per process: it never takes over a job from itself


def exhausted_message(count, last_owner):
    return (f"Stopped: the process running this job died {count} times in a row without saving a batch in "
            f"between (last: {owners.label(last_owner)}). The job itself may be what kills it (memory, a crash "
            "in a library); everything saved is kept. Resume it to try again once the cause is fixed.")


def _stopped(owner, beat, status, now, stale_seconds):
    if owner == owners.BROKER_OWNER:
        return False  # waiting in the broker: no process of ours has it yet
    if (beat or 0) < now - stale_seconds or owners.dead_here(owner):
        return True
    # This very process, which no longer runs it (its thread ended without recording the end).
    return status == RUNNING and owner == owners.current()


def reap(now=None, startup=False):
    """Take over the jobs whose runner stopped; returns their ids.

    `startup` (a server process starting): jobs left interrupted by a runner's death are
    continued too, when JOB_AUTO_RESUME is on.
    """
    settings = lifecycle.settings()
    with _reap_lock:
        now = now or time.time()
        statuses = (QUEUED, RUNNING, INTERRUPTED) if startup and settings["JOB_AUTO_RESUME"] else (QUEUED, RUNNING)
        rows = db.session.execute(
            sa.select(Job.id, Job.kind, Job.status, Job.owner, Job.heartbeat_at, Job.generation)
            .where(Job.status.in_(statuses))).all()
        db.session.commit()
        taken = []
        for row in rows:
            if lifecycle.runs_here(row.id):
                continue
            if row.status == INTERRUPTED or _stopped(row.owner, row.heartbeat_at, row.status, now,
                                                     settings["JOB_STALE_SECONDS"]):
                if take_over(row.id, row.generation, now):
                    taken.append(row.id)
        return taken


def take_over(job_id, generation, now):
    """Continue, stop or mark interrupted one job whose runner died; True if this process did."""
    settings = lifecycle.settings()
    job = db.session.get(Job, job_id)
    if job is None or job.generation != generation:
        return False
    snap = lifecycle.store().get(job_id) or {}
    streak, previous = job.takeover_streak + 1, job.owner  # read now: the commit below expires `job`
    entry = {"at": now, "from": previous, "done": snap.get("done"), "total": snap.get("total"),
             "step": snap.get("current_step"), "generation": generation + 1}
    values = {"generation": generation + 1, "takeovers": [*(job.takeovers or []), entry], "heartbeat_at": now}
    if not settings["JOB_AUTO_RESUME"] and job.status != INTERRUPTED:
        values.update(takeovers=job.takeovers, status=INTERRUPTED, active_kind=None, message=INTERRUPTED_MESSAGE, finished_at=now)
        outcome = INTERRUPTED
    elif streak > settings["JOB_MAX_TAKEOVERS"]:
        values.update(status=ERROR, active_kind=None, message=exhausted_message(streak, previous), finished_at=now)
        outcome = ERROR
    else:
        runner = current_app.extensions["sillon"]["runner"]
        values.update(status=QUEUED, active_kind=job.kind, takeover_streak=streak, finished_at=None, message=None,
                      owner=owners.BROKER_OWNER if getattr(runner, "remote", False) else owners.current())
        outcome = QUEUED
    try:  # SQLite reports the unique active_kind at the statement, PostgreSQL at commit
        updated = db.session.execute(
            sa.update(Job).where(Job.id == job_id, Job.generation == generation, Job.status == job.status)
            .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except IntegrityError:  # an interrupted job whose kind another job holds now: left for a person
        db.session.rollback()
        return False
    if updated.rowcount != 1:
        db.session.rollback()
        return False  # another process took it first
    if outcome == QUEUED:
        log.warning("job %s (%s): %s stopped; continuing it from its checkpoint (takeover %d in a row)",
                    job_id, job.kind, owners.label(previous), streak)
        lifecycle.queue(job_id, job.kind, initial_version=snap.get("version", 0), generation=generation + 1,
                        message=f"Continuing from the last checkpoint: {owners.label(previous)} stopped")
    else:
        lifecycle.publish_end(job_id, outcome, values["message"])
        log.warning("job %s (%s) %s: %s", job_id, job.kind, outcome, values["message"])
    return True


lifecycle.set_reaper(reap)


# --- the timer ---------------------------------------------------------------------------
_timers = {}
_timers_lock = threading.Lock()


def start_reaper(app):
    """Reap every JOB_HEARTBEAT_SECONDS in a thread of this process, whatever pages or streams are open."""
    every = app.extensions["sillon"]["settings"]["JOB_HEARTBEAT_SECONDS"]
    with _timers_lock:
        thread = _timers.get(id(app))
        if thread is not None and thread.is_alive():
            return thread

        def loop():
            while True:
                time.sleep(every)
                with app.app_context():
                    try:
                        reap()
                    except Exception:  # noqa: BLE001 - a locked or unreachable database: next time round
                        log.exception("job reaper failed")
                    finally:
                        db.session.remove()

        thread = _timers[id(app)] = threading.Thread(target=loop, name="job-reaper", daemon=True)
        thread.start()
        return thread
