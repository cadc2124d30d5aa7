"""/api/v1/services: Last.fm history import and the live tracker, as people's scripts call them."""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app
from marshmallow import fields, validate

from ..db import db
from ..importers.lastfm_tracker import MIN_INTERVAL
from ..jobs import start_job
from ..jobs.live_tracker import start_tracker, stop_tracker, tracker_status
from ..models import Job, utc_iso
from ..sources import discogs, lastfm
from ..stored_settings import SettingRefused
from . import connections
from .api_errors import error
from .api_fields import Body, Moment, Query, flag, whole
from .api_schemas import AlreadyRunning, Answer, Error, JobLinks, TrackerStarted, TrackerStatus
from .job_answers import job_links, started
from .openapi import Blueprint

bp = Blueprint("services", __name__, url_prefix="/api/v1/services",
               description="Last.fm, Discogs and enrichment, and the live tracker")
MAX_LIMIT = 10 ** 9
MAX_INTERVAL = 7 * 86400
DISCOGS_MISSING = ("Discogs is not configured: DISCOGS_TOKEN is missing. Create a personal access token at "
                   "https://www.discogs.com/settings/developers and save it on the settings page.")


def _settings():
    return current_app.extensions["sillon"]["settings"]


def check_lastfm():
    return lastfm.check_credentials(_settings())


class LimitQuery(Query):
    limit = whole("limit must be a whole number from 1 to 1,000,000,000", low=1, high=MAX_LIMIT,
                  metadata={"description": "At most this many items; none means all"})


class LastfmImportQuery(LimitQuery):
    skip_existing = flag("skip_existing", load_default=True)
    incremental = flag("incremental", "Only what is newer than the latest import; defaults to skip_existing. ")
    start = Moment(data_key="from")
    end = Moment(data_key="to", end=True)


@bp.post("/lastfm/import-history")
@bp.arguments(LastfmImportQuery(), location="query")
@bp.response(202, JobLinks, description="The import is queued; follow it at events_url or status_url")
@bp.alt_response(409, schema=AlreadyRunning, description="A Last.fm import is already running")
def lastfm_import_history(args):
    """Import the Last.fm history through the API (incremental by default)"""
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    params = {"limit": args.get("limit"), "skip_existing": args["skip_existing"],
              "incremental": args.get("incremental", args["skip_existing"]),
              "from": args.get("start"), "to": args.get("end")}
    return started(lambda: start_job("lastfm_history", params), "A Last.fm import is already running.")


class LastfmProgress(Answer):
    job_id = fields.String()
    status = fields.String(required=True, validate=validate.OneOf(("idle", "starting", "running", "completed",
                                                                   "error")))
    current_batch = fields.Integer(required=True)
    total_batches = fields.Integer(required=True)
    imported = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    errors = fields.Integer(required=True)
    total_scrobbles = fields.Integer(required=True)
    message = fields.String(allow_none=True)


@bp.get("/lastfm/import/progress")
@bp.response(200, LastfmProgress)
def lastfm_import_progress():
    """The latest Last.fm import, in the shape older scripts read"""
    job = db.session.execute(sa.select(Job).where(Job.kind == "lastfm_history")
                             .order_by(Job.created_at.desc()).limit(1)).scalar()
    if job is None:
        return {"status": "idle", "current_batch": 0, "total_batches": 0, "imported": 0, "skipped": 0,
                "errors": 0, "total_scrobbles": 0}
    snap = current_app.extensions["sillon"]["progress_store"].get(job.id) or {}
    counters = snap.get("counters", {})
    status = {"queued": "starting", "running": "running", "completed": "completed"}.get(snap.get("status"), "error")
    if status == "running" and snap.get("current_step") in ("connect", "count"):
        status = "starting"
    checkpoint = job.checkpoint or {}
    return {"job_id": job.id, "status": status, "current_batch": counters.get("batches", 0),
            "total_batches": counters.get("total_batches", 0), "imported": counters.get("imported", 0),
            "skipped": counters.get("skipped", 0), "errors": counters.get("errors", 0),
            "total_scrobbles": checkpoint.get("playcount", 0), "message": snap.get("message")}


