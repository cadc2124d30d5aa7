"""JSON API under /api/v1: jobs, uploads, listens."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request, stream_with_context, url_for

from ..db import db
from ..jobs import JobAlreadyRunning, JobNotFound, JobNotResumable, cancel_job, job_snapshot, resume_job, start_job
from ..models import Album, Job
from . import collection_query, listens_query
from .uploads import UploadRejected, start_upload_import

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def job_links(job_id):
    return {"job_id": job_id, "progress_url": url_for("pages.progress", job_id=job_id),
            "events_url": url_for("streams.job_events", job_id=job_id),
            "status_url": url_for("api.job_status", job_id=job_id)}


def error(status, message, **extra):
    response = jsonify({"error": message, **extra})
    response.status_code = status
    return response


def json_field(name):
    """A field of the request's JSON object body; None when there is no such body."""
    body = request.get_json(silent=True)
    return body.get(name) if isinstance(body, dict) else None


def store():
    from flask import current_app
    return current_app.extensions["sillon"]["progress_store"]


@bp.get("/jobs")
def list_jobs():
    limit = request.args.get("limit", "50")
    if not re.fullmatch(r"\s*[0-9]+\s*", limit) or int(limit) < 1:
        return error(400, f"limit must be a whole number from 1 (at most 500 are given), not {limit[:40]!r}")
    limit = min(int(limit), 500)
    query = sa.select(Job).order_by(Job.created_at.desc()).limit(limit)
    if request.args.get("kind"):
        query = query.where(Job.kind == request.args["kind"])
    if request.args.get("status"):
        query = query.where(Job.status == request.args["status"])
    jobs = db.session.execute(query).scalars().all()
    return jsonify({"items": [{**j.as_dict(), **job_links(j.id)} for j in jobs]})


@bp.get("/jobs/<job_id>")
def job_status(job_id):
    snap = job_snapshot(job_id)
    if snap is None:
        return error(404, f"no job {job_id}")
    return jsonify(snap)


@bp.get("/jobs/<job_id>/errors.csv")
def job_errors_csv(job_id):
    """Every row an import could not read (file, line, why), as CSV."""
    from flask import current_app, send_file

    from ..importers.uploads import errors_path

    path = errors_path(current_app.extensions["sillon"]["settings"]["INSTANCE_PATH"], job_id)
    if len(job_id) > 64 or not job_id.isalnum() or not os.path.exists(path):
        return error(404, f"no error list for job {job_id}")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=f"sillon-errors-{job_id}.csv")


@bp.post("/jobs/<job_id>/cancel")
def job_cancel(job_id):
    try:
        state = cancel_job(job_id)
    except JobNotFound:
        return error(404, f"no job {job_id}")
    return jsonify({"job_id": job_id, "status": state}), 202 if state == "cancelling" else 200


@bp.post("/jobs/<job_id>/resume")
def job_resume(job_id):
    try:
        resume_job(job_id)
    except JobNotFound:
        return error(404, f"no job {job_id}")
    except JobNotResumable as exc:
        return error(409, str(exc))
    except JobAlreadyRunning as exc:
        return error(409, str(exc), **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.post("/imports")
def create_import():
    try:
        job_id = start_upload_import(request.files.getlist("files"))
    except UploadRejected as exc:
        return error(400, str(exc))
    except JobAlreadyRunning as exc:
        return error(409, "An import is already running; wait for it to finish or cancel it.",
                     **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.post("/diagnostics/progress-check")
def progress_check():
    """Start a job that only reports progress: shows live updates reach the browser."""
    try:
        params = {"duration": float(request.args.get("duration", 5)), "rate": float(request.args.get("rate", 20))}
    except ValueError:
        return error(400, "duration and rate must be numbers")
    if not (0 < params["duration"] <= 3600 and 0 < params["rate"] <= 1000):  # NaN fails too
        return error(400, "duration must be above 0 and at most 3600 seconds, rate above 0 and at most 1000 a second")
    try:
        job_id = start_job("progress_check", params)
    except JobAlreadyRunning as exc:
        return error(409, "A progress check is already running.", **job_links(exc.job_id))
    return jsonify(job_links(job_id)), 202


@bp.get("/listens")
def list_listens():
    try:
        params = listens_query.parse_args(request.args)
    except ValueError as exc:
        return error(400, str(exc))
    total, items = listens_query.page(**params)
    return jsonify({"total": total, "page": params["page"], "page_size": params["page_size"], "items": items})


@bp.get("/listens/export")
def export_listens():
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "json"):
        return error(400, "format must be csv or json")
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    rows = listens_query.iter_all()
    if fmt == "csv":
        body = _csv_lines(rows)
        mimetype, name = "text/csv", f"sillon-listens-{stamp}.csv"
    else:
        body = _json_lines(rows)
        mimetype, name = "application/json", f"sillon-listens-{stamp}.json"
    return Response(stream_with_context(body), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv_lines(rows):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(listens_query.FIELDS)
    for item in rows:
        writer.writerow([item[f] or "" for f in listens_query.FIELDS])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _json_lines(rows):
    yield "["
    first = True
    for item in rows:
        yield ("" if first else ",") + "\n" + json.dumps(item, ensure_ascii=False)
        first = False
    yield "\n]\n"




@bp.get("/collection/albums")
def collection_albums():
    try:
        page = int(request.args.get("page", 1))
        page_size = int(request.args.get("page_size", 20))
    except ValueError:
        return error(400, "page and page_size must be whole numbers")
    if page < 1 or not 1 <= page_size <= 500:
        return error(400, "page must be 1 or more and page_size between 1 and 500")
    decade = request.args.get("decade")
    if decade and not decade.isdigit():
        return error(400, "decade must be a year like 1970")
    total, items, _ = collection_query.search(
        q=request.args.get("q"), fmt=request.args.get("format"), genre=request.args.get("genre"), decade=decade,
        sort=request.args.get("sort", "added"), page=page, page_size=page_size)
    return jsonify({"total": total, "page": page, "page_size": page_size, "items": items})


@bp.route("/albums/<int(max=2147483647):album_id>/description", methods=["PUT", "POST"])
def album_description(album_id):
    """The person's own description: kept, and never overwritten by enrichment."""
    body = request.get_json(silent=True)
    if body is None:
        body = request.form
    elif not isinstance(body, dict):
        return error(400, "the body must be a JSON object such as {\"description\": \"...\"}")
    text = body.get("description") or ""
    if not isinstance(text, str):
        return error(400, "description must be text")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    album = db.session.get(Album, album_id)
    if album is None:
        return error(404, f"no album {album_id}")
    album.description = text or None
    album.description_edited = bool(text)
    album.description_model = None
    album.description_updated_at = time.time()
    db.session.commit()
    return jsonify({"id": album.id, "description": album.description, "description_edited": album.description_edited})
