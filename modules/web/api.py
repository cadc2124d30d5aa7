"""JSON API under /api/v1: jobs, uploads, listens, the collection, album descriptions."""
from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Response, jsonify, stream_with_context
from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from ..db import db
from ..jobs import JobNotFound, JobNotResumable, cancel_job, job_snapshot, resume_job, start_job
from ..models import Album, Job
from . import collection_query, listens_query
from .api_errors import error
from .api_fields import N_, Body, Moment, Query, whole
from .api_schemas import AlreadyRunning, Answer, CancelState, Error, JobLinks, Listen
from .api_schemas import Job as JobSchema
from .job_answers import job_links, started
from .openapi import Blueprint
from .uploads import UploadRejected, start_upload_import

bp = Blueprint("api", __name__, url_prefix="/api/v1", description="Jobs, uploads, listens and the collection")
MAX_JOBS = 500


def store():
    from flask import current_app
    return current_app.extensions["sillon"]["progress_store"]


class JobsQuery(Query):
    limit = whole(N_("limit must be a whole number from 1 (at most 500 are given), not %(value)r"), low=1,
                  load_default=50, metadata={"description": "Larger values give 500"})
    kind = fields.String(metadata={"description": "Only jobs of this kind (e.g. lastfm_history, discogs_sync, "
                                                  "enrich, upload_import); none means any"})
    status = fields.String(metadata={"description": "Only jobs in this state (queued, running, completed, error, "
                                                    "cancelled, interrupted); none means any"})


class JobList(Answer):
    items = fields.List(fields.Nested(JobSchema), required=True)


@bp.get("/jobs")
@bp.arguments(JobsQuery(), location="query")
@bp.response(200, JobList)
def list_jobs(args):
    """Recent jobs, newest first"""
    query = sa.select(Job).order_by(Job.created_at.desc()).limit(min(args["limit"], MAX_JOBS))
    if args.get("kind"):
        query = query.where(Job.kind == args["kind"])
    if args.get("status"):
        query = query.where(Job.status == args["status"])
    jobs = db.session.execute(query).scalars().all()
    return {"items": [{**j.as_dict(), **job_links(j.id)} for j in jobs]}


@bp.get("/jobs/<job_id>")
def job_status(job_id):
    # Described by hand in openapi.py: the progress system's own route.
    snap = job_snapshot(job_id)
    if snap is None:
        return error(404, f"no job {job_id}")
    return jsonify(snap)


@bp.get("/jobs/<job_id>/errors.csv")
@bp.response(200, {"type": "string"}, content_type="text/csv", description="CSV download")
@bp.alt_response(404, schema=Error, description="No error list for this job")
def job_errors_csv(job_id):
    """Every row an import could not read (file, line, why), as CSV"""
    from flask import current_app, send_file

    from ..importers.uploads import errors_path

    path = errors_path(current_app.extensions["sillon"]["settings"]["INSTANCE_PATH"], job_id)
    if len(job_id) > 64 or not job_id.isalnum() or not os.path.exists(path):
        return error(404, f"no error list for job {job_id}")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=f"sillon-errors-{job_id}.csv")


@bp.post("/jobs/<job_id>/cancel")
@bp.response(200, CancelState, description="The job had already ended (or was still waiting in the broker)")
@bp.alt_response(202, schema=CancelState, description="Cancelling", success=True)
@bp.alt_response(404, schema=Error, description="No such job")
def job_cancel(job_id):
    """Ask a job to stop at its next checkpoint"""
    try:
        state = cancel_job(job_id)
    except JobNotFound:
        return error(404, f"no job {job_id}")
    return {"job_id": job_id, "status": state}, 202 if state == "cancelling" else 200


@bp.post("/jobs/<job_id>/resume")
@bp.response(202, JobLinks, description="The job is queued again; follow it at events_url or status_url")
@bp.alt_response(404, schema=Error, description="No such job")
@bp.alt_response(409, schema=AlreadyRunning, description="Not resumable (running, completed, or failed on its "
                                                         "input; no links then), or a job of its kind runs")
def job_resume(job_id):
    """Run an interrupted, failed or cancelled job again from its checkpoint"""
    try:
        return started(lambda: resume_job(job_id))
    except JobNotFound:
        return error(404, f"no job {job_id}")
    except JobNotResumable as exc:
        return error(409, str(exc))


class UploadForm(Schema):
    files = fields.List(Upload(), metadata={"description": "Last.fm CSV, Spotify, ListenBrainz, Discogs CSV, zips"})


@bp.post("/imports")
@bp.arguments(UploadForm(), location="files")
@bp.response(202, JobLinks, description="The import is queued; follow it at events_url or status_url")
@bp.alt_response(409, schema=AlreadyRunning, description="An import is already running; its links are given")
@bp.alt_response(413, schema=Error, description="Larger than MAX_UPLOAD_MB")
def create_import(args):
    """Upload export files and import them"""
    try:
        return started(lambda: start_upload_import(args.get("files", [])),
                       "An import is already running; wait for it to finish or cancel it.")
    except UploadRejected as exc:
        return error(400, str(exc))


