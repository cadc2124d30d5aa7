"""ProgressTracker: the live state of one long job, cheap to update from a hot loop.

Every call changes the in-memory state at once and bumps `version`. Step, message and
lifecycle calls take one lock. The hot-loop calls (`advance`, `incr`) take none: each thread
counts into its own shard and readers sum the shards. (Under a shared lock, a holder preempted
by the GIL stalled every other thread: ten times the cost of a bare locked counter.)
Publishing to a store is coalesced by a small background flusher (a greenlet under
gevent): at most one publish per `min_interval` seconds, latest state wins, and the
final state is always published synchronously when the job ends.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime

# Job statuses.
QUEUED, RUNNING, COMPLETED, ERROR, CANCELLED, INTERRUPTED = (
    "queued", "running", "completed", "error", "cancelled", "interrupted")
FINAL_STATUSES = frozenset({COMPLETED, ERROR, CANCELLED, INTERRUPTED})
# Step and substep statuses.
PENDING, IN_PROGRESS, STEP_COMPLETED, STEP_ERROR, SKIPPED = (
    "pending", "in_progress", "completed", "error", "skipped")

RATE_WINDOW_SECONDS = 10.0
FINAL_PUBLISH_ATTEMPTS = 50  # flusher ticks spent retrying a failed final publish


def _iso(ts):
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class _Step:
    __slots__ = ("id", "name", "weight", "status", "progress", "message", "substeps", "done", "total")

    def __init__(self, step_id, name, weight=1.0):
        self.id = step_id
        self.name = name
        self.weight = float(weight)
        self.status = PENDING
        self.progress = 0.0
        self.message = ""
        self.substeps = {}  # id -> _Step (insertion ordered); substeps carry no substeps
        self.done = 0
        self.total = None

    def as_dict(self):
        data = {"id": self.id, "name": self.name, "status": self.status,
                "progress": round(self.progress, 1), "message": self.message}
        if self.total is not None:
            data["done"], data["total"] = self.done, self.total
        if self.substeps is not None:
            data["substeps"] = [s.as_dict() for s in self.substeps.values()]
        return data


class _Shard:
    """One thread's share of the hot-loop counts; only its own thread writes to it."""

    __slots__ = ("done", "changes", "counters")

    def __init__(self):
        self.done = 0
        self.changes = 0  # hot-loop changes, bumped last so a reader never misses a change
        self.counters = {}


