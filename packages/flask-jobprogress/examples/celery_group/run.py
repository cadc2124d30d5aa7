"""Example: several files checked by a Celery group, reported into one shared progress.

    python examples/celery_group/run.py data/*.csv            # starts 2 Celery workers itself

Each file is one task of a Celery group (tasks.py), run by whichever worker is free. The tasks
report through group counters in Redis (PartReport); this process owns the job's one tracker and
turns the group's counts into it (GroupFollower), so the job has one publisher and one sequence of
versions however many workers run. The progress goes to a RedisStore: any Flask app with
`JobProgress(app)` and JOBPROGRESS_STORE=redis, JOBPROGRESS_REDIS_URL and JOBPROGRESS_REDIS_PREFIX
set like here shows it live (snapshot, event stream, jobprogress.js). Needs a Redis server
(EXAMPLE_REDIS_URL, default redis://127.0.0.1:6379/0).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
import tasks
from celery import group
from flask_jobprogress import FINAL_STATUSES, GroupFollower, ProgressTracker, RedisStore

HERE = Path(__file__).resolve().parent


def start_workers(count):
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", tasks.QUEUE, "--pool", "solo",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"]
    return [subprocess.Popen(command + ["-n", f"part{i}-{os.getpid()}@%h"], cwd=HERE) for i in range(count)]


def line(snap):
    counters = snap["counters"]
    return (f"{snap['status']:9} {snap['overall_progress']:5.1f}%  {snap['done']}/{snap['total']} rows  "
            f"valid {counters.get('valid', 0)}  errors {counters.get('errors', 0)}  {snap['message']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers to start (0: use running ones)")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")

    store = RedisStore(tasks.REDIS_URL, prefix=tasks.PREFIX)
    client = redis.Redis.from_url(tasks.REDIS_URL, decode_responses=True)
    job_id = uuid.uuid4().hex
    tracker = ProgressTracker(job_id, "check_files", [("count", "Count rows", 1), ("check", "Check files", 8)],
                              store.publish)
    print(f"job {job_id}", flush=True)
    tracker.start("Counting rows")
    tracker.start_step("count")
    rows = {i: sum(1 for _ in path.open(encoding="utf-8")) - 1 for i, path in enumerate(args.files)}
    tracker.complete_step("count", f"{sum(rows.values())} rows in {len(rows)} files")
    tracker.start_step("check", "Checking")
    tracker.set_total(sum(rows.values()))
    for i, path in enumerate(args.files):
        tracker.start_substep("check", f"file-{i}", path.name, total=rows[i], message="waiting for a worker")
    follower = GroupFollower(client, job_id, tracker, prefix=tasks.GROUP_PREFIX)
    follower.reset()
    workers = start_workers(args.workers)
    try:
        group(tasks.check_file.s(job_id, i, str(path.resolve())) for i, path in enumerate(args.files)).apply_async(
            queue=tasks.QUEUE)
        deadline, shown = time.monotonic() + args.timeout, -1
        while True:
            parts = follower.poll()
            if tracker.version != shown:
                shown = tracker.version
                print(line(tracker.snapshot()), flush=True)
            if sum(1 for p in parts.values() if p["status"] in ("completed", "error")) == len(args.files):
                break
            if time.monotonic() > deadline:
                tracker.fail(f"the workers did not finish within {args.timeout:g} s")
                break
            time.sleep(0.1)
        if tracker.status not in FINAL_STATUSES:
            counters = tracker.counters
            tracker.complete(result={"files": len(args.files), "rows": tracker.done,
                                     "valid": counters.get("valid", 0), "errors": counters.get("errors", 0)},
                             message="Checked")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        client.delete(follower.key, follower.errors_key)  # the group counters; the snapshot stays in the store
    snap = tracker.snapshot()
    print(line(snap), flush=True)
    for error in snap["errors_sample"]:
        print(f"  {error['file']}, line {error['line']}: {error['message']}")
    return 0 if snap["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
