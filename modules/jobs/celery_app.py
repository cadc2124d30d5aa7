"""Jobs on Celery (JOB_RUNNER=celery): the same job code, run by `celery -A app.celery worker`.

The server records the job (single-flight by the unique `active_kind` column, as always) and sends
its id and generation to a queue. The task claims the job with a conditional UPDATE on (status
queued, generation) and runs `lifecycle.execute` in a Flask app built once per worker process; a
message whose generation is not the job's current one (cancelled, ended, or continued elsewhere
since it was sent) does nothing.

Recovery does not rest on the broker delivering a dead worker's message again (Redis does so after
CELERY_VISIBILITY_TIMEOUT, an hour; `-P solo` ignores reject_on_worker_lost): each worker runs the
reaper (reaper.py) on its own timer, as each server process does, and the one that takes a dead
worker's job over sends a new message with the next generation. acks_late stays, so a message
taken by a worker that died before claiming it is delivered again.
"""
from __future__ import annotations

import logging
import threading

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from . import lifecycle, upload_group
from . import owner as owners

log = logging.getLogger(__name__)
TASK_NAME = "sillon.run_job"

celery = Celery("sillon")
_state = {"settings": None, "app_factory": None, "flask_app": None}
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
            owners.prefix = owners.WORKER_PREFIX
            _state["flask_app"] = factory()
        return _state["flask_app"]


@celery.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(self, job_id, generation=None, watch=None):  # noqa: ARG001 - `watch`: messages of earlier versions
    return lifecycle.execute(flask_app(), job_id, generation)


@worker_process_init.connect
def _forget_parent_app(**_kwargs):
    """A prefork child forked after the main process built its app builds its own: no connection
    of the parent's pool is shared across the fork. (No lock: a lock held at fork time stays held.)"""
    _state["flask_app"] = None


@worker_ready.connect
def _start_reaper(sender=None, **_kwargs):  # noqa: ARG001 - Celery's signal signature
    """Each worker (its main process, whatever its pool) takes over the jobs of workers that died."""
    if _state["app_factory"] is None:
        return
    from .reaper import start_reaper

    start_reaper(flask_app())


PART_TASK_NAME = "sillon.upload_part"


@celery.task(name=PART_TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_upload_part(job_id, index, file):
    """One file of a multi-file upload (a member of the upload's Celery group: jobs/upload_group)."""
    return upload_group.run_part(flask_app(), job_id, index, file)


def _send_parts(job_id, payloads):
    from celery import group

    queue = lifecycle.settings()["CELERY_QUEUE"]
    group(run_upload_part.s(job_id, i, payload) for i, payload in payloads.items()).apply_async(queue=queue)


def _save_files_as_group(ctx, state, files, readable):
    return upload_group.save_as_group(ctx, state, files, readable, send=_send_parts)


# Uploads of several files run by a job of this runner save them as a Celery group (jobs/upload_group).
lifecycle.save_files_with(_save_files_as_group, upload_group.wanted)
