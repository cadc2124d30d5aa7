"""Multi-file uploads on Celery: each file's save step is one task of a Celery group.

With JOB_RUNNER=celery an upload of several files is read by the job's own task (the parent: it
opens archives, detects formats and counts rows, as in one process), then its files are saved by
a Celery group of `sillon.upload_part` tasks, one per file, in whichever workers are free. The
parent stays the one publisher of the job's tracker:

- parts report into Redis through flask_jobprogress's group counters (PartReport), each batch in
  one MULTI: counters by HINCRBY (rows, imported, skipped, errors, skip reasons: atomic whatever
  the number of workers), the part's own state (HSET `part:<i>`: done, message, status) and the
  first error samples (RPUSH);
- the parent follows that hash (GroupFollower, every GROUP_POLL_SECONDS) and turns the changes into
  the same tracker calls the in-process path makes (advance, substep updates, add_error); at the end it
  squares the counters with the database (a part killed between its commit and its HINCRBY would
  otherwise be missing a batch on the page; the data itself never is).

Data rules, as in one process:
- each batch commits with its part's checkpoint (the parent job's `checkpoint.files[i]`); the
  batch transaction first takes the job's row (a no-op UPDATE: a row lock on PostgreSQL, the write
  lock on SQLite), which serialises the files' writes across processes as the write lock does
  across threads (the same-play rule must see what the other files just wrote), makes the
  read-modify-write of the checkpoint safe, and lets each batch check the job was not cancelled;
- a part runs in one place at a time: a claim key in Redis (SET NX, the owner's host:pid, a TTL of
  JOB_STALE_SECONDS refreshed every batch); a batch also checks under the row lock that its part's
  `rows_done` is still what it left, so even two runners of one part could not double a row;
- the parent does not only wait: it claims and saves parts nobody has taken (with two workers and
  two files, each worker saves one). So a group whose tasks are lost, or whose worker died (claim
  expired, or its pid is dead on this host), is still finished, from each part's checkpoint.
- a killed parent: the broker delivers the job again (late acks), the new parent reads the
  checkpoint, skips finished parts, sends the others again.
"""
from __future__ import annotations

import logging
import os
import time
import uuid

import sqlalchemy as sa
from flask_jobprogress import RUNNING, GroupFollower, PartReport

from ..db import db
from ..importers import uploads
from ..importers.listens import IdCache
from ..models import Job
from ..sources.exports import formats
from . import owner as owners
from .lifecycle import settings as app_settings
from .lifecycle import store as progress_store

log = logging.getLogger(__name__)
GROUP_PREFIX = "sillon:upload-group"  # the group counters' hash: "<prefix>:<job id>" (and ":errors")
CLAIM_KEY = "sillon:upload-part:{}:{}"
GROUP_POLL_SECONDS = 0.2
KEY_TTL = 7 * 24 * 3600
SAMPLES_PER_PART = 20
FINAL = ("done", "failed")

# Refresh a claim only while it is still ours.
_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Take over a claim whose holder is known dead: only if it still names that holder.
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class PartStopped(Exception):
    """This runner must stop: the job was cancelled or ended, or another runner has the part."""


def wanted(settings, readable):
    """Whether an upload's save step runs as a Celery group: under JOB_RUNNER=celery, several files."""
    return settings["JOB_RUNNER"] == "celery" and len(readable) > 1


def _redis(settings):
    import redis

    return redis.Redis.from_url(settings["REDIS_URL"], decode_responses=True)


def part_errors_path(instance_path, job_id, index):
    return os.path.join(instance_path, "job_errors", f"{job_id}.part{index}.csv")


def _job_row(conn, job_id):
    """The job's row, locked for this transaction (see the module's docstring)."""
    jobs = Job.__table__
    conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=jobs.c.heartbeat_at))
    return conn.execute(sa.select(jobs.c.status, jobs.c.cancel_requested, jobs.c.checkpoint)
                        .where(jobs.c.id == job_id)).one()


def _put_part(conn, job_id, checkpoint, index, part):
    jobs = Job.__table__
    checkpoint = dict(checkpoint or {})
    checkpoint["files"] = {**checkpoint.get("files", {}), str(index): part}
    conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(checkpoint=checkpoint))


