"""Runners hand a queued job to something that executes it.

ThreadRunner (the default) runs each job in a thread of this process: under gunicorn's gevent
workers that thread is a greenlet, which is why job code calls `ctx.check()` between batches.

CeleryRunner (JOB_RUNNER=celery) sends the job's id to a Celery queue; a worker
(`celery -A app.celery worker`) claims the job and runs the same job code (celery_app.run_job).
"""
from __future__ import annotations

import threading


class ThreadRunner:
    remote = False

    def __init__(self):
        self.threads = {}

    def submit(self, app, job_id, generation=None):
        from .lifecycle import execute  # lifecycle imports this module's users, not the reverse

        thread = threading.Thread(target=execute, args=(app, job_id, generation), name=f"job-{job_id}", daemon=True)
        self.threads[job_id] = thread
        thread.start()
        return thread

    def join(self, job_id, timeout=None):
        """Wait for a job started by this runner (tests and command-line use)."""
        thread = self.threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
            if not thread.is_alive():
                self.threads.pop(job_id, None)


class CeleryRunner:
    """Jobs run in Celery workers; this process only records them and sends their ids."""

    remote = True  # the tracker lives in the worker, not in this process

    def __init__(self, settings):
        from . import celery_app

        self.celery = celery_app.configure(settings)
        self.queue = settings["CELERY_QUEUE"]

    def submit(self, app, job_id, generation=None):
        import sqlalchemy as sa

        from ..db import db
        from ..models import Job
        from . import celery_app
        from .lifecycle import BROKER_OWNER, QUEUED

        # Waiting in the broker: no process of ours owns it, so no reaper takes it over. The message
        # carries the generation: once the job has another (cancelled, ended, continued elsewhere),
        # it does nothing.
        db.session.execute(sa.update(Job).where(Job.id == job_id, Job.status == QUEUED, Job.generation == generation)
                           .values(owner=BROKER_OWNER).execution_options(synchronize_session=False))
        db.session.commit()
        return celery_app.run_job.apply_async(args=[job_id], kwargs={"generation": generation}, queue=self.queue)

    def join(self, job_id, timeout=None):
        """Jobs run elsewhere: nothing to join (poll the job's snapshot instead)."""


def make_runner(name, settings=None):
    if name == "thread":
        return ThreadRunner()
    if name == "celery":
        if settings is None:
            raise ValueError("the celery job runner needs the app's settings")
        return CeleryRunner(settings)
    raise ValueError(f"unknown job runner {name!r}: use 'thread' or 'celery'")