class ProgressTracker:
    """Steps with substeps, counts, named counters, sample errors, rate/ETA and a version.

    `publish` is any callable taking a snapshot dict (a store's `publish`). The tracker never
    raises from a failed publish: the job must not die because a stream store hiccupped.

    `done`, `counters` and `version` are read-only views summed over the per-thread shards;
    change them through `advance`, `incr`, `add_error` and the other methods. A resumed job
    passes `initial_version`, the version its store holds, so its new snapshots count as newer.
    """

    def __init__(self, job_id, kind, steps=(), publish=None, *, min_interval=0.1,
                 max_errors=20, created_at=None, clock=time.time, initial_version=0):
        self.id = job_id
        self.kind = kind
        self._publish = publish
        self._min_interval = min_interval
        self._max_errors = max_errors
        self._clock = clock
        self._lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._steps = {}
        for spec in steps:
            self._add_step(*spec) if isinstance(spec, (tuple, list)) else self._add_step(spec, spec)
        self.status = QUEUED
        self.message = ""
        self.result = None
        self.redirect_url = None
        self.current_step = None
        self.total = None
        self.errors_sample = []
        self.errors_total = 0
        self._changes = initial_version  # lock-held changes; version = this + the shards' changes
        self._counters = {}  # counters changed under the lock (errors)
        self._local = threading.local()
        self._shards = []  # every thread's shard, kept after the thread ends so no count is lost
        self._done_offset = 0  # start_step restarts `done` without touching the shards
        self.created_at = created_at if created_at is not None else clock()
        self.started_at = None
        self.finished_at = None
        self._cancel = threading.Event()
        self._published_version = -1
        self._publish_failing = False
        self._samples = deque()  # (time, done) recorded by the flusher, for rate over a window
        self._flusher = None

    # ------------------------------------------------------------------ steps
    def _add_step(self, step_id, name, weight=1.0):
        self._steps[step_id] = _Step(step_id, name, weight)

    def add_step(self, step_id, name, weight=1.0):
        with self._lock:
            self._add_step(step_id, name, weight)
            self._changes += 1

    def start_step(self, step_id, message=""):
        with self._lock:
            step = self._steps[step_id]
            previous = self._steps.get(self.current_step)
            if previous is not None and previous is not step:
                self._keep_count_progress(previous)
            step.status, step.message = IN_PROGRESS, message
            self.current_step = step_id
            self.message = message or step.name  # the job's status line follows its current step
            # A step's own determinate count starts fresh; the job-wide count follows it.
            self._done_offset = self._sum_done()
            self.total = None
            self._samples.clear()
            self._changes += 1

    def set_step_message(self, step_id, message):
        """Change a step's message; the job's status line follows it while it is the current step."""
        with self._lock:
            self._steps[step_id].message = message
            if step_id == self.current_step:
                self.message = message
            self._changes += 1

    def set_step_progress(self, step_id, progress, message=None):
        with self._lock:
            step = self._steps[step_id]
            step.progress = max(0.0, min(100.0, float(progress)))
            if message is not None:
                step.message = message
            self._changes += 1

    def complete_step(self, step_id, message=None):
        self._finish_step(step_id, STEP_COMPLETED, message)

    def error_step(self, step_id, message):
        self._finish_step(step_id, STEP_ERROR, message)

    def skip_step(self, step_id, message=""):
        self._finish_step(step_id, SKIPPED, message)

    def _finish_step(self, step_id, status, message):
        with self._lock:
            step = self._steps[step_id]
            self._keep_count_progress(step)
            step.status = status
            step.progress = 100.0 if status in (STEP_COMPLETED, SKIPPED) else step.progress
            if message is not None:
                step.message = message
            for sub in step.substeps.values():
                if sub.status in (PENDING, IN_PROGRESS) and status != STEP_ERROR:
                    sub.status, sub.progress = status, 100.0
            self._changes += 1

    def start_substep(self, step_id, substep_id, name=None, message="", total=None):
        with self._lock:
            step = self._steps[step_id]
            sub = step.substeps.get(substep_id)
            if sub is None:
                sub = step.substeps[substep_id] = _Step(substep_id, name or substep_id)
                sub.substeps = None
            sub.status, sub.message = IN_PROGRESS, message
            if total is not None:
                sub.total = total
            if step.status == PENDING:
                step.status = IN_PROGRESS
                self.current_step = step_id
            self._recompute_step(step)
            self._changes += 1

    def update_substep(self, step_id, substep_id, *, done=None, total=None, message=None):
        with self._lock:
            step = self._steps[step_id]
            sub = step.substeps[substep_id]
            if total is not None:
                sub.total = total
            if done is not None:
                sub.done = done
            if message is not None:
                sub.message = message
            if sub.total:
                sub.progress = min(100.0, 100.0 * sub.done / sub.total)
            self._recompute_step(step)
            self._changes += 1

    def complete_substep(self, step_id, substep_id, message=None):
        self._finish_substep(step_id, substep_id, STEP_COMPLETED, message)

    def skip_substep(self, step_id, substep_id, message=""):
        self._finish_substep(step_id, substep_id, SKIPPED, message)

    def error_substep(self, step_id, substep_id, message):
        self._finish_substep(step_id, substep_id, STEP_ERROR, message)

    def _finish_substep(self, step_id, substep_id, status, message):
        with self._lock:
            step = self._steps[step_id]
            sub = step.substeps[substep_id]
            sub.status = status
            if status != STEP_ERROR:  # a failed substep keeps the progress it had reached
                sub.progress = 100.0
            if message is not None:
                sub.message = message
            self._recompute_step(step)
            self._changes += 1

    def _shown_progress(self, step, done):
        """A step's progress as shown: the current step with a total follows done/total."""
        if step.id != self.current_step or step.status != IN_PROGRESS or not self.total:
            return step.progress
        derived = min(100.0, 100.0 * done / self.total)
        if step.substeps:
            # Substeps are often started one at a time (a file each), so their mean falls back
            # whenever a new one starts (100% -> 50%); the step's total covers all of them.
            return derived
        return max(step.progress, derived)

    def _keep_count_progress(self, step):
        # Keep the shown progress in the step when it stops being current, so its bar (and
        # overall_progress) does not fall back when it fails or the job is cancelled.
        done = self._sum_done() - self._done_offset
        step.progress = self._shown_progress(step, done)
        if self.total is not None and step.id == self.current_step:
            step.done, step.total = done, self.total  # the step keeps its "75 / 75"

    @staticmethod
    def _recompute_step(step):
        if step.substeps:
            step.progress = sum(s.progress for s in step.substeps.values()) / len(step.substeps)

    # ----------------------------------------------------------------- counts
    def set_total(self, total):
        with self._lock:
            self.total = total
            self._changes += 1

    def advance(self, n=1, **counters):
        """Add `n` to done (and to any named counters given); the hot-loop call."""
        try:
            shard = self._local.shard
        except AttributeError:
            shard = self._new_shard()
        shard.done += n
        if counters:
            c = shard.counters
            for name, value in counters.items():
                c[name] = c.get(name, 0) + value
        shard.changes += 1  # last: a reader that sees this change also sees the counts above

    def incr(self, name, n=1):
        try:
            shard = self._local.shard
        except AttributeError:
            shard = self._new_shard()
        c = shard.counters
        c[name] = c.get(name, 0) + n
        shard.changes += 1

    def _new_shard(self):
        shard = self._local.shard = _Shard()
        with self._lock:
            self._shards.append(shard)
        return shard

    def _sum_done(self):
        return sum(s.done for s in self._shards)

    @property
    def done(self):
        return self._sum_done() - self._done_offset

    @property
    def counters(self):
        """A merged copy of the named counters."""
        merged = dict(self._counters)
        for shard in list(self._shards):
            for name, value in shard.counters.copy().items():  # copy(): one atomic step
                merged[name] = merged.get(name, 0) + value
        return merged

    @property
    def version(self):
        """Grows with every change. Read it before the state it stands for (see `advance`)."""
        return self._changes + sum(s.changes for s in self._shards)

    def add_error(self, message, **where):
        """Count an error under counters['errors'] and keep a capped sample of them."""
        with self._lock:
            self.errors_total += 1
            self._counters["errors"] = self._counters.get("errors", 0) + 1
            if len(self.errors_sample) < self._max_errors:
                self.errors_sample.append({"message": str(message), **where})
            self._changes += 1

    def count_errors(self, n=1):
        """Count `n` errors whose samples are not kept (they were kept elsewhere, or capped)."""
        with self._lock:
            self.errors_total += n
            self._counters["errors"] = self._counters.get("errors", 0) + n
            self._changes += 1

    def set_message(self, message):
        with self._lock:
            self.message = message
            self._changes += 1

    # -------------------------------------------------------------- lifecycle
    def start(self, message=""):
        with self._lock:
            self.status = RUNNING
            self.started_at = self.started_at or self._clock()
            self.message = message
            self._changes += 1
        self._start_flusher()
        self.flush()

    def complete(self, result=None, redirect_url=None, message="Done"):
        self._finish(COMPLETED, message, result, redirect_url)

    def fail(self, message, result=None):
        self._finish(ERROR, message, result, None)

    def cancelled(self, message="Cancelled", result=None):
        self._finish(CANCELLED, message, result, None)

    def interrupted(self, message, result=None):
        self._finish(INTERRUPTED, message, result, None)

    def _finish(self, status, message, result, redirect_url):
        with self._lock:
            self.status = status
            self.message = message
            if result is not None:
                self.result = result
            if redirect_url is not None:
                self.redirect_url = redirect_url
            self.finished_at = self._clock()
            if status == COMPLETED:
                for step in self._steps.values():
                    if step.status in (PENDING, IN_PROGRESS):
                        step.status, step.progress = STEP_COMPLETED, 100.0
                        for sub in step.substeps.values():
                            if sub.status in (PENDING, IN_PROGRESS):
                                sub.status, sub.progress = STEP_COMPLETED, 100.0
            elif self.current_step and self._steps[self.current_step].status == IN_PROGRESS:
                step = self._steps[self.current_step]
                self._keep_count_progress(step)
                step.status = STEP_ERROR if status == ERROR else SKIPPED
            self._changes += 1
        self.flush()  # the final state is always published

    @property
    def is_finished(self):
        return self.status in FINAL_STATUSES

    def request_cancel(self):
        self._cancel.set()

    @property
    def cancel_requested(self):
        return self._cancel.is_set()

    # ------------------------------------------------------------- snapshots
    def snapshot(self):
        with self._lock:
            version = self.version  # before the counts: see `advance`
            done, counters = self.done, self.counters
            now = self._clock()
            steps = []
            total_weight = sum(s.weight for s in self._steps.values()) or 1.0
            overall = 0.0
            for s in self._steps.values():
                data = s.as_dict()
                data["progress"] = round(self._shown_progress(s, done), 1)
                steps.append(data)
                overall += s.weight * data["progress"]
            overall /= total_weight
            if self.status == COMPLETED:
                overall = 100.0
            end = self.finished_at or now
            rate = self._rate(end, done)  # at finished_at once the job ends, so it stays put
            eta = None
            if rate and self.total is not None and self.status == RUNNING:
                eta = round(max(0, self.total - done) / rate, 1)
            return {
                "id": self.id, "kind": self.kind, "status": self.status,
                "overall_progress": round(overall, 1),
                "elapsed_time": round(end - self.started_at, 3) if self.started_at else 0.0,
                "eta_seconds": eta, "rate": round(rate, 2) if rate else 0.0,
                "current_step": self.current_step, "steps": steps,
                "done": done, "total": self.total, "counters": counters,
                "errors_sample": list(self.errors_sample), "errors_total": self.errors_total,
                "message": self.message, "result": self.result, "redirect_url": self.redirect_url,
                "version": version, "created_at": _iso(self.created_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "updated_at": _iso(self.finished_at or now), "cancel_requested": self._cancel.is_set(),
            }

    def _rate(self, now, done):
        # Items per second over the sliding window the flusher samples; the hot path records nothing.
        samples = self._samples
        if not samples:
            return 0.0
        t0, d0 = samples[0]
        if now - t0 <= 0 or done < d0:
            return 0.0
        return (done - d0) / (now - t0)

    # ------------------------------------------------------------- publishing
    def flush(self):
        """Publish the current state now if it changed since the last publish."""
        if self._publish is None:
            return False
        with self._publish_lock:  # keeps published versions in order
            if self.version == self._published_version:
                return False
            snap = self.snapshot()
            try:
                self._publish(snap)
            except Exception as exc:  # noqa: BLE001 - a store failure must not kill the job
                import logging
                log = logging.getLogger(__name__)
                if not self._publish_failing:  # once per run of failures, not every tick
                    # One line: a busy or unreachable store is expected now and then and the
                    # publish is retried; the traceback is there at debug level.
                    # Only the error's first line: a database driver's error goes on with the
                    # statement and its parameters (the whole snapshot).
                    first = next(iter(str(exc).splitlines()), "")
                    log.warning("progress publish failed for job %s (retrying): %s: %s",
                                self.id, type(exc).__name__, first)
                    log.debug("progress publish failure of job %s", self.id, exc_info=True)
                else:
                    log.debug("progress publish still failing for job %s: %s", self.id, exc)
                self._publish_failing = True
                return False
            if self._publish_failing:
                import logging
                logging.getLogger(__name__).warning("progress publish of job %s works again", self.id)
                self._publish_failing = False
            self._published_version = snap["version"]
            return True

    def _start_flusher(self):
        if self._flusher is not None or self._publish is None:
            return
        self._flusher = threading.Thread(target=self._flush_loop, name=f"progress-{self.id}", daemon=True)
        self._flusher.start()

    def _flush_loop(self):
        final_attempts = 0
        while True:
            time.sleep(self._min_interval)
            now = self._clock()
            with self._lock:
                finished = self.status in FINAL_STATUSES
                if not finished:  # a finished job's rate is frozen: no more samples
                    self._samples.append((now, self.done))
                    while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_SECONDS:
                        self._samples.popleft()
            self.flush()
            if finished:
                # The final state must reach the store: if its publish failed (a store hiccup),
                # keep retrying for a while rather than leave streams waiting on a running job.
                final_attempts += 1
                if self._published_version == self.version or final_attempts >= FINAL_PUBLISH_ATTEMPTS:
                    return