# --- claims ---------------------------------------------------------------------------------
class Claim:
    def __init__(self, client, job_id, index, owner, ttl):
        self.client, self.key, self.ttl = client, CLAIM_KEY.format(job_id, index), max(2, int(ttl))
        self.token = f"{owner}|{uuid.uuid4().hex}"

    def take(self):
        if self.client.set(self.key, self.token, nx=True, ex=self.ttl):
            return True
        holder = self.client.get(self.key)
        if holder and _holder_dead(holder):
            if self.client.eval(_SWAP, 1, self.key, holder, self.token, self.ttl):
                log.warning("upload part %s taken over from %s (its process is gone)", self.key, holder)
                return True
        return False

    def refresh(self):
        if not self.client.eval(_REFRESH, 1, self.key, self.token, self.ttl):
            raise PartStopped("the part's claim expired and another runner may have it")

    def release(self):
        self.client.eval(_RELEASE, 1, self.key, self.token)


def _holder_dead(holder):
    """A claim's holder ("<owner string>|<token>") is a process of this host that no longer runs."""
    return owners.dead_here(holder.split("|", 1)[0])


# --- the part's side ------------------------------------------------------------------------
def part_report(client, job_id, index):
    """What a part reports to instead of a tracker: the progress package's group counters."""
    return PartReport(client, job_id, index, prefix=GROUP_PREFIX, samples=SAMPLES_PER_PART, ttl=KEY_TTL)


class PartContext:
    """The slice of a JobContext that `uploads.save_rows` uses, for one part."""

    def __init__(self, job_id, settings, store=None):
        self.job_id, self.settings, self.store = job_id, settings, store

    @staticmethod
    def give_way():
        """A part runs in a Celery worker, which answers no requests: nothing to give way to."""

    @staticmethod
    def batch_rows(usual):
        return usual


def run_part(app, job_id, index, file):
    """Save file `index` of upload job `job_id` if nobody else is; returns what happened."""
    with app.app_context():
        try:
            return _run_part(job_id, index, file)
        finally:
            db.session.remove()


def _run_part(job_id, index, file):
    settings = app_settings()
    client = _redis(settings)
    claim = Claim(client, job_id, index, owners.current(), settings["JOB_STALE_SECONDS"])
    if not claim.take():
        return "busy"
    errors = None
    try:
        with db.engine.connect() as conn:
            row = conn.execute(sa.select(Job.status, Job.cancel_requested, Job.checkpoint)
                               .where(Job.id == job_id)).first()
        if row is None or row.status != RUNNING or row.cancel_requested:
            return "stopped"
        part = (row.checkpoint or {}).get("files", {}).get(str(index), {})
        if part.get("status") in FINAL:
            return "finished"
        info = formats.detect_format(file["path"], file["name"])
        f = {**file, "kind": info.kind, "info": info}
        sub = f"save-{index}"
        report = part_report(client, job_id, index)
        report.update_substep("save", sub, done=part.get("rows_done", 0),
                              message=uploads.saving_message(part.get("rows_done", 0)))
        errors = uploads.ErrorLog(part_errors_path(settings["INSTANCE_PATH"], job_id, index),
                                  resume=bool(part.get("rows_done")))
        ctx = PartContext(job_id, settings, progress_store())
        ids = IdCache()
        state = {"part": part}

        def commit(batch, rows_done):
            claim.refresh()
            with db.engine.begin() as conn:
                current = _check(conn, job_id, index, state["part"])
                counts, skips = uploads.write_batch(conn, job_id, f, batch, ids)
                new = uploads.file_state(current[1], counts, rows_done)
                new["new_albums"] = new.get("new_albums", 0) + counts["new_albums"]
                new["ran_by"] = sorted(set(new.get("ran_by", [])) | {owners.current()})
                _put_part(conn, job_id, current[0], index, new)
            state["part"] = new
            uploads.announce_batch(ctx.store, f, counts)
            uploads.report_batch(report, batch, counts, skips)

        broken = uploads.save_rows(ctx, f, report, sub, part.get("rows_done", 0), errors, commit)
        with db.engine.begin() as conn:
            checkpoint, current = _check(conn, job_id, index, state["part"])
            final = {**current, "status": "failed" if broken else "done",
                     "ran_by": sorted(set(current.get("ran_by", [])) | {owners.current()})}
            if broken:
                final["failed"] = uploads.broken_message(broken, current)
            _put_part(conn, job_id, checkpoint, index, final)
        if broken:
            report.error_substep("save", sub, final["failed"])
        else:
            report.complete_substep("save", sub, uploads.saved_message(final))
        return final["status"]
    except PartStopped as exc:
        log.info("upload part %s of job %s stopped: %s", index, job_id, exc)
        return "stopped"
    finally:
        if errors is not None:
            errors.close()
        claim.release()


