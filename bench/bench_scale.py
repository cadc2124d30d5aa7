"""Scale-out of Server-Sent Events: 2,000 open streams across TWO gunicorn gevent workers, with the
Redis progress store and with the database store (issue 6, "Benchmarks").

With WEB_CONCURRENCY=2 both workers accept on the same socket, so the streams spread over both; the
progress check (POST /api/v1/diagnostics/progress-check) runs in one of them, and the other worker's
streams hear it through the store: Redis pub/sub (one subscriber connection per process), or the
database watcher polling every PROGRESS_POLL_INTERVAL (0.1 s). Latency = receive time minus the
snapshot's `updated_at`, as in bench_sse.py (whose server/client/statistics code this reuses).

Each stream's server-side worker is found from its client port (psutil, the worker's sockets), and
so is the worker that ran the job (the POST's keep-alive connection), so latency is also reported
split into "same worker as the job" and "other worker" (the one that depends on the store).

Redis connections are sampled from CLIENT LIST every 0.25 s (clients in the bench's db, mapped to
the worker pids by their ports), with INFO clients and PUBSUB NUMSUB sillon:progress.

    .venv/bin/python bench/bench_scale.py                     # both stores, about 1-2 minutes
    .venv/bin/python bench/bench_scale.py --stores redis --streams 500
"""
# bench_sse first: its gevent monkey.patch_all() runs before anything else imports socket
from bench_sse import (HEADER, MIGRATE, ROOT, CpuMeter, Server, Streams, publish_gaps, result_row,  # noqa: I001
                       ratio, summary, table)

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
import results as bench_results  # noqa: E402 - bench/results.py

# Issue 6 states p99 <= 250 ms; the brief for this bench states 200 ms. Both are reported.
TARGETS = {"p50_ms": 50, "p99_ms": 200, "p99_ms_issue": 250}
CHANNEL = "sillon:progress"


class TwoWorkerServer(Server):
    """bench_sse.Server with WEB_CONCURRENCY=2 (bench_sse's asserts one worker)."""

    def __init__(self, template_db, workdir, store, env=None):
        self.instance = Path(tempfile.mkdtemp(prefix="instance-", dir=workdir))
        shutil.copy(template_db, self.instance / "sillon.db")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {**os.environ, "SILLON_CONFIG": str(self.instance / "absent-config.json"),
                   "INSTANCE_PATH": str(self.instance), "BIND": f"127.0.0.1:{self.port}",
                   "WEB_CONCURRENCY": "2", "PROGRESS_STORE": store, "PYTHONPATH": str(ROOT), **(env or {})}
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
                if len(psutil.Process(self.proc.pid).children()) == 2:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        time.sleep(1.0)  # both workers through post_worker_init
        self.workers = psutil.Process(self.proc.pid).children()
        assert len(self.workers) == 2, self.workers
        self.worker = self.workers[0]
        print(f"  gunicorn {self.proc.pid}, workers {[w.pid for w in self.workers]}, {self.url}, "
              f"PROGRESS_STORE={store}", flush=True)

    def worker_of_client_ports(self):
        """{client port: worker pid} for every connection accepted by a worker on our port."""
        out = {}
        for w in self.workers:
            for c in w.net_connections(kind="tcp"):
                if c.laddr and c.laddr.port == self.port and c.raddr:
                    out[c.raddr.port] = w.pid
        return out

    def start_job(self, duration, rate):
        """POST the progress check over a kept-alive connection, to see which worker took it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", f"/api/v1/diagnostics/progress-check?duration={duration}&rate={rate}")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 202:
            raise RuntimeError(f"progress-check: {resp.status} {body[:300]}")
        client_port = conn.sock.getsockname()[1]
        pid = self.worker_of_client_ports().get(client_port)
        conn.close()
        return json.loads(body)["job_id"], pid


class PortStreams(Streams):
    """bench_sse.Streams that remembers each stream's client port."""

    def __init__(self, server, job_id, n):
        self.ports = [None] * n
        super().__init__(server, job_id, n)

    def _run(self, i):
        sock = socket.create_connection(("127.0.0.1", self.port))
        self.ports[i] = sock.getsockname()[1]
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
                    self.connected += 1
                chunks.append((t, data))
                if data.endswith(b"\r\n0\r\n\r\n") or data == b"0\r\n\r\n":
                    return
        except OSError:
            return
        finally:
            sock.close()

    def subset(self, indexes):
        """A view with only some streams' chunks, for bench_sse's latencies()."""
        view = Streams.__new__(Streams)
        view.chunks = [self.chunks[i] for i in indexes]
        view.n = len(view.chunks)
        return view


class WorkersCpu(CpuMeter):
    def __init__(self, workers):
        super().__init__(workers[0])
        self.procs = {f"worker{i}": w for i, w in enumerate(workers)} | {"client": psutil.Process()}
        self.start = {k: sum(p.cpu_times()[:2]) for k, p in self.procs.items()}


