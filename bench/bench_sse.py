"""Server-Sent Events under load, on one real gunicorn gevent worker (PROGRESS_STORE=database).

Three scenarios (each on a fresh server with its own migrated SQLite database):

- latency: publish-to-receive time of progress events with 1 and with 500 open streams on one
  job (a progress check: 50 advances a second, published coalesced about 10 times a second);
- memory:  worker RSS with 0 and with 500 idle streams open on a slow job, per stream;
- import:  latency on 100 streams while a large Last.fm CSV import runs in the same worker,
  against the same 100 streams without the import; and the import's rows per second.

Latency = the client's receive time of an event minus the snapshot's `updated_at` (the time the
tracker took it for publishing); client and server share the machine's clock. Each stream's
first event is the snapshot at connect time, not a publish, so it is left out, and so are events
published before every stream was connected. Prints tables and writes bench/results/sse.json;
reports ratios and whether targets were met, never fails on timings.

    .venv/bin/python bench/bench_sse.py                      # all three, about 2-3 minutes
    .venv/bin/python bench/bench_sse.py --only latency --streams 200
"""
from gevent import monkey

monkey.patch_all()  # the client side: hundreds of streams in one process, one greenlet each

import argparse  # noqa: E402
import bisect  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
import requests  # noqa: E402
import results as bench_results  # noqa: E402 - bench/results.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGETS = {"p50_ms_at_500": 50, "p99_ms_at_500": 200, "kb_per_stream": 50, "p99_ms_during_import": 250}
MIGRATE = """
import sys
sys.path.insert(0, sys.argv[1])
from flask_migrate import upgrade
from app import create_app
app = create_app({"ENVIRON": {"SILLON_CONFIG": sys.argv[2] + "/absent-config.json", "INSTANCE_PATH": sys.argv[2]}})
with app.app_context():
    upgrade()
"""


