"""Pages first: a job running in a web process gives way to the requests that process answers.

A job of the thread runner shares its process with the pages: one core's worth of Python (the
GIL, or gevent's single hub). Left alone, a CPU-bound import takes about half of it from every
page it overlaps. So the web layer counts the requests being answered (until their response is
handed over: an open event stream is not counted), and a job gives way often: at every row it
parses (`JobContext.give_way`) and between batches (`context.cooperative_yield`). There it rests
while any request is answered, in short slices, out of a rest it earns by working: as long as it
worked since it last rested, plus what it did not use then, never more than MAX_REST.

Inside a transaction the job would hold its locks while it rests. On PostgreSQL those are the
listen feed's row, which other writers of listens wait for a moment, so a job also gives way
before each statement of its transactions (the BEFORE_STATEMENT option `JobContext.write` sets).
On SQLite it is the database's one write lock, which every writer waits for: there a job never
rests in a transaction, and while requests are answered it writes smaller ones (`batch_rows`),
so a page that starts in the middle of one shares the process for one short transaction.

Over any stretch the job rests at most as long as it works (plus MAX_REST): an import under a
steady stream of requests still moves at about half speed, and at full speed when nobody is
asking for a page. Under gevent a job also lets the hub run every YIELD_EVERY seconds at its rows,
so a request that arrives is accepted, and counted, within that time. Celery workers answer no
requests: their jobs never rest. Why this and not always smaller batches: docs/design-performance.md.
"""
from __future__ import annotations

import threading
import time

from gevent import monkey

MAX_REST = 0.1  # seconds: most a job rests at once (a page at 1,000,000 listens takes at most 0.2 s)
SLICE = 0.005
YIELD_EVERY = 0.005  # seconds a job runs at most without letting gevent's hub run (under gevent)
REST_PER_WORK = 1.0  # seconds of rest a second of work earns: under a steady stream of pages, half the time
PAGES_BATCH = 100  # rows per transaction while requests are answered (a transaction of 500 holds ~20 ms of Python)

_lock = threading.Lock()
_answering = 0
_job = threading.local()  # per job thread (greenlet under gevent): when it last rested, what rest it kept


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
    """Wait while requests are being answered, out of the rest earned by working (see the module doc).

    A thread's first call only starts its count: it has no work behind it yet.
    """
    now = clock()
    if not hasattr(_job, "since"):
        _job.since, _job.kept = now, 0.0
        return
    if not _answering:
        return
    earned = min(MAX_REST, _job.kept + REST_PER_WORK * max(0.0, now - _job.since))
    until, at = now + earned, now
    while _answering and at < until:
        sleep(min(SLICE, until - at))
        at = clock()
    # A sleep that overran is owed: kept goes below zero until work pays it back.
    _job.kept = earned - (at - now)
    _job.since = at


def batch_rows(usual):
    """Rows a job should write in its next transaction: `usual`, or PAGES_BATCH while requests are answered."""
    return min(usual, PAGES_BATCH) if _answering else usual


def give_way(sleep=time.sleep, clock=time.monotonic, switch=None):
    """Called by a job at every row (and on PostgreSQL before every statement): rests while requests
    are answered (`rest`); cheap otherwise. Under gevent (or with `switch`), lets the hub run if YIELD_EVERY has passed."""
    if _answering:
        rest(sleep, clock)
        return
    if switch is None:
        if not monkey.is_module_patched("threading"):
            return
        import gevent
        switch = gevent.idle
    now = clock()
    if now - getattr(_job, "switched", 0.0) >= YIELD_EVERY:
        switch()
        _job.switched = clock()
