"""HTML pages: the live progress page, the journal, settings (uploads) and the jobs history."""
from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import format_date
from flask_jobprogress import FINAL_STATUSES

from .. import preferences
from ..db import db
from ..importers import listen_feed
from ..importers.enrichment import description_language
from ..jobs import JobAlreadyRunning, job_snapshot
from ..jobs.live_tracker import tracker_status
from ..models import Album, CollectionItem, Job, Listen, utc_iso
from ..sources import ai, discogs, lastfm, spotify
from . import collection_query, connections, i18n, job_history, listens_query, settings_forms, timeline
from .i18n import gettext as _
from .uploads import UploadRejected, start_upload_import

bp = Blueprint("pages", __name__)
JOURNAL_PAGE_SIZE = 100


@bp.get("/")
def index():
    return redirect(url_for("pages.journal"))


@bp.get("/progress/<job_id>")
def progress(job_id):
    snap = job_history.snapshot_for_page(job_id)
    if snap is None:
        abort(404)
    duration = snap.get("elapsed_time")
    return render_template("progress.html", snap=snap, final=snap["status"] in FINAL_STATUSES,
                           kind_label=job_history.kind_label(snap["kind"]),
                           status_label=job_history.status_label(snap["status"]),
                           summary=job_history.counts(snap.get("result"), snap.get("counters")),
                           takeovers=job_history.takeovers_of(job_id),
                           duration=job_history.duration_parts(duration) if duration else None)


@bp.post("/language")
def language_form():
    """The settings page's language choice (a form with `code` and `next`)."""
    return language(request.form.get("code") or "")


@bp.route("/language/<code>", methods=["GET", "POST"])
def language(code):
    """Set the display language (cookie, and the saved preference) and go back where the person was."""
    if code not in i18n.LANGUAGES:
        return render_template("error.html", title=_("Unknown language"),
                               message=_("Sillon speaks %(names)s.", names=", ".join(i18n.LANGUAGES.values()))), 400
    target = request.values.get("next") or request.referrer or ""
    response = redirect(i18n.safe_next(target, request.host) or url_for("pages.journal"), 303)
    response.set_cookie(i18n.COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    preferences.put(i18n.PREFERENCE_KEY, code)
    return response


@bp.get("/journal")
def journal():
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    filters = {k: (request.args.get(k) or "").strip() for k in ("from", "to", "artist")}
    return render_template("journal.html", **journal_context(page, filters))


def journal_context(page, filters):
    """What the journal's listing shows. The first page without filters follows new listens live
    (journal_live.py): it carries the feed's version read *before* the listing, so any later
    change has a newer version, and the track playing now."""
    live = page == 1 and not any(filters.values())
    feed = now_playing = None
    if live:
        conn = db.session.connection()
        feed = listen_feed.current(conn)
        if feed is None:  # its row is still to be made and the database is locked: not live this time
            db.session.rollback()
            live = False
        else:
            now_playing = listen_feed.now_playing(conn)
            db.session.commit()  # the feed's row may have just been made
        if now_playing:
            now_playing["remaining"] = max(0, round(now_playing["until"] - time.time()))
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
        day = format_date(moment, "full")  # "Saturday, November 21, 2026" / "samedi 21 novembre 2026"
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "listens": []})
        days[-1]["listens"].append({**item, "time": moment.strftime("%H:%M")})
    pages = max(1, math.ceil(total / JOURNAL_PAGE_SIZE))
    filtered = any(filters.values())
    return {"days": days, "total": total, "page": page, "pages": pages, "filters": filters, "filtered": filtered,
            "error": error, "page_args": {k: v for k, v in filters.items() if v}, "live": live, "feed": feed,
            "now_playing": now_playing}


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
    peak = max((n for _d, n in points), default=0)
    bars = [{"label": _bar_label(d, unit), "date": d.isoformat(), "count": n,
             "height": (n / peak * 100) if peak else 0} for d, n in points]
    return render_template("timeline.html", unit=unit, bars=bars, peak=peak, total=sum(n for _d, n in points),
                           unit_name={"day": _("day"), "week": _("week"), "month": _("month")}[unit],
                           unit_label={"day": _("Day"), "week": _("Week"), "month": _("Month")}[unit])


def _bar_label(day, unit):
    """A timeline bar's date in the page's language."""
    if unit == "month":
        return format_date(day, "LLLL yyyy")
    if unit == "week":
        return _("Week of %(day)s", day=format_date(day, "medium"))
    return format_date(day, "EEE d MMM yyyy")


def _running(kind):
    job_id = db.session.execute(sa.select(Job.id).where(Job.active_kind == kind)).scalar()
    return job_snapshot(job_id) if job_id else None