class RedisSampler:
    """Samples Redis clients every `every` s in a greenlet: total connected, the bench db's, and
    those belonging to each worker (matched by port), subscribers among them."""

    def __init__(self, url, db, server, every=0.25):
        self.r = redis.Redis.from_url(url)
        self.db, self.server, self.every = db, server, every
        self.samples = []
        self.greenlet = gevent.spawn(self._loop)

    def sample(self, label=None):
        clients = self.r.client_list()
        own_port = {c.laddr.port: w.pid for w in self.server.workers
                    for c in w.net_connections(kind="tcp") if c.raddr and c.raddr.port == 6379}
        per_worker = {w.pid: {"connections": 0, "subscribers": 0} for w in self.server.workers}
        in_db = 0
        for c in clients:
            if int(c.get("db", -1)) == self.db:
                in_db += 1
            port = int(c["addr"].rsplit(":", 1)[1])
            pid = own_port.get(port)
            if pid is not None:
                per_worker[pid]["connections"] += 1
                if int(c.get("sub", 0)) or int(c.get("psub", 0)):
                    per_worker[pid]["subscribers"] += 1
        info = self.r.info("clients")
        numsub = dict(self.r.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0)
        s = {"t": time.time(), "label": label, "connected_clients": info["connected_clients"],
             "clients_in_db": in_db, "workers_connections": sum(v["connections"] for v in per_worker.values()),
             "per_worker": {str(k): v for k, v in per_worker.items()}, "numsub": numsub}
        self.samples.append(s)
        return s

    def _loop(self):
        while True:
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001
                print("  redis sample failed:", exc, flush=True)
            gevent.sleep(self.every)

    def stop(self):
        self.greenlet.kill()

    def peak(self):
        if not self.samples:
            return {}
        return {k: max(s[k] for s in self.samples)
                for k in ("connected_clients", "clients_in_db", "workers_connections", "numsub")}


def sqlite_handles(server):
    return {str(w.pid): sum(1 for f in w.open_files() if "sillon.db" in f.path) for w in server.workers}


def run_store(store, template, workdir, args):
    env = {}
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    if store == "redis":
        env["REDIS_URL"] = redis_url
        redis.Redis.from_url(redis_url).flushdb()
    server = TwoWorkerServer(template, workdir, store, env)
    sampler = None
    try:
        if store == "redis":
            sampler = RedisSampler(redis_url, args.redis_db, server)
            idle = sampler.sample("idle, no streams")
        duration = args.duration + args.connect_margin
        job_id, job_pid = server.start_job(duration, args.rate)
        t0 = time.monotonic()
        streams = PortStreams(server, job_id, args.streams)
        ready = streams.wait_connected(timeout=args.connect_margin + 30)
        connect_s = time.monotonic() - t0
        mapping = server.worker_of_client_ports()
        stream_pid = [mapping.get(p) for p in streams.ports]
        at_connected = sampler.sample("all streams connected") if sampler else None
        db_handles = sqlite_handles(server) if store == "database" else None
        cpu = WorkersCpu(server.workers)
        finished = streams.wait_done(timeout=duration + 60)
        cpu = cpu.percent()
        after = sampler.sample("job finished") if sampler else None
        lat_all = streams.latencies(since=ready)
        same = [i for i, p in enumerate(stream_pid) if p == job_pid]
        other = [i for i, p in enumerate(stream_pid) if p is not None and p != job_pid]
        unknown = sum(1 for p in stream_pid if p is None)
        lat_same = streams.subset(same).latencies(since=ready)
        lat_other = streams.subset(other).latencies(since=ready)
        publishes = streams.publish_times()
        streams.close()
    finally:
        if sampler:
            sampler.stop()
        server.stop()
    measured = (max(publishes) - ready) if publishes else 0
    out = {"store": store, "streams": args.streams, "job_worker": job_pid,
           "streams_per_worker": {str(w.pid): stream_pid.count(w.pid) for w in server.workers},
           "streams_worker_unknown": unknown, "connect_seconds": round(connect_s, 2),
           "measured_seconds": round(measured, 1), "streams_finished": finished, **cpu,
           "publishing": publish_gaps(publishes, ready),
           "events_per_stream": round(sum(map(len, lat_all.values())) / args.streams, 1),
           **summary(lat_all),
           "same_worker_as_job": {"streams": len(same), **summary(lat_same)},
           "other_worker": {"streams": len(other), **summary(lat_other)}}
    if sampler:
        out["redis"] = {"url": redis_url, "idle": idle, "all_connected": at_connected, "job_finished": after,
                        "peak_during_run": sampler.peak(), "samples": len(sampler.samples)}
    if db_handles is not None:
        out["sqlite_handles_per_worker_at_connected"] = db_handles
    out["target_met"] = {"p50": (out["p50_ms"] or 1e9) <= TARGETS["p50_ms"],
                         "p99_200": (out["p99_ms"] or 1e9) <= TARGETS["p99_ms"],
                         "p99_250_issue": (out["p99_ms"] or 1e9) <= TARGETS["p99_ms_issue"]}
    return out


