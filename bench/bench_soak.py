"""Soak: a real gunicorn server for N minutes (default 30) with the live tracker polling the Last.fm
emulator and uploads imported again and again, followed by event streams. Every 30 s it samples,
per process (gunicorn master and workers): RSS, open file descriptors, OS threads; the database
connections (PostgreSQL: pg_stat_activity of the bench's database; SQLite: descriptors open on the
database files, every process summed); Redis client connections when PROGRESS_STORE=redis; and the
worker's own counts from GET /api/v1/health (open streams, store subscriptions, greenlets, threads).

It reports, per measure, start (mean of the first 3 samples after a 1-minute warm-up) against end
(mean of the last 3) as a ratio, and the least-squares slope per hour over the samples after the
warm-up; it writes every sample to bench/results/soak-<stamp>.csv and the summary to
bench/results/soak.json. A leak shows as a ratio well above 1 and a slope that does not flatten.

    .venv/bin/python bench/bench_soak.py                      # 30 minutes, SQLite, one worker
    .venv/bin/python bench/bench_soak.py --minutes 2 --every 10
    .venv/bin/python bench/bench_soak.py --database postgresql --workers 2 --store redis

Not part of CI: it only reports figures.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py

from tests.emulators.lastfm import LastfmEmulator, generate_listens  # noqa: E402

MIGRATE = """
import sys
sys.path.insert(0, sys.argv[1])
from flask_migrate import upgrade
from app import create_app
app = create_app({"ENVIRON": {"SILLON_CONFIG": sys.argv[2] + "/absent-config.json", "INSTANCE_PATH": sys.argv[2],
                              **({"DATABASE_URL": sys.argv[3]} if len(sys.argv) > 3 else {})}})
with app.app_context():
    upgrade()
