"""HTML pages: the live progress page, the journal, settings (uploads) and the jobs history."""
from __future__ import annotations

import math
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from ..db import db
from ..jobs import JobAlreadyRunning, job_snapshot
from ..models import Job
from . import listens_query
from .uploads import UploadRejected, start_upload_import

bp = Blueprint("pages", __name__)
JOURNAL_PAGE_SIZE = 100


@bp.get("/")
def index():
    return redirect(url_for("pages.journal"))


@bp.get("/progress/<job_id>")
def progress(job_id):
    snap = job_snapshot(job_id)
    if snap is None:
        abort(404)
    return render_template("progress.html", snap=snap)


@bp.get("/journal")
def journal():
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total, items = listens_query.page(page=page, page_size=JOURNAL_PAGE_SIZE)
    days = []
    for item in items:
        moment = datetime.fromisoformat(item["played_at"].replace("Z", "+00:00")).astimezone(UTC)
        day = moment.strftime("%A %d %B %Y")
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "listens": []})
        days[-1]["listens"].append({**item, "time": moment.strftime("%H:%M")})
    pages = max(1, math.ceil(total / JOURNAL_PAGE_SIZE))
    return render_template("journal.html", days=days, total=total, page=page, pages=pages)


@bp.get("/settings")
def settings():
    return render_template("settings.html", error=None, max_mb=current_app.extensions["sillon"]["settings"]["MAX_UPLOAD_MB"])


@bp.post("/settings/upload")
def settings_upload():
    try:
        job_id = start_upload_import(request.files.getlist("files"))
    except UploadRejected as exc:
        return render_template("settings.html", error=str(exc),
                               max_mb=current_app.extensions["sillon"]["settings"]["MAX_UPLOAD_MB"]), 400
    except JobAlreadyRunning as exc:
        return redirect(url_for("pages.progress", job_id=exc.job_id), 303)
    return redirect(url_for("pages.progress", job_id=job_id), 303)


@bp.get("/jobs")
def jobs():
    rows = db.session.execute(sa.select(Job).order_by(Job.created_at.desc()).limit(200)).scalars().all()
    return render_template("jobs.html", jobs=[j.as_dict() for j in rows])
