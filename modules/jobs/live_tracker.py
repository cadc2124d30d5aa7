"""Controls of the live tracker (a `lastfm_tracker` job): start, stop, status, and autostart.

The tracker runs once across every process because it is a job, and one job of a kind runs at a
time. Whether it *should* run is a preference, so after a restart the supervisor of whichever
process looks first starts it again.
"""
from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa

from .. import preferences
from ..db import db
from ..importers.lastfm_tracker import ENABLED_KEY, interval_seconds
from ..models import Job, utc_iso
from ..sources.lastfm import missing_settings
from .errors import JobAlreadyRunning
from .lifecycle import cancel_job, reap_stale_jobs, settings, start_job

KIND = "lastfm_tracker"
log = logging.getLogger(__name__)


def active_job():
    return db.session.execute(sa.select(Job).where(Job.active_kind == KIND)).scalar()


def start_tracker():
    """Mark the tracker wanted and start it; returns (job_id, started_now)."""
    preferences.put(ENABLED_KEY, True)
    try:
        return start_job(KIND), True
    except JobAlreadyRunning as exc:
        job = db.session.get(Job, exc.job_id)
        if job is None or not job.cancel_requested:
            return exc.job_id, False
    # A stop is still winding down (it ends within a second): wait for it, then start anew.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        db.session.expire_all()
        if active_job() is None:
            try:
                return start_job(KIND), True
            except JobAlreadyRunning as exc:
                return exc.job_id, False
        time.sleep(0.1)
    job = active_job()
    return (job.id if job else None), False


def stop_tracker():
    preferences.put(ENABLED_KEY, False)
    job = active_job()
    if job is not None:
        cancel_job(job.id)
        return job.id
    return None


def tracker_status():
    reap_stale_jobs()
    job = active_job()
    last = job or db.session.execute(
        sa.select(Job).where(Job.kind == KIND).order_by(Job.created_at.desc()).limit(1)).scalar()
    state = (last.checkpoint or {}) if last else {}
    running = job is not None and not job.cancel_requested
    return {
        "running": running,
        "enabled": bool(preferences.get(ENABLED_KEY, False)),
        "job_id": last.id if last else None,
        "interval_seconds": interval_seconds(settings()),
        "last_track": state.get("last_track"),
        "now_playing": state.get("now_playing") if running else None,
        "last_poll_at": utc_iso(state.get("last_poll_at")),
        "next_poll_at": utc_iso(state.get("next_poll_at")) if running else None,
        "last_error": state.get("last_error") or (last.message if last and last.status == "error" else None),
        "imported": state.get("imported", 0),
    }


def ensure_tracker_running():
    """Start the tracker if it is wanted, configured and not running anywhere (one process wins)."""
    if not settings()["TRACKER_AUTOSTART"] or missing_settings(settings()):
        return None
    if not preferences.get(ENABLED_KEY, False):
        return None
    reap_stale_jobs()
    if active_job() is not None:
        return None
    try:
        return start_job(KIND)
    except JobAlreadyRunning:
        return None


def start_supervisor(app, every=15.0):
    """A loop per server process that brings the tracker back after a restart or a crash."""
    def loop():
        while True:
            with app.app_context():
                try:
                    job_id = ensure_tracker_running()
                    if job_id:
                        log.info("live tracker started (job %s)", job_id)
                except Exception:  # noqa: BLE001 - try again next time round
                    log.exception("tracker supervisor check failed")
                finally:
                    db.session.remove()
            time.sleep(every)

    thread = threading.Thread(target=loop, name="tracker-supervisor", daemon=True)
    thread.start()
    return thread
