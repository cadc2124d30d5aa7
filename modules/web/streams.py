"""Server-Sent Events: GET /api/v1/jobs/<id>/events streams a job's progress until it ends.

Served by flask_jobprogress's extension (its event-stream route only: the JSON snapshot and cancel
are /api/v1 routes of their own), with Sillon's job snapshots: the jobs table says which jobs exist, and every
JOB_HEARTBEAT_SECONDS of an idle stream a job whose process died is found (and continued), and a
running job whose beat is late is sent again with `stalled_seconds`, and without it once the beats
come back (the same version: the extension sends a snapshot whose content changed). The extension also
serves the browser client, /static/jobprogress/jobprogress.js, that static/js/progress.js builds on.
"""
from __future__ import annotations

from flask_jobprogress import JobProgress

from ..db import db
from ..jobs import job_snapshot

progress = JobProgress()


def init_app(app):
    sillon = app.extensions["sillon"]
    # Asked every beat while a stream is idle: a late beat is on the page within one beat of it.
    progress.init_app(app, store=sillon["progress_store"], url_prefix="/api/v1/jobs", routes=("events",),
                      static_url_path="/static/jobprogress", snapshot=_snapshot,
                      heartbeat=sillon["settings"]["SSE_HEARTBEAT_SECONDS"],
                      refresh_seconds=sillon["settings"]["JOB_HEARTBEAT_SECONDS"])


def _snapshot(job_id):
    try:
        return job_snapshot(job_id)
    finally:
        db.session.remove()  # a stream holds no database connection while it waits


def open_streams():
    """Streams of this process being served now (GET /api/v1/health shows it)."""
    return progress.open_streams()
