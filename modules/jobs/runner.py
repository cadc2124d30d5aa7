"""Runners hand a queued job to something that executes it.

ThreadRunner (the default) runs each job in a thread of this process: under gunicorn's gevent
workers that thread is a greenlet, which is why job code calls `ctx.check()` between batches.
"""
from __future__ import annotations

import threading


class ThreadRunner:
    def __init__(self):
        self.threads = {}

    def submit(self, app, job_id):
        from .lifecycle import execute  # lifecycle imports this module's users, not the reverse

        thread = threading.Thread(target=execute, args=(app, job_id), name=f"job-{job_id}", daemon=True)
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


def make_runner(name):
    if name == "thread":
        return ThreadRunner()
    raise ValueError(f"unknown job runner {name!r}: use 'thread'")
