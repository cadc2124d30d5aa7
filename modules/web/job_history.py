"""The jobs history: human labels, counts read from a job's result (or its live counters), one page
of jobs filtered by kind and status, and a finished job's snapshot rebuilt from its record when the
progress store no longer holds it (the memory store after a restart)."""
from __future__ import annotations

import math

import sqlalchemy as sa
from flask import current_app
from flask_babel import format_decimal
from flask_jobprogress import FINAL_STATUSES

from ..db import db
from ..jobs import KINDS, job_snapshot
from ..jobs import owner as owners
from ..models import Job, utc_iso
from .i18n import gettext as _
from .i18n import lazy_gettext as _l

PAGE_SIZE = 25
KIND_LABELS = {
    "upload_import": _l("Import of uploaded files"),
    "lastfm_history": _l("Last.fm history import"),
    "lastfm_tracker": _l("Live tracker"),
    "discogs_sync": _l("Discogs collection sync"),
    "enrich": _l("Album enrichment"),
    "progress_check": _l("Live progress check"),
    "listenbrainz_import": _l("Listens received (ListenBrainz API)"),
}
STATUS_LABELS = {
    "queued": _l("queued"), "running": _l("running"), "completed": _l("completed"), "error": _l("error"),
    "cancelled": _l("cancelled"), "interrupted": _l("interrupted"),
}
# Step and provider names as the importers declare them (modules/importers/*.py STEPS, PROVIDERS),
# keyed by their English name: the scripts show the translation when there is one.
STEP_NAMES = {
    "Prepare": _l("Prepare"),
    "Send updates": _l("Send updates"),
    "Finish": _l("Finish"),
    "Connect to Discogs": _l("Connect to Discogs"),
    "Read the collection": _l("Read the collection"),
    "Choose albums": _l("Choose albums"),
    "Enrich albums": _l("Enrich albums"),
    "Connect to Last.fm": _l("Connect to Last.fm"),
    "Count listens": _l("Count listens"),
    "Fetch and save batches": _l("Fetch and save batches"),
    "Follow new listens": _l("Follow new listens"),
    "Read files": _l("Read files"),
    "Save": _l("Save"),
    "Spotify images and links": _l("Spotify images and links"),
    "Last.fm covers": _l("Last.fm covers"),
    "AI descriptions": _l("AI descriptions"),
}
# What each kind calls the rows it brought in.
IMPORTED_KEYS = ("imported", "added", "enriched", "updates")


def kind_label(kind):
    return str(KIND_LABELS.get(kind, kind.replace("_", " ")))


def status_label(status):
    return str(STATUS_LABELS.get(status, status))


def counts(result, counters=None):
    """{imported, skipped, errors} from a job's result, else from its live counters (None when unknown)."""
    for source in (result, counters):
        if isinstance(source, dict) and any(k in source for k in (*IMPORTED_KEYS, "skipped", "errors")):
            imported = next((source[k] for k in IMPORTED_KEYS if isinstance(source.get(k), int)), None)
            return {"imported": imported, "skipped": source.get("skipped"), "errors": source.get("errors")}
    return {"imported": None, "skipped": None, "errors": None}


def duration_parts(seconds):
    """(hours, minutes, seconds) of a duration, for a template to word."""
    seconds = max(0, round(seconds))
    return seconds // 3600, (seconds % 3600) // 60, seconds % 60


def _row(job, store):
    counters = None
    if job.status not in FINAL_STATUSES:
        counters = ((store.get(job.id) or {}).get("counters")) or None
    duration = (job.finished_at - job.started_at) if job.finished_at and job.started_at else None
    return {"id": job.id, "kind": job.kind, "kind_label": kind_label(job.kind), "status": job.status,
            "status_label": status_label(job.status), "started_at": utc_iso(job.started_at or job.created_at),
            "duration": duration_parts(duration) if duration is not None else None,
            "duration_seconds": duration, "message": job.message, "takeovers": takeover_lines(job.takeovers, job.kind),
            **counts(job.result, counters)}


