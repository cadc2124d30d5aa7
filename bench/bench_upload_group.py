"""A multi-file upload saved as a Celery group across workers, against the same upload saved by the
thread pool of one process (the baseline, measured in the same run), both on PostgreSQL.

Each run gets a fresh PostgreSQL database (migrated) and the same FILES files of ROWS Last.fm CSV
rows each (distinct plays). The baseline runs the upload job with JOB_RUNNER=thread in this
process; the group runs it with JOB_RUNNER=celery and PROGRESS_STORE=redis on WORKERS real
`celery -A app.celery worker -P solo` processes (the job's own worker saves files too). Reported:
wall time from the POST to the job's end, rows per second, the ratio group/baseline, and which
workers saved which files.

    .venv/bin/python bench/bench_upload_group.py                  # 4 files x 50,000 rows, 2 workers
    .venv/bin/python bench/bench_upload_group.py --files 8 --rows 20000 --workers 3
"""
from __future__ import annotations

import argparse
import calendar
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import results as bench_results  # bench/results.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/12"


def admin(sql):
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql)


def csv_file(rows, artist, year):
    base = calendar.timegm((year, 1, 1, 0, 0, 0))
    return "".join(f"{artist} {i % 97},Album {i % 13},Track {i},"
                   f"{time.strftime('%d %b %Y %H:%M', time.gmtime(base + 60 * i))}\n" for i in range(rows)).encode()


class Database:
    def __init__(self, tmp):
        self.name = f"sillon_bench_group_{uuid.uuid4().hex[:8]}"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        admin(f'CREATE DATABASE "{self.name}"')
        env = {**os.environ, "DATABASE_URL": self.url, "INSTANCE_PATH": str(tmp / "migrate"),
               "SILLON_CONFIG": str(tmp / "absent.json")}
        subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", "db", "upgrade"], cwd=ROOT,
                       env=env, check=True, capture_output=True)

    def drop(self):
        admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def environ(tmp, db, **extra):
    return {"SILLON_CONFIG": str(tmp / "absent.json"), "INSTANCE_PATH": str(tmp / "instance"),
            "DATABASE_URL": db.url, "TRACKER_AUTOSTART": "false", **extra}


def run_upload(app, files, timeout=1800):
    import sqlalchemy as sa

    from modules.db import db
    from modules.models import Job

    client = app.test_client()
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    started = time.perf_counter()
    r = client.post("/api/v1/imports", data=data, content_type="multipart/form-data")
    assert r.status_code == 202, r.get_data(as_text=True)
    job_id = r.get_json()["job_id"]
    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            row = db.session.execute(sa.select(Job.status, Job.result, Job.checkpoint, Job.message)
                                     .where(Job.id == job_id)).one()
            db.session.rollback()
            if row.status not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, "the upload did not end in time"
            time.sleep(0.05)
    wall = time.perf_counter() - started
    assert row.status == "completed", row.message
    return wall, row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    files = [(f"part{i}.csv", csv_file(args.rows, f"Bench {i}", 1980 + i)) for i in range(args.files)]
    total = args.files * args.rows
    from app import create_app

    report = {"files": args.files, "rows_per_file": args.rows, "workers": args.workers,
              "machine": platform.node(), "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmpdir:
        tmp = Path(tmpdir)
        # Baseline: the thread pool of one process.
        db = Database(tmp)
        try:
            app = create_app({"ENVIRON": environ(tmp / "threads", db)})
            wall, row = run_upload(app, files)
            assert row.result["imported"] == total
            report["threads_seconds"] = round(wall, 2)
        finally:
            db.drop()
        # The Celery group on real workers.
        db = Database(tmp)
        queue = f"sillon-bench-{uuid.uuid4().hex[:6]}"
        env = environ(tmp / "group", db, JOB_RUNNER="celery", PROGRESS_STORE="redis", REDIS_URL=REDIS_URL,
                      CELERY_QUEUE=queue)
        workers = []
        try:
            for n in range(args.workers):
                log = open(tmp / f"worker{n}.log", "wb")
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "app.celery", "worker", "-P", "solo", "-n", f"b{n}@%h",
                     "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
                    cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log))
            time.sleep(3)
            app = create_app({"ENVIRON": env})
            wall, row = run_upload(app, files)
            assert row.result["imported"] == total
            report["group_seconds"] = round(wall, 2)
            report["saved_by"] = {f: p["ran_by"] for f, p in sorted(row.checkpoint["files"].items())}
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(10)
            db.drop()
    report["threads_rows_per_s"] = round(total / report["threads_seconds"])
    report["group_rows_per_s"] = round(total / report["group_seconds"])
    report["ratio_group_to_threads"] = round(report["group_seconds"] / report["threads_seconds"], 3)
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))
    bench_results.write_results("upload_group", report, result_tables(report))


def result_tables(report):
    """The table docs/performance.md shows for this run."""
    by_process = {}
    for part, owners in report["saved_by"].items():  # a file taken over mid-way lists both processes
        by_process.setdefault(" and ".join(owners), []).append(str(part))
    saved = "; ".join("files " + ", ".join(parts) for parts in by_process.values())
    rows = [["thread pool, one process (baseline)",
             f"{report['threads_seconds']:.1f} s ({report['threads_rows_per_s']:,} rows/s)"],
            [f"Celery group, {report['workers']} workers ({saved}: one process each)",
             f"{report['group_seconds']:.1f} s ({report['group_rows_per_s']:,} rows/s), "
             f"{report['ratio_group_to_threads']:.2f}x"]]
    return [bench_results.table(["measure", "figure"], rows,
                                title=f"{report['files']} files of {report['rows_per_file']:,} rows")]


if __name__ == "__main__":
    main()
