"""Server-Sent Events: GET /api/v1/jobs/<id>/events streams a job's progress until it ends."""
from __future__ import annotations

import threading

from flask import Blueprint, Response, current_app, jsonify, request
from flask_jobprogress import SSE_HEADERS, event_stream, parse_last_event_id

from ..db import db
from ..jobs import job_snapshot

bp = Blueprint("streams", __name__, url_prefix="/api/v1")
_open = 0  # streams of this process being served now (GET /api/v1/health shows it)
_open_lock = threading.Lock()


def open_streams():
    return _open


def _counted(stream):
    """Count the stream while it is served; a client that goes away closes it (GeneratorExit)."""
    global _open
    with _open_lock:
        _open += 1
    try:
        yield from stream
    finally:
        with _open_lock:
            _open -= 1


@bp.get("/jobs/<job_id>/events")
def job_events(job_id):
    app = current_app._get_current_object()
    sillon = app.extensions["sillon"]
    store = sillon["progress_store"]
    if job_snapshot(job_id) is None:
        return jsonify({"error": f"no job {job_id}"}), 404
    db.session.remove()  # the stream holds no database connection while it waits
    last_id = parse_last_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))

    def refresh(jid):
        with app.app_context():
            try:
                return job_snapshot(jid)
            finally:
                db.session.remove()

    stream = event_stream(store, job_id, last_id, heartbeat=sillon["settings"]["SSE_HEARTBEAT_SECONDS"],
                          refresh=refresh)
    return Response(_counted(stream), mimetype="text/event-stream", headers=SSE_HEADERS)
