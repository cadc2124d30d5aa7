"""What the API answers when it starts a job: 202 with the job's links, or 409 with the links of the
job of that kind already running (one of a kind at a time). Every route that starts a job uses it."""
from __future__ import annotations

from flask import url_for

from ..jobs import JobAlreadyRunning
from .api_errors import error


def job_links(job_id):
    return {"job_id": job_id, "progress_url": url_for("pages.progress", job_id=job_id),
            "events_url": url_for("jobprogress.events", job_id=job_id),
            "status_url": url_for("api.job_status", job_id=job_id)}


def started(start, busy=None):
    """Call `start()` (it returns the job's id): 202 and its links, or the 409 answer when a job of
    its kind already runs (message `busy`, else the job system's own)."""
    try:
        job_id = start()
    except JobAlreadyRunning as exc:
        return error(409, busy or str(exc), **job_links(exc.job_id))
    return job_links(job_id), 202
