"""Listens sent by players and scrobblers (Sillon's ListenBrainz API), stored like every source's.

They go through `write_plays` (one play, one listen across sources; a listen sent again adds
nothing), each request in one transaction, then `listen_feed.announce_soon` tells the open journals
(from a thread of its own: the answer does not wait for the progress store).
An `import` (a client's backlog, up to 1,000 listens) is recorded as a finished job, so the jobs
history shows what came in and from which client; single listens are not, so it is not cluttered.
The track playing now is shown, never stored (listen_feed).
"""
from __future__ import annotations

import time
import uuid
from typing import NamedTuple

import sqlalchemy as sa
from flask_jobprogress import ProgressTracker

from ..db import db, transient_reason
from ..models import Job
from . import listen_feed
from .listens import write_plays

SOURCE = "listenbrainz_api"
IMPORT_KIND = "listenbrainz_import"
IMPORT_STEPS = (("receive", "Receive listens", 1.0),)
WRITE_ATTEMPTS = 3  # a PostgreSQL deadlock or a lost connection; SQLite waits out its lock itself


class Scrobble(NamedTuple):
    """One listen as a client sent it; `played_at` is when it started (UTC Unix seconds)."""
    played_at: int
    artist: str
    title: str
    album: str | None = None
    duration_ms: int | None = None
    additional_info: dict | None = None


class DatabaseBusy(Exception):
    """The database stayed locked or busy: nothing of the request was stored."""


def _in_transaction(work):
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with db.engine.begin() as conn:
                return work(conn)
        except sa.exc.DBAPIError as exc:
            why = transient_reason(exc)
            if why is None:
                raise
            if attempt == WRITE_ATTEMPTS:
                raise DatabaseBusy(why) from None
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


def save_listens(scrobbles, *, store, client=None, record_import=False, known_ids=None):
    """Store `scrobbles` in one transaction; returns (BatchResult, job id or None).

    `record_import`: keep a finished job in the jobs history with the counts and the client.
    `known_ids`: the app's KnownIds, so listens of known tracks look none of them up.
    """
    job_id = uuid.uuid4().hex if record_import else None
    started = time.time()
    ids = None

    def work(conn):
        nonlocal ids
        ids = known_ids.transaction() if known_ids is not None else None  # afresh for each attempt
        outcome = write_plays(conn, scrobbles, SOURCE, job_id=job_id, cache=ids)
        if record_import:
            conn.execute(Job.__table__.insert().values(
                id=job_id, kind=IMPORT_KIND, status="completed", active_kind=None,
                params={"client": client, "received": len(scrobbles)}, result=_result(outcome, scrobbles, client),
                message=_summary(outcome, scrobbles, client), created_at=started, started_at=started,
                finished_at=time.time()))
        return outcome

    try:
        outcome = _in_transaction(work)
    except sa.exc.IntegrityError:
        if known_ids is None:
            raise
        known_ids.forget()  # an id kept from a database that is not this one any more: ask it again
        outcome = _in_transaction(work)
    if ids is not None:
        ids.commit()
    if outcome.imported:  # from the announcer's thread: the client's answer does not wait for it
        listen_feed.announce_soon(store, outcome.feed, imported=outcome.imported, source=SOURCE, client=client)
    if record_import:
        _publish_finished_job(store, job_id, outcome, scrobbles, client)
    return outcome, job_id


def set_now_playing(scrobble, *, store, client=None):
    """Show `scrobble` as playing now (for its duration, else 10 minutes) in every process."""
    now = time.time()
    track = {"artist": scrobble.artist, "title": scrobble.title, "album": scrobble.album,
             "additional_info": scrobble.additional_info or {}, "client": client, "since": now}
    seconds = scrobble.duration_ms / 1000 if scrobble.duration_ms else None
    stamp = _in_transaction(lambda conn: listen_feed.set_now_playing(conn, track, seconds, now=now))
    listen_feed.announce_soon(store, stamp, now_playing=True)
    return stamp


def _result(outcome, scrobbles, client):
    return {"received": len(scrobbles), "imported": outcome.imported, "skipped": outcome.skipped,
            "same_play_other_source": outcome.cross_source, "client": client}


def _summary(outcome, scrobbles, client):
    text = f"Received {len(scrobbles):,} listen{'' if len(scrobbles) == 1 else 's'}"
    if client:
        text += f" from {client}"
    text += f": {outcome.imported:,} new"
    if outcome.skipped:
        text += f", {outcome.skipped:,} already stored"
    return text + "."


def _publish_finished_job(store, job_id, outcome, scrobbles, client):
    """The job's final snapshot, so its progress page reads like any finished job's."""
    tracker = ProgressTracker(job_id, IMPORT_KIND, IMPORT_STEPS, publish=store.publish)
    tracker.start("Receiving listens")
    tracker.start_step("receive")
    tracker.set_total(len(scrobbles))
    tracker.advance(len(scrobbles), imported=outcome.imported, skipped=outcome.skipped)
    message = _summary(outcome, scrobbles, client)
    tracker.complete_step("receive", message)
    tracker.complete(result=_result(outcome, scrobbles, client), redirect_url="/journal", message=message)
