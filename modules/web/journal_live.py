"""The journal that moves: an event stream of the listen feed, and the first page to fetch again.

`GET /journal/events` (text/event-stream) follows the listen feed's topic in the progress store
(importers/listen_feed.py), using only the store's public interface (publish, get, subscribe,
wait, close): each process holds one subscription to the store whatever the number of open
journals, and a waiting stream holds no database connection. The page's script then fetches
`GET /journal/latest`, the first page's listing rendered by the same template, so what it shows
is exactly what a reload would show, escaped by Jinja; the script inserts no data of its own.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, render_template, request
from flask_jobprogress import streams_ending

from ..db import db
from ..importers import listen_feed
from .pages import journal_context

bp = Blueprint("journal_live", __name__)
SSE_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
VERSION_HEADER = "X-Listen-Feed-Version"


def _event(snapshot):
    data = {k: snapshot.get(k) for k in ("version", "imported", "source", "now_playing") if k in snapshot}
    return f"id: {snapshot['version']}\nevent: listens\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def feed_stream(store, topic, after, heartbeat, retry_ms=2000):
    """SSE text: the feed's current version at once if newer than `after`, then one event per change."""
    sub = store.subscribe(topic)  # before reading, so no change falls in between
    try:
        snapshot = store.get(topic)
        yield f"retry: {retry_ms}\n\n"  # from here on the stream only waits
        last = after
        if snapshot is not None and snapshot["version"] > last:
            last = snapshot["version"]
            yield _event(snapshot)
        while True:
            newer = sub.wait(last, heartbeat)
            if newer is None:
                if streams_ending():
                    return  # the server is stopping: the browser reconnects to the next one
                yield ": heartbeat\n\n"  # also how a closed browser is noticed
                continue
            last = newer["version"]
            yield _event(newer)
    finally:
        sub.close()


def _after():
    for value in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if value and value.isdigit():
            return int(value)
    return 0


@bp.get("/journal/events")
def events():
    sillon = current_app.extensions["sillon"]
    stamp = listen_feed.current(db.session.connection())
    if stamp is None:  # the feed's row is still to be made and the database is locked
        db.session.rollback()
        return Response("retry: 5000\n\n", status=503, mimetype="text/event-stream", headers=SSE_HEADERS)
    db.session.commit()
    db.session.remove()  # the stream holds no database connection while it waits
    stream = feed_stream(sillon["progress_store"], stamp.topic, _after(),
                         heartbeat=sillon["settings"]["SSE_HEARTBEAT_SECONDS"])
    return Response(stream, mimetype="text/event-stream", headers=SSE_HEADERS)


@bp.get("/journal/latest")
def latest():
    """The journal's first page (listing and now-playing banner), for the page's script to swap in."""
    context = journal_context(1, {"from": "", "to": "", "artist": ""})
    response = current_app.make_response(render_template("journal_listing.html", **context))
    response.headers[VERSION_HEADER] = str(context["feed"].version if context["feed"] else 0)
    response.headers["Cache-Control"] = "no-store"
    return response