# ------------------------------------------------------------------------------------ server
class Server:
    """`gunicorn -c gunicorn.conf.py app:app` with one gevent worker on a free port, fresh instance."""

    store = "database"  # PROGRESS_STORE for every server; --store changes it

    def __init__(self, template_db, workdir, env=None):
        self.instance = Path(tempfile.mkdtemp(prefix="instance-", dir=workdir))
        shutil.copy(template_db, self.instance / "sillon.db")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {**os.environ, "SILLON_CONFIG": str(self.instance / "absent-config.json"),
                   "INSTANCE_PATH": str(self.instance), "BIND": f"127.0.0.1:{self.port}",
                   "WEB_CONCURRENCY": "1", "PROGRESS_STORE": self.store, "PYTHONPATH": str(ROOT),
                   **(env or {})}
        environ.pop("ACCESS_LOG", None)
        self.log_path = self.instance / "gunicorn.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gunicorn did not start:\n" + self.log_path.read_text(errors="replace")[-3000:])
            try:
                requests.get(self.url + "/api/v1/jobs", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        workers = psutil.Process(self.proc.pid).children()
        assert len(workers) == 1, workers
        self.worker = workers[0]
        print(f"  gunicorn {self.proc.pid}, worker {self.worker.pid} (for py-spy), {self.url}", flush=True)

    def rss_kb(self, samples=5, every=0.2):
        values = []
        for _ in range(samples):
            values.append(self.worker.memory_info().rss / 1024)
            time.sleep(every)
        return sum(values) / len(values)

    def post(self, path, **kwargs):
        r = requests.post(self.url + path, timeout=120, **kwargs)
        if r.status_code != 202:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")
        return r.json()["job_id"]

    def progress_check(self, duration, rate):
        return self.post(f"/api/v1/diagnostics/progress-check?duration={duration}&rate={rate}")

    def snapshot(self, job_id):
        return requests.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=30).json()

    def cancel(self, job_id):
        requests.post(f"{self.url}/api/v1/jobs/{job_id}/cancel", timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        shutil.rmtree(self.instance, ignore_errors=True)


# ------------------------------------------------------------------------------------ client
class Streams:
    """N raw-socket SSE clients on one job. The receive loop only stamps and keeps the bytes, so
    500 streams in this process cost little; events are parsed after the run."""

    def __init__(self, server, job_id, n):
        self.port, self.n = server.port, n
        self.request = (f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.chunks = [[] for _ in range(n)]  # per stream: [(receive time, bytes)]
        self.connected = 0
        self.sockets = []
        self.greenlets = [gevent.spawn(self._run, i) for i in range(n)]

    def _run(self, i):
        sock = socket.create_connection(("127.0.0.1", self.port))
        self.sockets.append(sock)
        sock.sendall(self.request)
        chunks, recv, now = self.chunks[i], sock.recv, time.time
        try:
            while True:
                data = recv(65536)
                t = now()
                if not data:
                    return
                if not chunks:
                    self.connected += 1  # response started: the server has subscribed
                chunks.append((t, data))
                if data.endswith(b"\r\n0\r\n\r\n") or data == b"0\r\n\r\n":  # last chunk: the job ended
                    return
        except OSError:
            return
        finally:
            sock.close()

    def wait_connected(self, timeout=120):
        deadline = time.monotonic() + timeout
        while self.connected < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.connected}/{self.n} streams connected in {timeout}s")
            gevent.sleep(0.02)
        return time.time()

    def wait_done(self, timeout):
        gevent.joinall(self.greenlets, timeout=timeout)
        return sum(1 for g in self.greenlets if g.dead)

    def close(self):
        gevent.killall(self.greenlets, timeout=5)
        for sock in self.sockets:
            sock.close()

    def latencies(self, since=0.0, until=float("inf")):
        """{publish time: [latency in ms per stream]} for events published in [since, until],
        each stream's first event left out."""
        out = {}
        for chunks in self.chunks:
            if not chunks:
                continue
            raw = b"".join(d for _, d in chunks)
            ends, total = [], 0
            for _, d in chunks:
                total += len(d)
                ends.append(total)
            for k, (published, end) in enumerate(_publishes(raw)):
                if k == 0:
                    continue  # the snapshot at connect time, not a publish
                if not since <= published <= until:
                    continue
                # the event is received when its last byte is
                received = chunks[bisect.bisect_right(ends, end + 1)][0]
                out.setdefault(published, []).append((received - published) * 1000)
        return out

    def publish_times(self):
        """Every distinct publish time seen by any stream."""
        return {p for chunks in self.chunks for p, _ in _publishes(b"".join(d for _, d in chunks))}


EVENT = re.compile(rb"event: progress\ndata: ")
UPDATED_AT = re.compile(rb'"updated_at":"?([^",}]+)')
_parsed = {}


def _publishes(raw):
    """(publish time, offset of the event's end) for each progress event in a raw stream."""
    for m in EVENT.finditer(raw):
        end = raw.find(b"\n\n", m.end())
        if end < 0:
            return
        stamps = UPDATED_AT.findall(raw, m.end(), end)
        if not stamps:
            raise RuntimeError("a progress event without `updated_at`: the tracker must stamp its snapshots")
        yield _publish_time(stamps[-1]), end  # the last one: the snapshot's own, after `result`


def _publish_time(value):
    t = _parsed.get(value)
    if t is None:
        text = value.decode()
        try:
            t = float(text)
        except ValueError:
            t = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        _parsed[value] = t
    return t


class CpuMeter:
    """CPU used since creation, in % of one core, by the server's worker, by this client process
    (near 100 % it would delay its own receive stamps) and by everything else on the machine
    (other work competing for the cores makes tails long whatever the app does)."""

    def __init__(self, worker):
        self.procs = {"worker": worker, "client": psutil.Process()}
        self.start = {k: sum(p.cpu_times()[:2]) for k, p in self.procs.items()}
        self.machine = self._busy()
        self.t0 = time.monotonic()

    @staticmethod
    def _busy():
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0)

    def percent(self):
        wall = time.monotonic() - self.t0
        used = {k: sum(p.cpu_times()[:2]) - self.start[k] for k, p in self.procs.items()}
        others = self._busy() - self.machine - sum(used.values())
        return {**{f"{k}_cpu_percent": round(100 * v / wall) for k, v in used.items()},
                "others_cpu_percent": max(0, round(100 * others / wall))}


