"""/api/v1/services: Last.fm history import and the live tracker, as people's scripts call them."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, request

from .. import preferences
from ..db import db
from ..importers.enrichment import LANGUAGE_KEY
from ..importers.lastfm_tracker import INTERVAL_KEY, MIN_INTERVAL
from ..jobs import JobAlreadyRunning, start_job
from ..jobs.live_tracker import start_tracker, stop_tracker, tracker_status
from ..models import Job, utc_iso
from ..sources import discogs, lastfm
from . import connections
from .api import error, job_links, json_field
from .listens_query import parse_time

bp = Blueprint("services", __name__, url_prefix="/api/v1/services")


def _settings():
    return current_app.extensions["sillon"]["settings"]


def _flag(name, default):
    value = request.args.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false")


MAX_LIMIT = 10 ** 9
MAX_INTERVAL = 7 * 86400


def _limit():
    """The `limit` query parameter: None, or a whole number from 1 to a billion (ValueError otherwise)."""
    if "limit" not in request.args:
        return None
    limit = request.args.get("limit", type=int)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIMIT:,}")
    return limit


def check_lastfm():
    return lastfm.check_credentials(_settings())


@bp.post("/lastfm/import-history")
def lastfm_import_history():
    try:
        limit = _limit()
        skip_existing = _flag("skip_existing", True)
        incremental = _flag("incremental", skip_existing)
        time_from = parse_time(request.args.get("from"))
        time_to = parse_time(request.args.get("to"), end=True)
    except ValueError as exc:
        return error(400, str(exc))
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    params = {"limit": limit, "skip_existing": skip_existing, "incremental": incremental,
              "from": time_from, "to": time_to}
    try:
        job_id = start_job("lastfm_history", params)
    except JobAlreadyRunning as exc:
        return error(409, "A Last.fm import is already running.", **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.get("/lastfm/import/progress")
def lastfm_import_progress():
    """The latest Last.fm import in the shape older scripts read."""
    job = db.session.execute(sa.select(Job).where(Job.kind == "lastfm_history")
                             .order_by(Job.created_at.desc()).limit(1)).scalar()
    if job is None:
        return jsonify({"status": "idle", "current_batch": 0, "total_batches": 0, "imported": 0, "skipped": 0,
                        "errors": 0, "total_scrobbles": 0})
    snap = current_app.extensions["sillon"]["progress_store"].get(job.id) or {}
    counters = snap.get("counters", {})
    status = {"queued": "starting", "running": "running", "completed": "completed"}.get(snap.get("status"), "error")
    if status == "running" and snap.get("current_step") in ("connect", "count"):
        status = "starting"
    checkpoint = job.checkpoint or {}
    return jsonify({"job_id": job.id, "status": status, "current_batch": counters.get("batches", 0),
                    "total_batches": counters.get("total_batches", 0), "imported": counters.get("imported", 0),
                    "skipped": counters.get("skipped", 0), "errors": counters.get("errors", 0),
                    "total_scrobbles": checkpoint.get("playcount", 0), "message": snap.get("message")})


@bp.post("/lastfm/check")
def lastfm_check():
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    return jsonify({"ok": True, "message": f"Last.fm answers for {_settings()['LASTFM_USERNAME']}."})


@bp.post("/<name>/test")
def service_test(name):
    """One cheap real call to the service; the outcome (and its time) is kept for the settings page."""
    if name not in connections.SERVICES:
        return error(404, f"no service {name!r}; known: {', '.join(connections.SERVICES)}")
    ok, message = connections.run_test(name)
    if ok is None:
        return error(400, message, ok=False)
    state = next(s for s in connections.states() if s["name"] == name)
    body = {"ok": ok, "tested_at": utc_iso(state["last_test"]["at"]), "last_success": utc_iso(state["last_success"])}
    if not ok:
        return error(502, message, **body)
    return jsonify({**body, "message": message})


@bp.get("/tracker/status")
def tracker_get_status():
    return jsonify(tracker_status())


@bp.post("/tracker/start")
def tracker_start():
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    job_id, started = start_tracker()
    return jsonify({**tracker_status(), **job_links(job_id)}), 202 if started else 200


@bp.post("/tracker/stop")
def tracker_stop():
    stop_tracker()
    return jsonify(tracker_status())


@bp.post("/tracker/interval")
def tracker_interval():
    value = request.args.get("seconds", type=int)
    if value is None and request.is_json:
        value = json_field("seconds")
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        return error(400, f"seconds must be a whole number from {MIN_INTERVAL} to {MAX_INTERVAL} (a week)")
    preferences.put(INTERVAL_KEY, value)
    return jsonify(tracker_status())


@bp.post("/discogs/sync")
def discogs_sync():
    try:
        limit = _limit()
    except ValueError as exc:
        return error(400, str(exc))
    missing = discogs.missing_settings(_settings())
    if missing:
        return error(400, "Discogs is not configured: DISCOGS_TOKEN is missing. Create a personal access token at "
                          "https://www.discogs.com/settings/developers and set it in the environment or config.json.")
    try:
        job_id = start_job("discogs_sync", {"limit": limit})
    except JobAlreadyRunning as exc:
        return error(409, "A Discogs sync is already running.", **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.get("/discogs/sync/progress")
def discogs_sync_progress():
    """The latest sync: {status, total, processed, added, skipped, errors}."""
    job = db.session.execute(sa.select(Job).where(Job.kind == "discogs_sync")
                             .order_by(Job.created_at.desc()).limit(1)).scalar()
    if job is None:
        return jsonify({"status": "idle", "total": 0, "processed": 0, "added": 0, "skipped": 0, "errors": 0})
    snap = current_app.extensions["sillon"]["progress_store"].get(job.id) or {}
    counters = snap.get("counters", {})
    result = snap.get("result") or {}
    return jsonify({"job_id": job.id, "status": snap.get("status", job.status),
                    "total": result.get("total", snap.get("total") or 0),
                    "processed": counters.get("added", 0) + counters.get("skipped", 0),
                    "added": counters.get("added", 0), "skipped": counters.get("skipped", 0),
                    "errors": counters.get("errors", 0), "message": snap.get("message")})


@bp.post("/ai/enrich-all")
def enrich_all():
    """Start enrichment (Spotify, Last.fm, AI: each provider that is configured)."""
    try:
        limit = _limit()
    except ValueError as exc:
        return error(400, str(exc))
    try:
        job_id = start_job("enrich", {"limit": limit})
    except JobAlreadyRunning as exc:
        return error(409, "Enrichment is already running.", **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.post("/ai/language")
def ai_language():
    value = request.args.get("language") or json_field("language") or ""
    value = value.strip() if isinstance(value, str) else ""
    if not value or len(value) > 32:
        return error(400, "language must be a language name like English or Français (32 characters at most)")
    preferences.put(LANGUAGE_KEY, value)
    return jsonify({"language": value})
