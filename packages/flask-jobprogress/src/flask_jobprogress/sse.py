"""Server-Sent Events for one job: snapshot on connect, one event per published change,
heartbeats while idle, and a final `done` event before the stream closes."""
from __future__ import annotations

import json

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


def event_stream(store, job_id, last_event_id=None, *, heartbeat=15.0, retry_ms=2000, refresh=None):
    """Yield SSE text for `job_id` until it ends. The caller checks the job exists first.

    `refresh` (optional) is called with the job id on each idle heartbeat; it may return a newer
    snapshot (for instance after marking a job whose process died as interrupted).
    """
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
        if snap["version"] > last:
            yield format_event(snap, "progress", snap["version"])
            last = snap["version"]
        while snap["status"] not in FINAL_STATUSES:
            newer = sub.wait(last, heartbeat)
            if newer is None:
                fresh = refresh(job_id) if refresh else None
                if fresh is not None and fresh["version"] > last:
                    newer = fresh
                else:
                    yield ": heartbeat\n\n"
                    continue
            snap = newer
            last = snap["version"]
            yield _progress_event(snap)
        yield format_event({"status": snap["status"], "redirect_url": snap.get("redirect_url"),
                            "message": snap.get("message"), "version": snap["version"]}, "done", snap["version"])
    finally:
        sub.close()