def _settings_context(error=None, form_result=None):
    settings = current_app.extensions["sillon"]["settings"]
    if form_result is None and request.args.get("saved") in settings_forms.GROUPS:
        form_result = {"group": request.args["saved"], "ok": True, "message": _("Saved.")}
    return {"error": error, "connect_forms": settings_forms.forms(), "form_result": form_result or {},
            "lost_secrets": settings.lost_secrets, "unknown_config_keys": settings.layers.unknown_keys,
            "config_file": settings.layers.config_file.name, "max_mb": settings["MAX_UPLOAD_MB"],
            "lastfm_missing": lastfm.missing_settings(settings), "lastfm_user": settings["LASTFM_USERNAME"],
            "lastfm_running": _running("lastfm_history"), "tracker": tracker_status(),
            "discogs_missing": discogs.missing_settings(settings), "discogs_running": _running("discogs_sync"),
            "owned": db.session.execute(sa.select(sa.func.count()).select_from(CollectionItem)).scalar(),
            "enrich_running": _running("enrich"),
            "enrich_providers": [("Spotify", spotify.missing_settings(settings)),
                                 ("Last.fm", lastfm.missing_settings(settings)),
                                 (_("AI descriptions"), ai.missing_settings(settings))],
            "albums_waiting": db.session.execute(sa.select(sa.func.count()).select_from(Album)
                                                 .where(Album.needs_enrichment.is_(True))).scalar(),
            "ai_language": description_language(settings), "services": connections.states(),
            "first_visit": _first_visit(), "guide": _guide(settings)}


GUIDE_STARTED, GUIDE_HIDDEN = "guide.started", "guide.hidden"


def _guide(settings):
    """The first-run guide's steps, or None: shown on an empty Sillon, then followed to the end once a
    service was connected from it, unless the person left it."""
    if preferences.get(GUIDE_HIDDEN) or not (_first_visit() or preferences.get(GUIDE_STARTED)):
        return None

    def job_step(step_id, label, kind, anchor):
        running = db.session.execute(sa.select(Job.id).where(Job.active_kind == kind)).scalar()
        done = db.session.execute(sa.select(Job.id).where(Job.kind == kind, Job.status == "completed")
                                  .limit(1)).first() is not None
        return {"id": step_id, "label": label, "done": done, "href": "#" + anchor,
                "progress_url": url_for("pages.progress", job_id=running) if running else None}

    steps = [
        {"id": "connect-lastfm", "label": _("Connect Last.fm"), "done": not lastfm.missing_settings(settings),
         "href": "#connect-lastfm", "progress_url": None},
        job_step("import-history", _("Import your listening history"), "lastfm_history", "lastfm-card"),
        {"id": "connect-discogs", "label": _("Connect Discogs"), "done": not discogs.missing_settings(settings),
         "href": "#connect-discogs", "progress_url": None},
        job_step("sync", _("Sync your Discogs shelf"), "discogs_sync", "discogs-card"),
        job_step("enrich", _("Enrich your albums (covers, descriptions)"), "enrich", "enrich-card"),
    ]
    if all(step["done"] for step in steps):
        return None
    next(step for step in steps if not step["done"])["current"] = True
    return {"steps": steps}


@bp.post("/settings/guide/hide")
def settings_guide_hide():
    """Leave the first-run guide (everything it leads to stays on the settings page)."""
    preferences.put(GUIDE_HIDDEN, True)
    return redirect(url_for("pages.settings"), 303)


def _first_visit():
    """Nothing imported and no job ever started: the pages then say what to do first."""
    return (db.session.execute(sa.select(Listen.id).limit(1)).first() is None
            and db.session.execute(sa.select(Job.id).limit(1)).first() is None)


@bp.get("/settings")
def settings():
    return settings_page()


@bp.post("/settings/connect/<group>")
def settings_connect(group):
    """A connection form: saved after its test passes (or "Save anyway"); JSON for the page's script."""
    if group not in settings_forms.GROUPS:
        abort(404)
    first_visit = _first_visit()
    status, body = settings_forms.save(group, request.form)
    if status == 200 and first_visit:
        preferences.put(GUIDE_STARTED, True)  # the guide now follows the person to its last step
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"group": group, **body}), status
    if status == 200:
        return redirect(url_for("pages.settings", saved=group) + f"#connect-{group}", 303)
    return settings_page(form_result={"group": group, **body}), status


def settings_page(form_result=None):
    """The settings page; `form_result` is a connection form's refused save, shown at its form."""
    return render_template("settings.html", **_settings_context(form_result=form_result))


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
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    kind = request.args.get("kind") or ""
    status = request.args.get("status") or ""
    kind = kind if kind in job_history.KIND_LABELS else ""
    status = status if status in job_history.STATUS_LABELS else ""
    total, pages, rows = job_history.history(page=page, kind=kind or None, status=status or None)
    any_job = total > 0 or db.session.execute(sa.select(Job.id).limit(1)).first() is not None
    return render_template("jobs.html", jobs=rows, total=total, page=page, pages=pages, kind=kind, status=status,
                           any_job=any_job, kinds=job_history.KIND_LABELS, statuses=job_history.STATUS_LABELS,
                           page_args={k: v for k, v in (("kind", kind), ("status", status)) if v})


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