def result_tables(results, stores):
    """The table docs/performance.md shows for this run: one column per store."""
    def ms(value):
        return "-" if value is None else f"{value:.1f} ms"

    def connections(r):
        if "redis" not in r:
            return ""
        s = r["redis"]["all_connected"]
        each = ", ".join(str(v["connections"]) for v in s["per_worker"].values())
        return f"{s['workers_connections']} ({each} a worker; `PUBSUB NUMSUB` = {s['numsub']})"

    rs = [results[store] for store in stores]
    ratios = results.get("redis_vs_database", {})
    rows = [["p50, all streams", *(ms(r["p50_ms"]) for r in rs), f"at most {TARGETS['p50_ms']} ms"],
            ["p99, all streams", *(ms(r["p99_ms"]) for r in rs), f"at most {TARGETS['p99_ms_issue']} ms"],
            ["p50 / p99, streams of the *other* worker (the one that depends on the store)",
             *(f"{ms(r['other_worker']['p50_ms'])} / {ms(r['other_worker']['p99_ms'])}" for r in rs), ""],
            [f"Redis connections of the two workers with {results['args']['streams']:,} streams open",
             *(connections(r) for r in rs), "follow processes"]]
    if ratios:
        rows.insert(3, ["Redis / database ratio, p50 (other worker)",
                        *(f"{ratios['other_worker_p50_ratio']} (all streams {ratios['p50_ratio']})" if store == "redis"
                          else "1" for store in stores), ""])
    return [bench_results.table(["measure", *({"redis": "Redis store"}.get(store, f"{store} store") for store in stores), "target"], rows)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--stores", default="redis,database")
    parser.add_argument("--duration", type=float, default=8, help="seconds of publishing after all connected")
    parser.add_argument("--connect-margin", type=float, default=8, help="extra job seconds for connecting")
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    workdir = tempfile.mkdtemp(prefix="sillon-bench-scale-")
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
        for store in stores:
            t0 = time.monotonic()
            print(f"[{store}] running ...", flush=True)
            results[store] = run_store(store, template / "sillon.db", workdir, args)
            results[store]["bench_seconds"] = round(time.monotonic() - t0, 1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    if "redis" in results and "database" in results:
        r, d = results["redis"], results["database"]
        results["redis_vs_database"] = {
            "p50_ratio": ratio(r["p50_ms"], d["p50_ms"]), "p99_ratio": ratio(r["p99_ms"], d["p99_ms"]),
            "other_worker_p50_ratio": ratio(r["other_worker"]["p50_ms"], d["other_worker"]["p50_ms"]),
            "other_worker_p99_ratio": ratio(r["other_worker"]["p99_ms"], d["other_worker"]["p99_ms"])}
    rows = []
    for store in stores:
        r = results[store]
        rows += [result_row(f"{store} all", r),
                 [f"{store} job's worker", r["same_worker_as_job"]["streams"], r["same_worker_as_job"]["count"],
                  r["same_worker_as_job"]["p50_ms"], r["same_worker_as_job"]["p90_ms"],
                  r["same_worker_as_job"]["p99_ms"], r["same_worker_as_job"]["max_ms"]] + [None] * 8,
                 [f"{store} other worker", r["other_worker"]["streams"], r["other_worker"]["count"],
                  r["other_worker"]["p50_ms"], r["other_worker"]["p90_ms"], r["other_worker"]["p99_ms"],
                  r["other_worker"]["max_ms"]] + [None] * 8]
    table(f"Publish-to-receive latency, {args.streams} streams over two gevent workers", HEADER, rows)
    for store in stores:
        r = results[store]
        print(f"{store}: streams per worker {r['streams_per_worker']} (job in {r['job_worker']}), connect "
              f"{r['connect_seconds']} s, measured {r['measured_seconds']} s; cpu% worker0 {r['worker0_cpu_percent']} "
              f"worker1 {r['worker1_cpu_percent']} client {r['client_cpu_percent']} others {r['others_cpu_percent']}; "
              f"target_met {r['target_met']}")
        if "redis" in r:
            for k in ("idle", "all_connected", "job_finished"):
                s = r["redis"][k]
                print(f"  redis {k}: connected_clients {s['connected_clients']}, in db {s['clients_in_db']}, "
                      f"workers' {s['per_worker']}, NUMSUB {s['numsub']}")
            print(f"  redis peak during run: {r['redis']['peak_during_run']}")
    if "redis_vs_database" in results:
        print("redis / database:", results["redis_vs_database"])
    bench_results.write_results("scale", json.loads(json.dumps(results, default=str)), result_tables(results, stores))


if __name__ == "__main__":
    main()