"""
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
WARMUP_SECONDS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Soak:
    def __init__(self, args, workdir):
        self.args = args
        self.instance = Path(workdir) / "instance"
        self.instance.mkdir()
        self.database_url = None
        self.pg_name = None
        if args.database == "postgresql":
            import sqlalchemy as sa

            self.pg_name = f"sillon_soak_{os.getpid()}"
            self.admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT",
                                          poolclass=sa.pool.NullPool)
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
                conn.exec_driver_sql(f'CREATE DATABASE "{self.pg_name}"')
            self.database_url = f"{POSTGRES}/{self.pg_name}"
        subprocess.run([sys.executable, "-c", MIGRATE, str(ROOT), str(self.instance),
                        *([self.database_url] if self.database_url else [])], check=True, cwd=ROOT)
        self.fm = LastfmEmulator().start()
        self.fm.add_listens("rj", generate_listens(2000, start_uts=int(time.time()) - 30 * 86400, step_seconds=600))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SILLON_CONFIG": str(self.instance / "absent-config.json"),
               "INSTANCE_PATH": str(self.instance), "BIND": f"127.0.0.1:{self.port}",
               "WEB_CONCURRENCY": str(args.workers), "PROGRESS_STORE": args.store, "PYTHONPATH": str(ROOT),
               "LASTFM_API_URL": self.fm.url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s",
               "LASTFM_USERNAME": "rj", "LASTFM_REQUESTS_PER_SECOND": "20", "TRACKER_INTERVAL_SECONDS": "10",
               "IMPORT_BATCH_SIZE": "500", "LOG_LEVEL": "warning"}
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.pop("ACCESS_LOG", None)
        self.log_path = self.instance / "gunicorn.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        self.stop_event = threading.Event()
        self.counts = {"uploads": 0, "upload_rows": 0, "streams": 0, "stream_errors": 0, "scrobbles_added": 0,
                       "upload_failures": 0}

    def _wait_ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                requests.get(self.url + "/api/v1/health", timeout=1)
                if len(psutil.Process(self.proc.pid).children()) == self.args.workers:
                    time.sleep(1)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start:\n" + self.log_path.read_text(errors="replace")[-3000:])

    # ------------------------------------------------------------------------------- load
    def scrobbler(self):
        """New listens on the emulator every few seconds, for the tracker to pick up."""
        n = 0
        while not self.stop_event.wait(5):
            n += 1
            self.fm.add_listens("rj", [{"uts": int(time.time()) - 30, "artist": f"Live Artist {n % 40}",
                                        "title": f"Live Song {n:06d}", "album": f"Live Album {n % 40}"}])
            self.counts["scrobbles_added"] += 1

    def follow(self, events_url, timeout=300):
        """Read one job's event stream to its end (as a browser's progress page does)."""
        try:
            with requests.get(self.url + events_url, stream=True, timeout=(5, 60)) as r:
                deadline = time.monotonic() + timeout
                for line in r.iter_lines():
                    if line.startswith(b"event: done") or time.monotonic() > deadline:
                        break
            self.counts["streams"] += 1
        except requests.RequestException:
            self.counts["stream_errors"] += 1

    def short_stream(self, events_url):
        """A stream dropped after its first event (a page closed mid-import)."""
        try:
            with requests.get(self.url + events_url, stream=True, timeout=(5, 30)) as r:
                for line in r.iter_lines():
                    if line.startswith(b"data:"):
                        break
            self.counts["streams"] += 1
        except requests.RequestException:
            self.counts["stream_errors"] += 1

    def watcher(self, events_url, held=10):
        """`held` streams on the tracker's job (it never ends), each dropped after 5-20 s and replaced."""
        rng = random.Random(3)

        def one():
            try:
                with requests.get(self.url + events_url, stream=True, timeout=(5, 60)) as r:
                    until = time.monotonic() + rng.uniform(5, 20)
                    for _line in r.iter_lines():
                        if time.monotonic() > until or self.stop_event.is_set():
                            break
                self.counts["streams"] += 1
            except requests.RequestException:
                self.counts["stream_errors"] += 1

        live = []
        while not self.stop_event.is_set():
            live = [t for t in live if t.is_alive()]
            while len(live) < held:
                t = threading.Thread(target=one, daemon=True)
                t.start()
                live.append(t)
            self.stop_event.wait(0.5)

    def uploader(self):
        rng = random.Random(7)
        i = 0
        while not self.stop_event.is_set():
            i += 1
            rows = self.args.upload_rows
            # Half the uploads are new listens, half repeat an earlier file (all skipped): both paths soak.
            seed = i if i % 2 else max(1, i - 1)
            body = csv_rows(rows, seed)
            try:
                r = requests.post(self.url + "/api/v1/imports", files=[("files", (f"soak-{i}.csv", body))], timeout=60)
            except requests.RequestException:
                self.counts["upload_failures"] += 1
                self.stop_event.wait(5)
                continue
            if r.status_code != 202:
                self.counts["upload_failures"] += 1
                self.stop_event.wait(2)
                continue
            job = r.json()
            followers = [threading.Thread(target=self.follow, args=(job["events_url"],), daemon=True)
                         for _ in range(3)]
            followers += [threading.Thread(target=self.short_stream, args=(job["events_url"],), daemon=True)
                          for _ in range(rng.randrange(1, 6))]
            for t in followers:
                t.start()
            for t in followers:
                t.join(300)
            self.counts["uploads"] += 1
            self.counts["upload_rows"] += rows
            self.stop_event.wait(self.args.pause)

    # ------------------------------------------------------------------------------- samples
    def processes(self):
        master = psutil.Process(self.proc.pid)
        return [("master", master)] + [(f"worker{i}", p) for i, p in enumerate(sorted(master.children(), key=lambda p: p.pid))]

    def db_connections(self, procs):
        if self.pg_name:
            with self.admin.connect() as conn:
                return conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                            (self.pg_name,)).scalar()
        db_file = str(self.instance / "sillon.db")
        total = 0
        for _name, p in procs:
            try:
                total += sum(1 for f in p.open_files() if f.path == db_file)
            except psutil.Error:
                pass
        return total

    def redis_connections(self):
        if self.args.store != "redis":
            return ""
        import redis

        return len(redis.Redis().client_list())

    def sample(self, started):
        procs = self.processes()
        row = {"t_seconds": round(time.monotonic() - started, 1)}
        for name, p in procs:
            try:
                row[f"{name}_rss_mb"] = round(p.memory_info().rss / 2**20, 1)
                row[f"{name}_fds"] = p.num_fds()
                row[f"{name}_threads"] = p.num_threads()
            except psutil.Error:
                pass
        row["db_connections"] = self.db_connections(procs)
        row["redis_connections"] = self.redis_connections()
        try:
            health = requests.get(self.url + "/api/v1/health", timeout=10).json()["process"]
            for key in ("open_streams", "store_subscriptions", "greenlets", "threads"):
                row[f"health_{key}"] = health[key]
        except (requests.RequestException, ValueError, KeyError):
            pass
        row.update({k: v for k, v in self.counts.items()})
        return row

    def stop(self):
        self.stop_event.set()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        self.fm.stop()
        if self.pg_name:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def csv_rows(rows, seed):
    """Header-less Last.fm CSV rows; `seed` picks the stretch of time, so equal seeds give equal files."""
    rng = random.Random(seed)
    start = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=seed * 10)
    lines = []
    for i in range(rows):
        a = rng.randrange(300)
        when = start + timedelta(minutes=3 * i)
        lines.append(f"Soak Artist {a},Soak Album {a}-{rng.randrange(6)},Soak Song {a}.{rng.randrange(40)},"
                     f"{when:%d %b %Y %H:%M}")
    return ("\n".join(lines) + "\n").encode()


