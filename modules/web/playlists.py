"""Playlists: pages (list, generate, edit, delete) and downloads (M3U, XSPF, CSV); the JSON API is
playlists_api.py."""
from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import playlists
from ..db import db
from ..models import utc_iso
from ..playlists import formats, store
from .i18n import gettext as _

bp = Blueprint("playlists", __name__)


# ----------------------------------------------------------------------------- shared


def summary(playlist, count):
    return {"id": playlist.id, "name": playlist.name, "kind": playlist.kind, "params": playlist.params,
            "item_count": count, "created_at": utc_iso(playlist.created_at), "updated_at": utc_iso(playlist.updated_at),
            "url": url_for("playlists.show", playlist_id=playlist.id),
            "exports": {ext: url_for(f"playlists.export_{ext}", playlist_id=playlist.id) for ext in ("m3u", "xspf", "csv")}}


def detail(playlist):
    items = store.items_of(playlist.id)
    return {**summary(playlist, len(items)), "items": items}


MAX_ID = 2**31 - 1  # the database's integers; a larger id would make PostgreSQL fail, not just find nothing


def _found_or_404(playlist_id, for_update=False):
    playlist = store.get(playlist_id, for_update=for_update) if playlist_id <= MAX_ID else None
    if playlist is None:
        abort(404)
    return playlist


def _duration(seconds):
    if seconds is None:
        return ""
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ----------------------------------------------------------------------------- pages


def _index(error_message=None, nothing=None, status=200, form=None):
    return render_template("playlists.html", playlists=[summary(p, n) for p, n in store.listing()],
                           generators=list(playlists.GENERATORS.values()), error=error_message, nothing=nothing,
                           form=form or {}, notices=get_flashed_messages()), status


@bp.get("/playlists")
def index():
    return _index()


@bp.post("/playlists/generate")
def generate_form():
    kind = request.form.get("kind", "")
    generator = playlists.GENERATORS.get(kind)
    raw = {p.name: request.form.get(p.name) for p in generator.params} if generator else {}
    try:
        name, items, params = playlists.generate(kind, raw, strict=False)
    except playlists.PlaylistError as exc:
        return _index(error_message=str(exc), status=400, form={"kind": kind, **raw})
    except playlists.NothingFound as exc:
        nothing = {"title": _(generator.title), "message": exc.message, "url": url_for(exc.link_endpoint),
                   "text": exc.link_text}
        return _index(nothing=nothing, status=422, form={"kind": kind, **raw})
    playlist = store.create(name, kind, params, items)
    return redirect(url_for("playlists.show", playlist_id=playlist.id), 303)


@bp.get("/playlists/<int:playlist_id>")
def show(playlist_id, error_message=None, status=200):
    playlist = _found_or_404(playlist_id)
    query = (request.args.get("q") or "").strip()
    results = store.search_tracks(query) if query else None
    items = [{**item, "length": _duration(item["duration"])} for item in store.items_of(playlist.id)]
    return render_template("playlist.html", playlist=playlist, items=items, query=query, results=results,
                           version=repr(playlist.updated_at), focus=request.args.get("focus", ""),
                           error=error_message, notices=get_flashed_messages(),
                           generator=playlists.GENERATORS.get(playlist.kind)), status


def _edit(playlist_id):
    """The playlist to change, or a 409 page when it changed since the form was shown."""
    playlist = _found_or_404(playlist_id, for_update=True)
    version = request.form.get("version")
    if version is not None and version != repr(playlist.updated_at):
        db.session.rollback()
        message = _("This playlist changed since the page was loaded (in another tab?). Nothing was changed: "
                    "here it is as it is now.")
        return playlist, show(playlist_id, error_message=message, status=409)
    return playlist, None


def _back(playlist_id, focus=None):
    return redirect(url_for("playlists.show", playlist_id=playlist_id, focus=focus or None), 303)


@bp.post("/playlists/<int:playlist_id>/rename")
def rename(playlist_id):
    playlist, stale = _edit(playlist_id)
    if stale:
        return stale
    try:
        name = store.clean_name(request.form.get("name"))
    except playlists.PlaylistError as exc:
        db.session.rollback()
        return show(playlist_id, error_message=_("The name was not changed: %(why)s", why=str(exc)), status=400)
    store.save(playlist, name=name)
    flash(_("Renamed."))
    return _back(playlist_id)


