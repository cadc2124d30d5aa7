"""Jobs on Celery (JOB_RUNNER=celery): the same job code, run by `celery -A app.celery worker`.

The server records the job (single-flight by the unique `active_kind` column, as always) and sends
its id to a queue. The task claims the job with a conditional UPDATE on (status, owner, heartbeat)
and runs `lifecycle.execute` in a Flask app built once per worker process.

Delivery is at least once: acks_late + reject_on_worker_lost + prefetch 1, so a worker that dies
mid-job leaves its message unacknowledged and the broker delivers it again (Redis: after
CELERY_VISIBILITY_TIMEOUT; RabbitMQ: as soon as the connection drops). What a delivery does
depends on the job's record:
- queued: claim it and run it;
- running, its owner still beating: a duplicate. It must not run; it stays as a watcher (a retry
  every few seconds) so that if the owner dies later a message is still there to take the job
  over. One watcher per job (a Redis key), so long jobs do not gather watchers;
- running, its owner dead (no beat for JOB_STALE_SECONDS, or a dead pid on this host): take it
  over and run it again from its checkpoint;
- interrupted (a server marked it so before the broker delivered it again): resume it from its
  checkpoint if its kind is free; otherwise leave it for the person to resume;
- completed, failed or cancelled: nothing.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

import sqlalchemy as sa
from celery import Celery
from flask_jobprogress import INTERRUPTED, QUEUED, RUNNING
from sqlalchemy.exc import IntegrityError

from ..db import db
from ..models import Job
from . import lifecycle

log = logging.getLogger(__name__)
TASK_NAME = "sillon.run_job"
WORKER_OWNER_PREFIX = "celery@"
WATCH_KEY = "sillon:job-watch:{}"

celery = Celery("sillon")
_state = {"settings": None, "app_factory": None, "flask_app": None, "redis": None}
_lock = threading.RLock()  # flask_app() -> create_app() -> configure() takes it again


def configure(settings, app_factory=None):
    """Point the Celery app at the broker and queue of `settings`; returns it.

    `app_factory` builds the Flask app a worker runs jobs in (app.create_app); the worker calls
    it once, on its first task.
    """
    broker = settings.get("CELERY_BROKER_URL") or settings["REDIS_URL"]
    visibility = int(settings["CELERY_VISIBILITY_TIMEOUT"])
    with _lock:
        if app_factory is not None:
            _state["app_factory"] = app_factory
        if _state["settings"] is None or _key(_state["settings"]) != _key(settings):
            _state["settings"] = dict(settings)
            _state["redis"] = None
            celery.conf.update(
                broker_url=broker,
                task_default_queue=settings["CELERY_QUEUE"],
                task_acks_late=True,
                task_reject_on_worker_lost=True,
                worker_prefetch_multiplier=1,
                task_ignore_result=True,
                broker_connection_retry_on_startup=True,
                broker_transport_options={
                    "visibility_timeout": visibility,
                    # sweep for messages of dead workers often enough for the timeout to matter
                    "unacked_restore_interval": max(1, min(10, visibility // 4)),
                    "unacked_restore_throttle": 1,
                },
                worker_hijack_root_logger=False,
            )
    return celery


def _key(settings):
    return tuple(settings.get(k) for k in ("CELERY_BROKER_URL", "REDIS_URL", "CELERY_QUEUE",
                                           "CELERY_VISIBILITY_TIMEOUT"))


def flask_app():
    """The worker process's Flask app, built on its first task."""
    with _lock:
        if _state["flask_app"] is None:
            factory = _state["app_factory"]
            if factory is None:
                raise RuntimeError("start workers with `celery -A app.celery worker` (the app factory is unset)")
            lifecycle.OWNER_PREFIX = WORKER_OWNER_PREFIX
            _state["flask_app"] = factory()
        return _state["flask_app"]


# --- claiming -----------------------------------------------------------------------------
CLAIMED, BUSY, FINISHED = "claimed", "busy", "finished"