class CheckResult(Answer):
    ok = fields.Boolean(required=True)
    message = fields.String(required=True)


@bp.post("/lastfm/check")
@bp.response(200, CheckResult, description="Last.fm accepts the settings")
@bp.alt_response(400, schema=Error, description="Last.fm is not configured, or refuses the settings; the message "
                                                "says which and what to do")
def lastfm_check():
    """Whether Last.fm accepts the configured settings"""
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    return {"ok": True, "message": f"Last.fm answers for {_settings()['LASTFM_USERNAME']}."}


class Tested(Answer):
    ok = fields.Boolean(required=True, validate=validate.Equal(True))
    message = fields.String(required=True)
    tested_at = fields.String(required=True, metadata={"description": "UTC, ISO 8601"})
    last_success = fields.String(allow_none=True, metadata={
        "description": "UTC, ISO 8601: this test or a job of the service"})


class NotConfigured(Error):
    ok = fields.Boolean(validate=validate.Equal(False))


class TestFailed(Error):
    ok = fields.Boolean(required=True, validate=validate.Equal(False))
    tested_at = fields.String(required=True)
    last_success = fields.String(allow_none=True)


SERVICE_NAME = {"name": "name", "in": "path", "required": True, "description": "Any other name answers 404",
                "schema": {"type": "string", "enum": list(connections.SERVICES)}}


@bp.route("/<name>/test", methods=["POST"], parameters=[SERVICE_NAME])
@bp.response(200, Tested, description="The service answered as it should")
@bp.alt_response(400, schema=NotConfigured, description="The service is not configured; the message names the "
                                                        "missing settings")
@bp.alt_response(404, schema=Error, description="No such service")
@bp.alt_response(502, schema=TestFailed, description="The service refused or did not answer; the message says why "
                                                     "(secrets blotted out)")
def service_test(name):
    """One cheap real call to the service; the outcome and its time are kept for the settings page"""
    if name not in connections.SERVICES:
        return error(404, f"no service {name!r}; known: {', '.join(connections.SERVICES)}")
    ok, message = connections.run_test(name)
    if ok is None:
        return error(400, message, ok=False)
    state = next(s for s in connections.states() if s["name"] == name)
    body = {"ok": ok, "tested_at": utc_iso(state["last_test"]["at"]), "last_success": utc_iso(state["last_success"])}
    if not ok:
        return error(502, message, **body)
    return {**body, "message": message}


@bp.get("/tracker/status")
@bp.response(200, TrackerStatus)
@bp.doc(operationId="trackerStatus")
def tracker_get_status():
    """The live tracker's state"""
    return tracker_status()


@bp.post("/tracker/start")
@bp.response(200, TrackerStarted, description="It was already running")
@bp.alt_response(202, schema=TrackerStarted, description="Started", success=True)
@bp.alt_response(400, schema=Error, description="Last.fm is not configured, or refuses the settings")
def tracker_start():
    """Start the live tracker (and keep it wanted across restarts)"""
    problem = check_lastfm()
    if problem:
        return error(400, problem)
    job_id, started_now = start_tracker()
    return {**tracker_status(), **job_links(job_id)}, 202 if started_now else 200


@bp.post("/tracker/stop")
@bp.response(200, TrackerStatus)
def tracker_stop():
    """Stop the live tracker"""
    stop_tracker()
    return tracker_status()


INTERVAL_REFUSAL = f"seconds must be a whole number from {MIN_INTERVAL} to {MAX_INTERVAL} (a week)"


class IntervalQuery(Query):
    seconds = whole(INTERVAL_REFUSAL, low=MIN_INTERVAL, high=MAX_INTERVAL)


class IntervalBody(Body):
    seconds = whole(INTERVAL_REFUSAL, low=MIN_INTERVAL, high=MAX_INTERVAL, strict=True)