class ProgressCheckQuery(Query):
    duration = fields.Float(load_default=5, validate=validate.Range(min=0, max=3600, min_inclusive=False),
                            metadata={"refusal": "duration must be a number of seconds above 0 and at most 3600",
                                      "exclusiveMinimum": True})
    rate = fields.Float(load_default=20, validate=validate.Range(min=0, max=1000, min_inclusive=False),
                        metadata={"refusal": "rate must be a number of updates a second above 0 and at most 1000",
                                  "exclusiveMinimum": True})


@bp.post("/diagnostics/progress-check")
@bp.arguments(ProgressCheckQuery(), location="query")
@bp.response(202, JobLinks, description="The check is queued; follow it at events_url or status_url")
@bp.alt_response(409, schema=AlreadyRunning, description="A progress check is already running")
def progress_check(args):
    """Start a job that only reports progress: shows live updates reach the browser"""
    return started(lambda: start_job("progress_check", args), "A progress check is already running.")


class ListensQuery(Query):
    page = whole("page must be a whole number from 1 to 10,000,000", low=1, high=listens_query.MAX_PAGE,
                 load_default=1)
    page_size = whole(f"page_size must be a whole number from 1 to {listens_query.MAX_PAGE_SIZE}", low=1,
                      high=listens_query.MAX_PAGE_SIZE, load_default=50)
    start = Moment(data_key="from")
    end = Moment(data_key="to", end=True)
    artist = fields.String(metadata={"description": "Part of the artist's name"})


class ListensPage(Answer):
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    items = fields.List(fields.Nested(Listen), required=True)


@bp.get("/listens")
@bp.arguments(ListensQuery(), location="query")
@bp.response(200, ListensPage)
def list_listens(args):
    """A page of listens, newest first"""
    args["artist"] = (args.get("artist") or "").strip() or None
    total, items = listens_query.page(**args)
    return {"total": total, "page": args["page"], "page_size": args["page_size"], "items": items}


class ExportQuery(Query):
    format = fields.String(load_default="csv", validate=validate.OneOf(("csv", "json")),
                           metadata={"refusal": "format must be csv or json"})


@bp.get("/listens/export")
@bp.arguments(ExportQuery(), location="query")
@bp.response(200, {"type": "string"}, content_type="text/csv", description="A download")
@bp.alt_response(200, schema=Listen(many=True), content_type="application/json", success=True,
                 description="A download")
def export_listens(args):
    """Every listen, streamed as CSV or JSON"""
    fmt = args["format"]
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


class CollectionQuery(Query):
    page = whole("page must be a whole number, 1 or more", low=1, load_default=1)
    page_size = whole("page_size must be a whole number from 1 to 500", low=1, high=500, load_default=20)
    q = fields.String(metadata={"description": "Part of the artist's name or of the title"})
    format = fields.String(metadata={"description": "A format name, as on Discogs (Vinyl, CD, ...)"})
    genre = fields.String(metadata={"description": "A genre or style"})
    decade = whole("decade must be a year like 1970", low=0, metadata={"description": "1970: the 1970s"})
    sort = fields.String(load_default="added", metadata={
        "description": f"{', '.join(collection_query.SORTS)}; any other value sorts as added"})


class CollectionPage(Answer):
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    items = fields.List(fields.Dict(), required=True, metadata={"description": "Records, with their album"})


@bp.get("/collection/albums")
@bp.arguments(CollectionQuery(), location="query")
@bp.response(200, CollectionPage)
def collection_albums(args):
    """Records of the collection, searched, filtered and sorted"""
    total, items, _ = collection_query.search(
        q=args.get("q"), fmt=args.get("format"), genre=args.get("genre"), decade=args.get("decade"),
        sort=args["sort"], page=args["page"], page_size=args["page_size"])
    return {"total": total, "page": args["page"], "page_size": args["page_size"], "items": items}


class DescriptionBody(Body):
    body_refusal = N_('the body must be a JSON object such as {"description": "..."}')
    description = fields.String(allow_none=True, load_default="", metadata={
        "refusal": "description must be text", "description": "Empty (or null) removes it"})


class Description(Answer):
    id = fields.Integer(required=True)
    description = fields.String(allow_none=True, required=True)
    description_edited = fields.Boolean(required=True)


@bp.route("/albums/<int(max=2147483647):album_id>/description", methods=["PUT", "POST"])
@bp.arguments(DescriptionBody(), location="json_or_form", required=False)
@bp.response(200, Description, description="The album's description now")
@bp.alt_response(404, schema=Error, description="No such album")
@bp.doc(requestBody={"content": {"application/x-www-form-urlencoded": {"schema": "DescriptionBody"}}})
def album_description(args, album_id):
    """The person's own description of an album, kept and never overwritten by enrichment"""
    text = (args["description"] or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    album = db.session.get(Album, album_id)
    if album is None:
        return error(404, f"no album {album_id}")
    album.description = text or None
    album.description_edited = bool(text)
    album.description_model = None
    album.description_updated_at = time.time()
    db.session.commit()
    return {"id": album.id, "description": album.description, "description_edited": album.description_edited}