def _check(conn, job_id, index, expected):
    """Lock the job's row and check this runner may still write its part: (checkpoint, part)."""
    status, cancel_requested, checkpoint = _job_row(conn, job_id)
    if status != RUNNING or cancel_requested:
        raise PartStopped(f"the job is {'being cancelled' if cancel_requested else status}")
    current = (checkpoint or {}).get("files", {}).get(str(index), {})
    if current.get("rows_done", 0) != expected.get("rows_done", 0) or current.get("status") in FINAL:
        raise PartStopped("another runner saved rows of this part meanwhile")
    return checkpoint, current


# --- the parent's side ----------------------------------------------------------------------
def group_follower(client, job_id, tracker):
    """Turns the parts' group counters into calls on the job's tracker, in a thread of the parent."""
    return GroupFollower(client, job_id, tracker, prefix=GROUP_PREFIX, poll_seconds=GROUP_POLL_SECONDS)


def save_as_group(ctx, state, files, readable, send):
    """The save step as a Celery group (see module doc); returns the parts' checkpoint entries.

    `send(job_id, payloads)` sends one part task per {index: payload} (celery_app does, as one group).
    """
    tracker, job_id = ctx.tracker, ctx.job_id
    client = _redis(ctx.settings)
    with db.engine.begin() as conn:  # what was unpacked, for a parent that takes over later
        _, _, checkpoint = _job_row(conn, job_id)
        checkpoint = {**(checkpoint or {}), "members": state.get("members", {}), "group": True}
        conn.execute(sa.update(Job.__table__).where(Job.__table__.c.id == job_id).values(checkpoint=checkpoint))
    parts = checkpoint.get("files", {})
    follower = group_follower(client, job_id, tracker)
    follower.reset()
    tracker.advance(sum(parts.get(str(i), {}).get("rows_done", 0) for i in readable))
    for i in readable:
        part = parts.get(str(i), {})
        if part.get("status") == "done":
            tracker.complete_substep("save", f"save-{i}", uploads.saved_message(part))
        elif part.get("status") == "failed":
            tracker.error_substep("save", f"save-{i}", part["failed"])
    payloads = {i: {"path": files[i]["path"], "name": files[i]["name"]} for i in readable}
    pending = [i for i in readable if parts.get(str(i), {}).get("status") not in FINAL]
    if pending:
        send(job_id, {i: payloads[i] for i in pending})
    follower.start()
    app = _current_app()
    try:
        while True:
            ctx.check()
            parts = _parts(job_id)
            left = [i for i in pending if parts.get(str(i), {}).get("status") not in FINAL]
            if not left:
                break
            ran = False
            for i in left:  # save what nobody has taken (this worker is one of the group's)
                outcome = run_part(app, job_id, i, payloads[i])
                ran = ran or outcome != "busy"
                ctx.check()
            if not ran:
                time.sleep(GROUP_POLL_SECONDS)
    finally:
        follower.stop()
    _square(tracker, parts, readable)
    _merge_error_logs(ctx, readable)
    return parts


def _current_app():
    from flask import current_app

    return current_app._get_current_object()


def _parts(job_id):
    with db.engine.connect() as conn:
        checkpoint = conn.execute(sa.select(Job.checkpoint).where(Job.id == job_id)).scalar()
    return (checkpoint or {}).get("files", {})


def _square(tracker, parts, readable):
    """Make the tracker's counts those of the database (the parts' committed checkpoints)."""
    counters = tracker.snapshot()["counters"]
    for name in ("imported", "skipped", "errors"):
        total = sum(parts.get(str(i), {}).get(name, 0) for i in readable)
        if total != counters.get(name, 0):
            tracker.incr(name, total - counters.get(name, 0))
    rows = sum(parts.get(str(i), {}).get("rows_done", 0) for i in readable)
    if rows > tracker.done:
        tracker.advance(rows - tracker.done)


def _merge_error_logs(ctx, readable):
    """The parts' error rows into the job's one CSV (what /api/v1/jobs/<id>/errors.csv serves)."""
    instance = ctx.settings["INSTANCE_PATH"]
    target = uploads.errors_path(instance, ctx.job_id)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as out:
        out.write("file,line,error\r\n")
        for i in readable:
            path = part_errors_path(instance, ctx.job_id, i)
            if os.path.exists(path):
                with open(path, encoding="utf-8", newline="") as part:
                    part.readline()  # its header
                    out.write(part.read())