@bp.post("/tracker/interval")
@bp.arguments(IntervalQuery(), location="query")
@bp.arguments(IntervalBody(), location="json", required=False,
              description="The same, as JSON (the query parameter wins when both are sent)")
@bp.response(200, TrackerStatus)
def tracker_interval(query, body):
    """How often the tracker polls, in seconds (at least 10)"""
    value = query.get("seconds", body.get("seconds"))
    if value is None:
        return error(400, INTERVAL_REFUSAL)
    try:
        _settings().save({"TRACKER_INTERVAL_SECONDS": value})
    except SettingRefused as exc:
        return error(400, exc.problems["TRACKER_INTERVAL_SECONDS"])
    return tracker_status()


@bp.post("/discogs/sync")
@bp.arguments(LimitQuery(), location="query")
@bp.response(202, JobLinks, description="The sync is queued; follow it at events_url or status_url")
@bp.alt_response(409, schema=AlreadyRunning, description="A Discogs sync is already running")
def discogs_sync(args):
    """Add what is new in the Discogs collection"""
    if discogs.missing_settings(_settings()):
        return error(400, DISCOGS_MISSING)
    return started(lambda: start_job("discogs_sync", {"limit": args.get("limit")}),
                   "A Discogs sync is already running.")


class DiscogsProgress(Answer):
    job_id = fields.String()
    status = fields.String(required=True)
    total = fields.Integer(required=True)
    processed = fields.Integer(required=True)
    added = fields.Integer(required=True)
    skipped = fields.Integer(required=True)
    errors = fields.Integer(required=True)
    message = fields.String(allow_none=True)


@bp.get("/discogs/sync/progress")
@bp.response(200, DiscogsProgress)
def discogs_sync_progress():
    """The latest Discogs sync"""
    job = db.session.execute(sa.select(Job).where(Job.kind == "discogs_sync")
                             .order_by(Job.created_at.desc()).limit(1)).scalar()
    if job is None:
        return {"status": "idle", "total": 0, "processed": 0, "added": 0, "skipped": 0, "errors": 0}
    snap = current_app.extensions["sillon"]["progress_store"].get(job.id) or {}
    counters = snap.get("counters", {})
    result = snap.get("result") or {}
    return {"job_id": job.id, "status": snap.get("status", job.status),
            "total": result.get("total", snap.get("total") or 0),
            "processed": counters.get("added", 0) + counters.get("skipped", 0),
            "added": counters.get("added", 0), "skipped": counters.get("skipped", 0),
            "errors": counters.get("errors", 0), "message": snap.get("message")}


@bp.post("/ai/enrich-all")
@bp.arguments(LimitQuery(), location="query")
@bp.response(202, JobLinks, description="Enrichment is queued; follow it at events_url or status_url")
@bp.alt_response(409, schema=AlreadyRunning, description="Enrichment is already running")
def enrich_all(args):
    """Start enrichment (Spotify, Last.fm, AI descriptions: each provider that is configured)"""
    return started(lambda: start_job("enrich", {"limit": args.get("limit")}), "Enrichment is already running.")


LANGUAGE_REFUSAL = "language must be a language name like English or Français (32 characters at most)"


def _language_field():
    return fields.String(validate=validate.Length(min=1, max=32), metadata={"refusal": LANGUAGE_REFUSAL})


class LanguageQuery(Query):
    language = _language_field()


class LanguageBody(Body):
    language = _language_field()


class Language(Answer):
    language = fields.String(required=True)


@bp.post("/ai/language")
@bp.arguments(LanguageQuery(), location="query")
@bp.arguments(LanguageBody(), location="json", required=False,
              description="The same, as JSON (the query parameter wins when both are sent)")
@bp.response(200, Language, description="Saved")
def ai_language(query, body):
    """The language AI descriptions are written in"""
    value = (query.get("language") or body.get("language") or "").strip()
    if not value:
        return error(400, LANGUAGE_REFUSAL)
    try:
        _settings().save({"AI_LANGUAGE": value})
    except SettingRefused as exc:
        return error(400, exc.problems["AI_LANGUAGE"])
    return {"language": value}
