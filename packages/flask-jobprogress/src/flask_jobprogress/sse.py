"""Server-Sent Events for one job: snapshot on connect, one event per published change,
heartbeats while idle, and a final `done` event before the stream closes."""
from __future__ import annotations

import json
import time

from .store import streams_ending
from .tracker import FINAL_STATUSES

HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
    "Connection": "keep-alive",
}


def format_event(data, event=None, event_id=None):
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


_encoded = {}  # job_id -> (version, event text): every stream of a job sends the same event
_ENCODED_MAX = 256


def _progress_event(snap):
    """The `progress` event for a snapshot, encoded once for all the streams of its job."""
    cached = _encoded.get(snap["id"])
    if cached is not None and cached[0] == snap["version"]:
        return cached[1]
    text = format_event(snap, "progress", snap["version"])
    if len(_encoded) >= _ENCODED_MAX:
        _encoded.clear()
    _encoded[snap["id"]] = (snap["version"], text)
    return text


def parse_last_event_id(value):
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def event_stream(store, job_id, last_event_id=None, *, heartbeat=15.0, retry_ms=2000, refresh=None,
                 refresh_seconds=None):
    """Yield SSE text for `job_id` until it ends. The caller checks the job exists first.

    `refresh` (optional) is called with the job id on connect and then every `refresh_seconds`
    (default: `heartbeat`) while no change comes. It returns the snapshot to show (or None). A
    newer one is sent (for instance after marking a job whose process died as interrupted); one of
    the same version is sent when its notes changed: the keys the app added to the store's snapshot
    (such as "the job's worker is late"), their values, or their going away. So what the app adds
    reaches the page without a new version; other differences at one version are not resent.
    """
    every = min(refresh_seconds or heartbeat, heartbeat) if refresh is not None else heartbeat
    sub = store.subscribe(job_id)  # subscribe before reading so no change falls in between
    try:
        snap = store.get(job_id)
        yield f"retry: {retry_ms}\n\n"
        if snap is None:
            return
        # An id above the current version is not from this job's sequence (the job was restarted
        # by a new tracker, or the store is new): waiting for it would hide every event, even
        # the end, so such a client gets the current snapshot like a new one.
        last = last_event_id if last_event_id is not None and last_event_id <= snap["version"] else -1
        base = snap  # the store's latest: what the app adds to it is the keys it does not have
        fresh = refresh(job_id) if refresh is not None else None
        if fresh is not None and fresh["version"] >= base["version"]:
            snap = fresh  # the app's view of it
        notes = _notes(snap, base)
        # A client at the store's version has the store's content; the app's notes it has not seen.
        if snap["version"] > last or (snap["version"] == last and notes):
            yield format_event(snap, "progress", snap["version"])
            last = snap["version"]
        next_beat = time.monotonic() + heartbeat
        while snap["status"] not in FINAL_STATUSES:
            newer = sub.wait(last, max(0.0, min(every, next_beat - time.monotonic())))
            if newer is None and streams_ending():
                return  # the server is stopping: no `done`, so the browser reconnects to the next one
            if newer is not None:
                base, notes = newer, {}
                event = _progress_event(newer)  # from the store: the same text for every stream
            else:
                newer = refresh(job_id) if refresh is not None else None
                fresh_notes = _notes(newer, base) if newer is not None else notes
                if newer is None or newer["version"] < last or (newer["version"] == last and fresh_notes == notes):
                    if time.monotonic() >= next_beat:
                        yield ": heartbeat\n\n"
                        next_beat = time.monotonic() + heartbeat
                    continue
                notes = fresh_notes
                event = format_event(newer, "progress", newer["version"])  # its version's cached text is not it
            snap, last = newer, newer["version"]
            next_beat = time.monotonic() + heartbeat
            yield event
        yield format_event({"status": snap["status"], "redirect_url": snap.get("redirect_url"),
                            "message": snap.get("message"), "version": snap["version"]}, "done", snap["version"])
    finally:
        sub.close()


def _notes(snap, base):
    """What the app's hook added to the store's snapshot: the keys the store's does not have."""
    return {key: value for key, value in snap.items() if key not in base}
