"""Group counters: parts of one job run in other processes (a Celery group, say) and report into
one shared progress through Redis.

Each part writes to a `PartReport` instead of a tracker, with the same calls (`advance`, `incr`,
`add_error`, `update_substep`, `complete_substep`, `error_substep`), so the part's code does not
care where it runs. The report sends one Redis MULTI per `flush` (and per substep call): counters
by HINCRBY (atomic whatever the number of workers), the part's own state (HSET `part:<i>`) and
the first error samples (RPUSH). The job's one publisher, the process that owns the tracker, runs
a `GroupFollower`, which polls that hash and turns its changes into the same tracker calls a part
in this process would have made. So the tracker keeps one writer and the page one sequence of
versions, whatever the number of workers.

Needs the `redis` extra; `client` is a `redis.Redis` made with `decode_responses=True`.
"""
from __future__ import annotations

import json
import logging
import threading

log = logging.getLogger(__name__)
PREFIX = "jobprogress:group"
KEY_TTL = 7 * 24 * 3600
SAMPLES_PER_PART = 20
POLL_SECONDS = 0.2
DONE_FIELD = "done"  # the hash field summing every part's `advance(n)`


def group_keys(group_id, prefix=PREFIX):
    """The group's counter hash and its error-sample list."""
    key = f"{prefix}:{group_id}"
    return key, key + ":errors"


class PartReport:
    """What part `index` of group `group_id` reports to instead of a tracker.

    Counts are buffered in a Redis pipeline and sent by `flush()` (call it once per batch, after
    the batch is committed); substep calls flush at once. At most `samples` error samples per part
    are kept; every error is counted.
    """

    def __init__(self, client, group_id, index, *, prefix=PREFIX, samples=SAMPLES_PER_PART, ttl=KEY_TTL):
        self.client, self.index, self.ttl = client, index, ttl
        self.key, self.errors_key = group_keys(group_id, prefix)
        self.pipe = client.pipeline(transaction=True)
        self.part = {"status": "running", "done": 0, "message": ""}
        self.samples_left = samples

    def advance(self, n=1, **counters):
        self.pipe.hincrby(self.key, DONE_FIELD, n)
        for name, value in counters.items():
            if value:
                self.pipe.hincrby(self.key, name, value)

    def incr(self, name, n=1):
        self.pipe.hincrby(self.key, name, n)

    def add_error(self, message, **where):
        self.pipe.hincrby(self.key, "errors", 1)
        if self.samples_left > 0:
            self.samples_left -= 1
            self.pipe.rpush(self.errors_key, json.dumps({"message": str(message), **where}))

    def update_substep(self, step_id, substep_id, *, done=None, total=None, message=None):
        self.part.update(step=step_id, substep=substep_id)
        for name, value in (("done", done), ("total", total), ("message", message)):
            if value is not None:
                self.part[name] = value
        self.flush()

    def complete_substep(self, step_id, substep_id, message=None):
        self.part.update(step=step_id, substep=substep_id, status="completed", message=message or "")
        self.flush()

    def error_substep(self, step_id, substep_id, message):
        self.part.update(step=step_id, substep=substep_id, status="error", message=message)
        self.flush()

    def flush(self):
        """Send what this part counted since the last flush, and its state, in one MULTI."""
        self.part["seq"] = self.part.get("seq", 0) + 1
        self.pipe.hset(self.key, f"part:{self.index}", json.dumps(self.part))
        self.pipe.expire(self.key, self.ttl)
        self.pipe.expire(self.errors_key, self.ttl)
        self.pipe.execute()


class GroupFollower:
    """Turns the group's Redis hash into calls on `tracker`, in a thread of the tracker's process.

    Call `reset()` before the parts start (a new run of the group), `start()` to follow, and
    `stop()` at the end: it makes one last poll, so nothing a part sent before is missed.
    """

    def __init__(self, client, group_id, tracker, *, prefix=PREFIX, poll_seconds=POLL_SECONDS):
        self.client, self.tracker, self.poll_seconds = client, tracker, poll_seconds
        self.key, self.errors_key = group_keys(group_id, prefix)
        self.counters, self.parts, self.samples_seen = {}, {}, 0
        self._stop = threading.Event()
        self._thread = None

    def reset(self):
        self.client.delete(self.key, self.errors_key)

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="jobprogress-group-follower", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.poll()

    def _loop(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a Redis hiccup: the next poll catches up
                log.exception("following the group %s failed", self.key)

    def poll(self):
        """Apply what changed in the group since the last poll; returns the parts' states."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.key)
        pipe.lrange(self.errors_key, self.samples_seen, -1)
        data, samples = pipe.execute()
        tracker = self.tracker
        for raw in samples:
            sample = json.loads(raw)
            tracker.add_error(sample.pop("message"), **sample)
        self.samples_seen += len(samples)
        counters = {k: int(v) for k, v in data.items() if not k.startswith("part:")}
        delta = {k: v - self.counters.get(k, 0) for k, v in counters.items()}
        self.counters = counters
        extra_errors = delta.pop("errors", 0) - len(samples)  # counted beyond the samples kept
        if extra_errors > 0:
            tracker.count_errors(extra_errors)
        done = delta.pop(DONE_FIELD, 0)
        named = {k: v for k, v in delta.items() if v}
        if done or named:
            tracker.advance(done, **named)
        for field, raw in data.items():
            if not field.startswith("part:"):
                continue
            part = json.loads(raw)
            index = int(field[5:])
            if self.parts.get(index, {}).get("seq") == part["seq"]:
                continue
            self.parts[index] = part
            if "substep" not in part:
                continue
            try:
                self._apply(part)
            except KeyError:  # a substep the tracker has not started yet
                tracker.start_substep(part["step"], part["substep"])
                self._apply(part)
        return dict(self.parts)

    def _apply(self, part):
        tracker, step, sub = self.tracker, part["step"], part["substep"]
        if part["status"] == "completed":
            tracker.complete_substep(step, sub, part["message"])
        elif part["status"] == "error":
            tracker.error_substep(step, sub, part["message"])
        else:
            tracker.update_substep(step, sub, done=part["done"], total=part.get("total"), message=part["message"])