@bp.post("/playlists/<int:playlist_id>/items/<int:position>/move")
def move_item(playlist_id, position):
    playlist, stale = _edit(playlist_id)
    if stale:
        return stale
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        db.session.rollback()
        return show(playlist_id, error_message=_("direction must be up or down"), status=400)
    try:
        items = store.move(store.items_of(playlist_id), position, -1 if direction == "up" else 1)
    except playlists.PlaylistError as exc:
        db.session.rollback()
        return show(playlist_id, error_message=str(exc), status=400)
    store.save(playlist, items=items)
    target = min(max(position + (-1 if direction == "up" else 1), 0), len(items) - 1)
    # The moved item's button keeps the keyboard focus, so pressing Enter again moves it again; at
    # an end, where that button is disabled, its other button takes the focus.
    if (direction == "up" and target == 0) or (direction == "down" and target == len(items) - 1):
        direction = "down" if direction == "up" else "up"
    return _back(playlist_id, focus=f"{direction}-{target}")


@bp.post("/playlists/<int:playlist_id>/items/<int:position>/remove")
def remove_item(playlist_id, position):
    playlist, stale = _edit(playlist_id)
    if stale:
        return stale
    items = store.items_of(playlist_id)
    if not 0 <= position < len(items):
        db.session.rollback()
        return show(playlist_id, error_message=_("there is no item at position %(n)s", n=position), status=400)
    removed = items.pop(position)
    store.save(playlist, items=items)
    flash(_("Removed “%(title)s”.", title=removed["title"]))
    return _back(playlist_id)


@bp.post("/playlists/<int:playlist_id>/items")
def add_item(playlist_id):
    playlist, stale = _edit(playlist_id)
    if stale:
        return stale
    track_id = request.form.get("track_id", type=int)
    item = playlists.track_item(track_id) if track_id else None
    if item is None:
        db.session.rollback()
        return show(playlist_id, error_message=_("That track is not among your listens."), status=400)
    items = store.items_of(playlist_id) + [item]
    try:
        store.save(playlist, items=items)
    except playlists.PlaylistError as exc:
        db.session.rollback()
        return show(playlist_id, error_message=str(exc), status=400)
    flash(_("Added “%(title)s”.", title=item["title"]))
    return _back(playlist_id)


@bp.get("/playlists/<int:playlist_id>/delete")
def confirm_delete(playlist_id):
    playlist = _found_or_404(playlist_id)
    return render_template("playlist_delete.html", playlist=playlist, count=len(store.items_of(playlist_id)))


@bp.post("/playlists/<int:playlist_id>/delete")
def delete(playlist_id):
    playlist = _found_or_404(playlist_id, for_update=True)
    name = playlist.name
    store.delete(playlist)
    flash(_("Deleted the playlist “%(name)s”.", name=name))
    return redirect(url_for("playlists.index"), 303)


# ----------------------------------------------------------------------------- downloads


def _download(playlist_id, body, mimetype, extension):
    playlist = _found_or_404(playlist_id)
    items = store.items_of(playlist_id)
    disposition = formats.content_disposition(playlist.name, f"playlist-{playlist.id}", extension)
    return Response(body(playlist, items), mimetype=mimetype, headers={"Content-Disposition": disposition})


@bp.get("/playlists/<int:playlist_id>.m3u")
def export_m3u(playlist_id):
    return _download(playlist_id, lambda p, items: formats.m3u(p.name, items), "audio/x-mpegurl", "m3u")


@bp.get("/playlists/<int:playlist_id>.xspf")
def export_xspf(playlist_id):
    return _download(playlist_id, lambda p, items: formats.xspf(p.name, items, p.created_at),
                     "application/xspf+xml", "xspf")


@bp.get("/playlists/<int:playlist_id>.csv")
def export_csv(playlist_id):
    return _download(playlist_id, lambda p, items: formats.csv_text(items), "text/csv", "csv")
