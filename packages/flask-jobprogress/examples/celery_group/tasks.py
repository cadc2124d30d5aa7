"""The Celery side of examples/celery_group: one task checks one file and reports as one part.

Settings from the environment: EXAMPLE_REDIS_URL (broker, store and group counters; default
redis://127.0.0.1:6379/0), EXAMPLE_QUEUE (default "jobprogress-example"), EXAMPLE_PREFIX (the
Redis prefix of the progress store; the group counters use "<prefix>:group").
"""
from __future__ import annotations

import csv
import os

import redis
from celery import Celery
from flask_jobprogress import PartReport

REDIS_URL = os.environ.get("EXAMPLE_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("EXAMPLE_QUEUE", "jobprogress-example")
PREFIX = os.environ.get("EXAMPLE_PREFIX", "jobprogress-example")
GROUP_PREFIX = PREFIX + ":group"
BATCH = 100

app = Celery("celery_group_example", broker=REDIS_URL)
app.conf.update(task_default_queue=QUEUE, task_acks_late=True, worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True)


@app.task(name="example.check_file")
def check_file(job_id, index, path):
    """Sum the `amount` column of one CSV file; a row whose amount is not a number is an error."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    report = PartReport(client, job_id, index, prefix=GROUP_PREFIX)
    name = os.path.basename(path)
    sub = f"file-{index}"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    report.update_substep("check", sub, done=0, total=len(rows), message="checking")
    total = 0.0
    for line, row in enumerate(rows, start=2):
        try:
            total += float(row["amount"])
            report.advance(1, valid=1)
        except (KeyError, TypeError, ValueError):
            report.add_error(f"amount {row.get('amount')!r} is not a number", file=name, line=line)
            report.advance(1)
        if (line - 1) % BATCH == 0:
            report.update_substep("check", sub, done=line - 1, message="checking")  # flushes the counts too
    report.flush()
    report.complete_substep("check", sub, f"{len(rows)} rows, sum {total:g}")
    client.close()
    return total