def publish_gaps(times, since, until=float("inf")):
    """How often the job actually published in [since, until]: count, per second, and the gaps
    between publishes. Latency only times a snapshot once it is taken; a starved flusher shows here."""
    times = sorted(t for t in times if since <= t <= until)
    gaps = sorted((b - a) * 1000 for a, b in zip(times, times[1:], strict=False))
    span = (times[-1] - times[0]) if len(times) > 1 else 0
    out = {"publishes": len(times), "per_second": round((len(times) - 1) / span, 1) if span else None}
    if gaps:
        out.update(gap_p50_ms=round(gaps[len(gaps) // 2]), gap_p99_ms=round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]),
                   gap_max_ms=round(gaps[-1]))
    return out


def summary(by_publish):
    """Latency percentiles over every event, and per publish: how long the first stream waited
    (the publish path: store write, wake-up) and how long the last one waited after it (fan-out)."""
    values = [v for vs in by_publish.values() for v in vs]
    first = sorted(min(vs) for vs in by_publish.values())
    spread = sorted(max(vs) - min(vs) for vs in by_publish.values())
    out = stats(values)
    if first:
        out.update(first_p50_ms=round(first[len(first) // 2], 2), first_max_ms=round(first[-1], 2),
                   fanout_p50_ms=round(spread[len(spread) // 2], 2), fanout_max_ms=round(spread[-1], 2))
    return out


def stats(values):
    if not values:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    s = sorted(values)

    def pct(p):  # nearest rank
        return round(s[min(len(s) - 1, max(0, int(round(p / 100 * len(s))) - 1))], 2)
    return {"count": len(s), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(s[-1], 2)}


def ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


# --------------------------------------------------------------------------------- scenarios
def measure_progress_check(server, n, duration, rate=50):
    """Start a progress check, connect n streams to it, and time every publish after all connected."""
    job_id = server.progress_check(duration, rate)
    started = time.monotonic()
    streams = Streams(server, job_id, n)
    ready = streams.wait_connected()
    connect_s = time.monotonic() - started
    cpu = CpuMeter(server.worker)
    finished = streams.wait_done(timeout=duration + 60)
    cpu = cpu.percent()
    lat = streams.latencies(since=ready)
    publishes = streams.publish_times()
    streams.close()
    return {"streams": n, "connect_seconds": round(connect_s, 2), "streams_finished": finished, **cpu,
            "publishing": publish_gaps(publishes, ready),
            "events_per_stream": round(sum(map(len, lat.values())) / n, 1), **summary(lat)}


def scenario_latency(template, workdir, args):
    results = {}
    server = Server(template, workdir)
    try:
        for n in (1, args.streams):
            # Connecting hundreds of streams takes a moment (about 0.5 s for 500): the job runs a
            # little longer so that about `duration` seconds are measured after the last connects.
            results[n] = measure_progress_check(server, n, args.duration + (0 if n == 1 else 2))
    finally:
        server.stop()
    base, loaded = results[1], results[args.streams]
    return {"baseline": base, "loaded": loaded, "p50_ratio": ratio(loaded["p50_ms"], base["p50_ms"]),
            "p99_ratio": ratio(loaded["p99_ms"], base["p99_ms"]),
            "target_met": (loaded["p50_ms"] or 1e9) <= TARGETS["p50_ms_at_500"]
            and (loaded["p99_ms"] or 1e9) <= TARGETS["p99_ms_at_500"]}


def scenario_memory(template, workdir, args):
    server = Server(template, workdir)
    n = args.streams
    try:
        job_id = server.progress_check(60, 1)
        warm = Streams(server, job_id, 5)  # first use of every code path a stream touches
        warm.wait_connected()
        time.sleep(1.5)
        warm.close()
        time.sleep(2.5)  # the server notices the closed streams on its next write (1 publish/s)
        rss_0 = server.rss_kb()
        streams = Streams(server, job_id, n)
        streams.wait_connected()
        time.sleep(3)  # a few publishes delivered to every stream
        rss_n = server.rss_kb()
        streams.close()
        server.cancel(job_id)
    finally:
        server.stop()
    per = (rss_n - rss_0) / n
    return {"streams": n, "rss_0_mb": round(rss_0 / 1024, 1), "rss_n_mb": round(rss_n / 1024, 1),
            "kb_per_stream": round(per, 1), "target_met": per <= TARGETS["kb_per_stream"]}


def write_lastfm_csv(path, rows):
    """Header-less `artist,album,track,date` rows, all distinct, one a minute going back from 2020:
    2,000 artists (for 300,000 rows), 8 albums of 12 tracks each."""
    rng = random.Random(1)
    artists = [f"Artist {i}" for i in range(max(1, rows // 150))]
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for i in range(rows):
            a = rng.randrange(len(artists))
            album = rng.randrange(8)
            when = start - timedelta(minutes=i)
            # Titles belong to their artist, as in a real library: a lookup by title narrows.
            fh.write(f"{artists[a]},Album {a}-{album},Song {a}.{album}.{rng.randrange(12)},{when:%d %b %Y %H:%M}\n")
    return path.stat().st_size


def scenario_import(template, workdir, args):
    csv_path = Path(workdir) / "lastfm_bench.csv"
    size = write_lastfm_csv(csv_path, args.rows)
    env = {"IMPORT_BATCH_SIZE": str(args.batch_size)} if args.batch_size else {}
    server = Server(template, workdir, env)
    n = args.import_streams
    try:
        baseline = measure_progress_check(server, n, args.duration + 1)

        check_id = server.progress_check(600, 50)  # cancelled when the import ends
        check = Streams(server, check_id, n)
        check.wait_connected()
        time.sleep(1)
        posted = time.time()
        with open(csv_path, "rb") as fh:
            import_id = server.post("/api/v1/imports", files={"files": ("lastfm_bench.csv", fh, "text/csv")})
        upload_s = time.time() - posted
        watchers = Streams(server, import_id, 10)  # the import's own page
        watchers.wait_connected()
        cpu = CpuMeter(server.worker)
        if watchers.wait_done(timeout=args.import_timeout) < 10:
            server.cancel(import_id)  # too slow for this bench: measure what ran
            watchers.wait_done(timeout=30)
        cpu = cpu.percent()
        final = server.snapshot(import_id)
        server.cancel(check_id)
        check.wait_done(timeout=30)
        begin = _publish_time(final["started_at"].encode())
        end = _publish_time(final["finished_at"].encode())
        during = check.latencies(since=begin, until=end)
        own = watchers.latencies(since=begin, until=end)
        during = {"streams": n, **cpu, "publishing": publish_gaps(check.publish_times(), begin, end),
                  **summary(during)}
        own = {"streams": 10, "publishing": publish_gaps(watchers.publish_times(), begin, end),
               **summary(own)}
        check.close()
        watchers.close()
    finally:
        server.stop()
        csv_path.unlink(missing_ok=True)
    result = final.get("result") or {}
    counts = result if "imported" in result else final.get("counters") or {}
    rows = sum(counts.get(k) or 0 for k in ("imported", "skipped", "errors"))
    elapsed = final.get("elapsed_time") or (end - begin)
    return {"rows": args.rows, "csv_mb": round(size / 1e6, 1), "batch_size": args.batch_size or "default",
            "upload_seconds": round(upload_s, 2), "import_status": final["status"],
            "import_seconds": round(elapsed, 1), "rows_done": rows, "imported": result.get("imported"),
            "rows_per_second": round(rows / elapsed) if elapsed else None,
            "baseline": baseline, "during_import": during, "import_job_streams": own,
            "p50_ratio": ratio(during["p50_ms"], baseline["p50_ms"]),
            "p99_ratio": ratio(during["p99_ms"], baseline["p99_ms"]),
            "target_met": (during["p99_ms"] or 1e9) <= TARGETS["p99_ms_during_import"]}


# ---------------------------------------------------------------------------------- reporting
def table(title, header, rows):
    rows = [["-" if v is None else v for v in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, *rows]:
        print("  ".join(f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)))


def result_row(name, r):
    pub = r.get("publishing", {})
    return [name, r["streams"], r["count"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
            r.get("first_max_ms"), r.get("fanout_p50_ms"), r.get("fanout_max_ms"), pub.get("per_second"),
            pub.get("gap_max_ms"), r.get("worker_cpu_percent"), r.get("client_cpu_percent"),
            r.get("others_cpu_percent")]


HEADER = ["case", "streams", "events", "p50_ms", "p90_ms", "p99_ms", "max_ms", "first_max", "fanout_p50",
          "fanout_max", "pub/s", "gap_max_ms", "worker_cpu%", "client_cpu%", "others_cpu%"]


def report(results):
    def verdict(ok):
        return "met" if ok else "MISSED"
    if "latency" in results:
        r = results["latency"]
        table("Publish-to-receive latency, one gevent worker", HEADER,
              [result_row("1 stream", r["baseline"]), result_row(f"{r['loaded']['streams']} streams", r["loaded"])])
        print(f"p50 ratio {r['p50_ratio']}x, p99 ratio {r['p99_ratio']}x; target p50 <= {TARGETS['p50_ms_at_500']} ms "
              f"and p99 <= {TARGETS['p99_ms_at_500']} ms at 500 streams: {verdict(r['target_met'])}")
    if "memory" in results:
        r = results["memory"]
        table("Worker memory per open stream", ["streams", "rss_0_mb", "rss_n_mb", "kb_per_stream"],
              [[r["streams"], r["rss_0_mb"], r["rss_n_mb"], r["kb_per_stream"]]])
        print(f"target <= {TARGETS['kb_per_stream']} KB per stream: {verdict(r['target_met'])}")
    if "import" in results:
        r = results["import"]
        table(f"Latency with a CSV import in the same worker ({r['rows']:,} rows, {r['csv_mb']} MB, "
              f"batch size {r['batch_size']})", HEADER,
              [result_row("no import", r["baseline"]), result_row("during import", r["during_import"]),
               result_row("import's own", r["import_job_streams"])])
        print(f"p50 ratio {r['p50_ratio']}x, p99 ratio {r['p99_ratio']}x; target p99 <= "
              f"{TARGETS['p99_ms_during_import']} ms: {verdict(r['target_met'])}")
        print(f"import: {r['import_status']}, {r['rows_done']:,} rows in {r['import_seconds']} s = "
              f"{r['rows_per_second']:,} rows/s (upload {r['upload_seconds']} s)")


def result_tables(results):
    """The tables and notes docs/performance.md shows for this run."""
    def ms(value):
        return "-" if value is None else f"{value:.1f} ms"
    rows, notes = [], []
    if "latency" in results:
        r = results["latency"]
        rows += [["1 open stream", ms(r["baseline"]["p50_ms"]), ms(r["baseline"]["p99_ms"]), ""],
                 [f"{r['loaded']['streams']} open streams", f"{ms(r['loaded']['p50_ms'])} ({r['p50_ratio']}x the 1-stream p50)",
                  ms(r["loaded"]["p99_ms"]), f"p50 ≤ {TARGETS['p50_ms_at_500']} ms, p99 ≤ {TARGETS['p99_ms_at_500']} ms"]]
    if "import" in results:
        r = results["import"]
        base, during = r["baseline"], r["during_import"]
        rows += [[f"{base['streams']} streams, no import running", ms(base["p50_ms"]), ms(base["p99_ms"]), ""],
                 [f"{during['streams']} streams while a {r['rows']:,}-row CSV import runs in the same worker",
                  f"{ms(during['p50_ms'])} ({r['p50_ratio']}x)", f"{ms(during['p99_ms'])} ({r['p99_ratio']}x)",
                  f"p99 ≤ {TARGETS['p99_ms_during_import']} ms"]]
        notes.append(f"The import in that run wrote {r['rows_per_second'] or 0:,} rows/s while keeping the streams live.")
    if "memory" in results:
        r = results["memory"]
        rows.append([f"memory per open stream (worker RSS, 0 vs {r['streams']} idle streams)", f"{r['kb_per_stream']} KB",
                     "", f"≤ {TARGETS['kb_per_stream']} KB"])
    return [bench_results.table(["measure", "p50", "p99", "target"], rows)], notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="latency,memory,import", help="comma-separated scenarios")
    parser.add_argument("--streams", type=int, default=500, help="streams for latency and memory")
    parser.add_argument("--import-streams", type=int, default=100)
    parser.add_argument("--duration", type=float, default=8, help="seconds of measured publishing")
    parser.add_argument("--rows", type=int, default=300_000, help="rows in the generated CSV")
    parser.add_argument("--import-timeout", type=float, default=150)
    parser.add_argument("--store", default="database", choices=("database", "memory"),
                        help="PROGRESS_STORE of the server (the app's default: database)")
    parser.add_argument("--batch-size", type=int, help="IMPORT_BATCH_SIZE for the import (default: the app's)")
    args = parser.parse_args(argv)
    Server.store = args.store
    scenarios = {"latency": scenario_latency, "memory": scenario_memory, "import": scenario_import}
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    workdir = tempfile.mkdtemp(prefix="sillon-bench-sse-")
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
               "targets": TARGETS, "args": vars(args)}
    try:
        template = Path(workdir) / "template"
        template.mkdir()
        done = subprocess.run([sys.executable, "-c", MIGRATE, str(ROOT), str(template)], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError("migrating the template database failed:\n" + done.stderr[-3000:])
        for name in chosen:
            t0 = time.monotonic()
            print(f"[{name}] running ...", flush=True)
            results[name] = scenarios[name](template / "sillon.db", workdir, args)
            results[name]["bench_seconds"] = round(time.monotonic() - t0, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    report(results)
    bench_results.write_results("sse", json.loads(json.dumps(results, default=str)), *result_tables(results))


if __name__ == "__main__":
    main()