def owner_label(owner):
    """How a page names a job's runner, in the page's language."""
    parsed = owners.parse(owner)
    if parsed is None:
        return _("the broker")
    if parsed.pid is None:
        return (_("Celery worker on %(host)s", host=parsed.host) if parsed.celery
                else _("server process on %(host)s", host=parsed.host))
    if parsed.celery:
        return _("Celery worker on %(host)s (pid %(pid)s)", host=parsed.host, pid=parsed.pid)
    return _("server process on %(host)s (pid %(pid)s)", host=parsed.host, pid=parsed.pid)


def takeover_lines(takeovers, kind=None):
    """One sentence per takeover, for the job page and the jobs history: "Server process on h (pid 12)
    stopped at 5,200 of 20,000 (Save listens); continued by Celery worker on h (pid 14)"."""
    lines = []
    for t in takeovers or []:
        words = {"who": owner_label(t.get("from")), "step": _step_name(kind, t.get("step"))}
        if t.get("done") is None:
            line = _("%(who)s stopped", **words)
        elif t.get("total"):
            words.update(done=format_decimal(t["done"]), total=format_decimal(t["total"]))
            line = (_("%(who)s stopped at %(done)s of %(total)s (%(step)s)", **words) if words["step"]
                    else _("%(who)s stopped at %(done)s of %(total)s", **words))
        else:
            words.update(done=format_decimal(t["done"]))
            line = (_("%(who)s stopped at %(done)s (%(step)s)", **words) if words["step"]
                    else _("%(who)s stopped at %(done)s", **words))
        if t.get("to"):
            line = _("%(stopped)s; continued by %(who)s", stopped=line, who=owner_label(t["to"]))
        lines.append(line[:1].upper() + line[1:])
    return lines


def _step_name(kind, step_id):
    """The translated name of a kind's step, from the id a takeover recorded."""
    if not step_id:
        return None
    spec = KINDS.get(kind)
    name = next((n for i, n, _w in (spec.steps if spec else ()) if i == step_id), step_id)
    return str(STEP_NAMES.get(name, name))


def takeovers_of(job_id):
    """The job's takeovers, one sentence each ("... stopped at 5,200 of 20,000 (save); continued by ...")."""
    row = db.session.execute(sa.select(Job.takeovers, Job.kind).where(Job.id == job_id)).first()
    return takeover_lines(row.takeovers, row.kind) if row else []


def history(page=1, kind=None, status=None, page_size=PAGE_SIZE):
    """(total, pages, rows) of the jobs matching the filters, newest first."""
    query = sa.select(Job)
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status == status)
    total = db.session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar()
    pages = max(1, math.ceil(total / page_size))
    jobs = db.session.execute(query.order_by(Job.created_at.desc(), Job.id)
                              .offset((page - 1) * page_size).limit(page_size)).scalars().all()
    store = current_app.extensions["sillon"]["progress_store"]
    return total, pages, [_row(j, store) for j in jobs]


def rebuilt_snapshot(job):
    """A snapshot shaped like the tracker's, from the job record alone."""
    spec = KINDS.get(job.kind)
    numbers = counts(job.result)
    counters = {k: v for k, v in numbers.items() if isinstance(v, int)}
    end = job.finished_at or job.heartbeat_at
    return {
        "id": job.id, "kind": job.kind, "status": job.status,
        "overall_progress": 100.0 if job.status == "completed" else 0.0,
        "elapsed_time": round(end - job.started_at, 3) if end and job.started_at else 0.0,
        "eta_seconds": None, "rate": 0.0, "current_step": None, "steps": [], "done": 0, "total": None,
        "counters": counters, "errors_sample": [], "errors_total": counters.get("errors", 0),
        "message": job.message, "result": job.result,
        "redirect_url": spec.redirect_url if spec and job.status == "completed" else None,
        "version": 0, "created_at": utc_iso(job.created_at), "started_at": utc_iso(job.started_at),
        "finished_at": utc_iso(job.finished_at), "updated_at": utc_iso(end), "cancel_requested": False,
        "rebuilt": True,
    }


def snapshot_for_page(job_id):
    """The job's live snapshot, or one rebuilt from its record; None for an unknown job."""
    snap = job_snapshot(job_id)
    if snap is not None:
        return snap
    job = db.session.get(Job, job_id)
    if job is None:
        return None
    return rebuilt_snapshot(job)