def slope_per_hour(points):
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if not den else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def summarise(samples):
    steady = [s for s in samples if s["t_seconds"] >= WARMUP_SECONDS] or samples
    measures = [k for k in samples[0] if k != "t_seconds" and k not in SOAK_COUNTS
                and all(isinstance(s.get(k), (int, float)) for s in steady)]
    out = {}
    for key in measures:
        head = [s[key] for s in steady[:3]]
        tail = [s[key] for s in steady[-3:]]
        start, end = sum(head) / len(head), sum(tail) / len(tail)
        out[key] = {"start": round(start, 2), "end": round(end, 2),
                    "ratio": round(end / start, 3) if start else None,
                    "slope_per_hour": round(slope_per_hour([(s["t_seconds"], s[key]) for s in steady]), 2)}
    return out


SOAK_COUNTS = ("uploads", "upload_rows", "streams", "stream_errors", "scrobbles_added", "upload_failures")


def result_tables(result):
    """The table and the run's counts docs/performance.md shows."""
    rows = [[key, m["start"], m["end"], "-" if m["ratio"] is None else f"{m['ratio']:.2f}x", f"{m['slope_per_hour']:+g}"]
            for key, m in result["measures"].items()]
    last, tracker = result["load"], result["tracker"]
    state = "still running" if tracker.get("running") else "not running"
    error = f", last error: {tracker['last_error']}" if tracker.get("last_error") else " without an error"
    note = (f"In {result['minutes']:g} minutes ({result['database']}, {result['store']} progress store, "
            f"{result['workers']} worker(s)): {last.get('uploads')} uploads ({last.get('upload_rows') or 0:,} rows), "
            f"{last.get('streams')} event streams opened and closed, {last.get('scrobbles_added')} new scrobbles stored "
            f"by the live tracker, {last.get('upload_failures')} failed uploads, {last.get('stream_errors')} stream "
            f"errors; the tracker {state} at the end{error}.")
    return [bench_results.table(["measure", "start", "end", "end / start", "slope per hour"], rows)], [note]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--store", choices=("database", "redis"), default="database")
    parser.add_argument("--upload-rows", type=int, default=3000)
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between two uploads")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    csv_path = RESULTS / f"soak-{stamp}.csv"
    workdir = tempfile.mkdtemp(prefix="sillon-soak-")
    soak = Soak(args, workdir)
    print(f"soak: {args.minutes} min against {soak.url} (gunicorn {soak.proc.pid}), samples to {csv_path}", flush=True)
    samples = []
    try:
        r = requests.post(soak.url + "/api/v1/services/tracker/start", timeout=30)
        assert r.status_code in (200, 202), r.text
        threads = [threading.Thread(target=soak.scrobbler, daemon=True),
                   threading.Thread(target=soak.uploader, daemon=True),
                   threading.Thread(target=soak.watcher, args=(r.json()["events_url"],), daemon=True)]
        for t in threads:
            t.start()
        started = time.monotonic()
        end = started + args.minutes * 60
        while True:
            samples.append(soak.sample(started))
            print(json.dumps(samples[-1]), flush=True)
            if time.monotonic() >= end:
                break
            time.sleep(max(0.0, min(args.every, end - time.monotonic())))
        soak.stop_event.set()
        for t in threads:
            t.join(120)
        tracker = requests.get(soak.url + "/api/v1/services/tracker/status", timeout=10).json()
    finally:
        soak.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    keys = sorted({k for s in samples for k in s}, key=lambda k: (k != "t_seconds", k))
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(samples)
    summary = summarise(samples)
    result = {"stamp": stamp, "minutes": args.minutes, "workers": args.workers, "database": args.database,
              "store": args.store, "csv": str(csv_path.relative_to(ROOT)), "load": dict(samples[-1]),
              "tracker": {k: tracker.get(k) for k in ("running", "last_error", "last_poll_at") if k in tracker},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "loadavg": os.getloadavg()},
              "measures": summary}
    bench_results.write_results("soak", result, *result_tables(result))
    print(f"\n{samples[-1].get('uploads')} uploads ({samples[-1].get('upload_rows'):,} rows), "
          f"{samples[-1].get('streams')} streams, {samples[-1].get('scrobbles_added')} scrobbles for the tracker")
    print("| measure | start | end | end/start | slope per hour |\n|---|---|---|---|---|")
    for key, m in summary.items():
        print(f"| {key} | {m['start']} | {m['end']} | {m['ratio']} | {m['slope_per_hour']} |")
    print(f"\nsamples: {csv_path}")


if __name__ == "__main__":
    main()