def owner_gone(job_id, owner, beat, now, stale_seconds):
    """Whether the process that owns a running job has stopped."""
    if (beat or 0) < now - stale_seconds:
        return True
    if owner == lifecycle._owner():  # this very process (a thread pool delivered it here again)
        with lifecycle._local_lock:
            return job_id not in lifecycle._local
    host, _, pid = (owner or "").rpartition(":")
    host = host.removeprefix(WORKER_OWNER_PREFIX)
    if host == socket.gethostname() and pid.isdigit():
        return not lifecycle._pid_alive(int(pid))
    return False


def claim(job_id, now=None):
    """Take the job for this process if nobody alive runs it: CLAIMED, BUSY or FINISHED."""
    now = now or time.time()
    row = db.session.execute(sa.select(Job.status, Job.owner, Job.heartbeat_at, Job.kind)
                             .where(Job.id == job_id)).first()
    if row is None:
        return FINISHED
    status, owner, beat, kind = row
    if status not in (QUEUED, RUNNING, INTERRUPTED):
        return FINISHED
    if status == RUNNING and not owner_gone(job_id, owner, beat, now,
                                            lifecycle.settings()["JOB_STALE_SECONDS"]):
        return BUSY
    values = {"status": RUNNING, "owner": lifecycle._owner(), "heartbeat_at": now}
    if status == INTERRUPTED:
        values.update(active_kind=kind, finished_at=None, message=None, cancel_requested=False)
    try:  # SQLite reports the unique active_kind at the statement, PostgreSQL at commit
        updated = db.session.execute(
            sa.update(Job).where(Job.id == job_id, Job.status == status,
                                 Job.owner.is_not_distinct_from(owner),
                                 Job.heartbeat_at.is_not_distinct_from(beat))
            .values(**values).execution_options(synchronize_session=False))
        db.session.commit()
    except IntegrityError:  # an interrupted job whose kind another job holds now
        db.session.rollback()
        return FINISHED
    if updated.rowcount != 1:
        return BUSY  # another delivery claimed it first
    if status != QUEUED:
        log.warning("job %s (%s) taken over from %s (%s); running again from its checkpoint",
                    job_id, kind, owner, status)
    return CLAIMED


# --- one watcher per job --------------------------------------------------------------------
def _redis():
    settings = _state["settings"]
    broker = settings.get("CELERY_BROKER_URL") or settings["REDIS_URL"]
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        return None  # other brokers redeliver only when a worker's connection drops
    if _state["redis"] is None:
        import redis

        _state["redis"] = redis.Redis.from_url(broker)
    return _state["redis"]


def _hold_watch(job_id, token, ttl):
    """True if `token` is (now) the job's one watcher."""
    client = _redis()
    if client is None:
        return True
    key = WATCH_KEY.format(job_id)
    if client.set(key, token, nx=True, ex=ttl):
        return True
    if (client.get(key) or b"").decode() == token:
        client.expire(key, ttl)
        return True
    return False


def _release_watch(job_id, token):
    client = _redis()
    if client is not None and token:
        key = WATCH_KEY.format(job_id)
        if (client.get(key) or b"").decode() == token:
            client.delete(key)


@celery.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             max_retries=None)
def run_job(self, job_id, watch=None):
    app = flask_app()
    settings = app.extensions["sillon"]["settings"]
    with app.app_context():
        try:
            outcome = claim(job_id)
        finally:
            db.session.remove()
    if outcome == CLAIMED:
        _release_watch(job_id, watch)
        lifecycle.execute(app, job_id)
        return "ran"
    if outcome == BUSY:
        visibility = settings["CELERY_VISIBILITY_TIMEOUT"]
        # Look again well before the broker would deliver the retry itself again.
        every = max(0.5, min(settings["JOB_STALE_SECONDS"] / 3, visibility / 3, 10.0))
        token = watch or uuid.uuid4().hex
        if _hold_watch(job_id, token, ttl=int(visibility + 4 * every) + 1):
            raise self.retry(args=[job_id], kwargs={"watch": token}, countdown=every)
        return "watched by another delivery"
    _release_watch(job_id, watch)
    return outcome


PART_TASK_NAME = "sillon.upload_part"


@celery.task(name=PART_TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_upload_part(job_id, index, file):
    """One file of a multi-file upload (a member of the upload's Celery group: importers/upload_group)."""
    from ..importers.upload_group import run_part

    return run_part(flask_app(), job_id, index, file)
