"""Pages first: a job running in a web process rests between batches while that process answers requests.

A job of the thread runner shares its process with the pages: one core's worth of Python (the
GIL, or gevent's single hub). Left alone, a CPU-bound import takes about half of it from every
page it overlaps. So the web layer counts the requests being answered (until their response is
handed over: an open event stream is not counted), and at each of a job's yields
(`context.cooperative_yield`, between batches) the job rests while any is, in short slices, for
at most as long as it worked since its previous yield, and never more than MAX_REST. Pages then
get most of the process; an import under a steady stream of requests still moves at about half
speed, and at full speed when nobody is asking for a page. Celery workers answer no requests:
their jobs never rest. Why this and not smaller batches: docs/design-performance.md.
"""
from __future__ import annotations

import threading
import time

MAX_REST = 0.1  # seconds: a batch of the default size works longer; a page waits at most one batch
SLICE = 0.005

_lock = threading.Lock()
_answering = 0
_last_yield = threading.local()  # per job thread (greenlet under gevent)


def request_started():
    global _answering
    with _lock:
        _answering += 1


def request_ended():
    global _answering
    with _lock:
        _answering = max(0, _answering - 1)


def answering():
    """How many requests this process is answering now."""
    return _answering


def rest(sleep=time.sleep, clock=time.monotonic):
    """Called by a job between batches: wait while requests are being answered (see the module doc)."""
    now = clock()
    worked = now - getattr(_last_yield, "at", now)
    if _answering and worked > 0:
        until = now + min(worked, MAX_REST)
        while _answering and clock() < until:
            sleep(SLICE)
    _last_yield.at = clock()
