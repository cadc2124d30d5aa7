"""HTML pages: the live progress page, the journal, settings (uploads) and the jobs history."""
from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from ..db import db
from ..importers.enrichment import description_language
from ..jobs import JobAlreadyRunning, job_snapshot
from ..jobs.live_tracker import tracker_status
from ..models import Album, CollectionItem, Job, utc_iso
from ..sources import ai, discogs, lastfm, spotify
from . import collection_query, listens_query, timeline
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
    filters = {k: (request.args.get(k) or "").strip() for k in ("from", "to", "artist")}
    try:
        start = listens_query.parse_time(filters["from"])
        end = listens_query.parse_time(filters["to"], end=True)
        error = None
    except ValueError as exc:
        start = end = None
        error = str(exc)
    total, items = listens_query.page(page=page, page_size=JOURNAL_PAGE_SIZE, start=start, end=end,
                                      artist=filters["artist"] or None)
    days = []
    for item in items:
        moment = datetime.fromisoformat(item["played_at"].replace("Z", "+00:00")).astimezone(UTC)
        day = moment.strftime("%A %d %B %Y")
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "listens": []})
        days[-1]["listens"].append({**item, "time": moment.strftime("%H:%M")})
    pages = max(1, math.ceil(total / JOURNAL_PAGE_SIZE))
    filtered = any(filters.values())
    return render_template("journal.html", days=days, total=total, page=page, pages=pages, filters=filters,
                           filtered=filtered, error=error,
                           page_args={k: v for k, v in filters.items() if v})


@bp.get("/timeline")
def timeline_page():
    unit = request.args.get("unit", "month")
    if unit not in timeline.UNITS:
        unit = "month"
    points = timeline.series(unit)
    if unit == "day":
        points = points[-120:]  # the last four months with listens: a readable chart
    elif unit == "week":
        points = points[-104:]
    peak = max((n for _, n in points), default=0)
    bars = [{"label": timeline.label(d, unit), "date": d.isoformat(), "count": n,
             "height": (n / peak * 100) if peak else 0} for d, n in points]
    return render_template("timeline.html", unit=unit, bars=bars, peak=peak, total=sum(n for _, n in points))


def _running(kind):
    job_id = db.session.execute(sa.select(Job.id).where(Job.active_kind == kind)).scalar()
    return job_snapshot(job_id) if job_id else None


def _settings_context(error=None):
    settings = current_app.extensions["sillon"]["settings"]
    return {"error": error, "max_mb": settings["MAX_UPLOAD_MB"],
            "lastfm_missing": lastfm.missing_settings(settings), "lastfm_user": settings["LASTFM_USERNAME"],
            "lastfm_running": _running("lastfm_history"), "tracker": tracker_status(),
            "discogs_missing": discogs.missing_settings(settings), "discogs_running": _running("discogs_sync"),
            "owned": db.session.execute(sa.select(sa.func.count()).select_from(CollectionItem)).scalar(),
            "enrich_running": _running("enrich"),
            "enrich_providers": [("Spotify", spotify.missing_settings(settings)),
                                 ("Last.fm", lastfm.missing_settings(settings)),
                                 ("AI descriptions", ai.missing_settings(settings))],
            "albums_waiting": db.session.execute(sa.select(sa.func.count()).select_from(Album)
                                                 .where(Album.needs_enrichment.is_(True))).scalar(),
            "ai_language": description_language(settings)}


@bp.get("/settings")
def settings():
    return render_template("settings.html", **_settings_context())


@bp.post("/settings/upload")
def settings_upload():
    try:
        job_id = start_upload_import(request.files.getlist("files"))
    except UploadRejected as exc:
        return render_template("settings.html", **_settings_context(str(exc))), 400
    except JobAlreadyRunning as exc:
        return redirect(url_for("pages.progress", job_id=exc.job_id), 303)
    return redirect(url_for("pages.progress", job_id=job_id), 303)


@bp.get("/jobs")
def jobs():
    rows = db.session.execute(sa.select(Job).order_by(Job.created_at.desc()).limit(200)).scalars().all()
    return render_template("jobs.html", jobs=[j.as_dict() for j in rows])


@bp.get("/collection")
def collection():
    args = {k: (request.args.get(k) or "").strip() for k in ("q", "format", "genre", "decade", "sort")}
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    decade = args["decade"] if args["decade"].isdigit() else None
    total, items, facets = collection_query.search(q=args["q"] or None, fmt=args["format"] or None,
                                                   genre=args["genre"] or None, decade=decade,
                                                   sort=args["sort"] or "added", page=page, page_size=48)
    pages = max(1, math.ceil(total / 48))
    owned = db.session.execute(sa.select(sa.func.count()).select_from(CollectionItem)).scalar()
    return render_template("collection.html", items=items, total=total, owned=owned, page=page, pages=pages,
                           facets=facets, args=args, sorts=list(collection_query.SORTS),
                           page_args={k: v for k, v in args.items() if v})


@bp.get("/albums/<int(max=2147483647):album_id>")
def album(album_id):
    detail = collection_query.album_detail(album_id)
    if detail is None:
        abort(404)
    listens = [{"played_at": utc_iso(p), "source": src} for p, src in detail["listens"]]
    return render_template("album.html", **detail, listen_rows=listens)


@bp.post("/albums/<int(max=2147483647):album_id>/description")
def album_description_form(album_id):
    item = db.session.get(Album, album_id)
    if item is None:
        abort(404)
    text = (request.form.get("description") or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    item.description, item.description_edited = (text or None), bool(text)
    item.description_model, item.description_updated_at = None, time.time()
    db.session.commit()
    return redirect(url_for("pages.album", album_id=album_id), 303)
