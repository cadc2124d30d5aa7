"""Last.fm history import against the local emulator (tests/emulators/lastfm.py), through the real pylast.

1. throughput: a full import of LISTENS (100,000) listens with no added latency, run through the
   real job code (POST /api/v1/services/lastfm/import-history on the app's test client, then the
   runner's join), against a bare loop in the same run that fetches the same pages one after
   another through pylast (modules.sources.lastfm.make_network + fetch_recent_page, same window,
   same order) and stores nothing. LASTFM_REQUESTS_PER_SECOND is set to 1000 here so that pacing
   is not what limits the import: this measures the app's own overhead (writing, checkpoints,
   progress, threads). Target: import / bare loop at most 1.2x. Both processes' CPU time is
   reported too (and its ratio): on a shared machine it moves less than wall time.
   pylast spends ~60-75 ms CPU per 200-track page (it parses every answer twice and pretty-prints
   it for a debug log even when debug is off; about a third of that is the cyclic GC collecting
   the DOMs); the bare loop pays that too.
   Memory: peak RSS (VmHWM) of the import's own process at LISTENS against SMALL (10,000)
   listens. Target: at most 1.2x. The RSS growth during the import (peak minus RSS just before the
   POST) is reported too.
2. latency: the same import with LATENCY (0.3 s) added to every emulator answer and the default
   pacing (LASTFM_REQUESTS_PER_SECOND=5, LASTFM_CONCURRENCY default), on LATENCY_LISTENS (20,000 =
   100 pages, to keep the bench short) listens: wall time against the polite bound pages / 5
   seconds. Target: at most 1.15x (one request after another would be 1.5x at best).

Each run (bare loop and imports) is its own subprocess with its own temp instance folder and a copy
of a migrated SQLite database; the emulator runs in this parent process, so its XML rendering does
not share the measured process's GIL (like the real Last.fm, it is somewhere else). Wall time of an
import = from the POST to the end of the job (the POST's credentials check included).

Prints a table and writes bench/results/lastfm.json (with the load average before and after: other
work on the machine skews wall times); reports whether targets were met, never fails on timings.

    .venv/bin/python bench/bench_lastfm.py                       # both, about 2-3 minutes
    .venv/bin/python bench/bench_lastfm.py --only throughput --listens 20000
    .venv/bin/python bench/bench_lastfm.py --pyspy              # also record each import with py-spy
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import results as bench_results  # bench/results.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LISTENS = 100_000
SMALL = 10_000
LATENCY_LISTENS = 20_000
LATENCY = 0.3
START_UTS = 1_600_000_000
POLITE_RATE = 5.0
TARGETS = {"throughput_ratio": 1.2, "memory_ratio": 1.2, "latency_ratio": 1.15}
API_KEY, API_SECRET = "test-key", "test-secret"


# ------------------------------------------------------------------------------ child processes
def _environ(instance, url, username, extra):
    return {"SILLON_CONFIG": str(Path(instance) / "absent-config.json"), "INSTANCE_PATH": str(instance),
            "LASTFM_API_KEY": API_KEY, "LASTFM_API_SECRET": API_SECRET, "LASTFM_USERNAME": username,
            "LASTFM_API_URL": url, "TRACKER_AUTOSTART": "false", **extra}


def _rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_kb():
    """This process's peak RSS (VmHWM). Not ru_maxrss: on Linux a child's ru_maxrss carries the
    parent's high-water mark over fork and exec, and the parent here holds the emulator's listens
    (every child then reported the parent's ~200 MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _cpu_s():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_migrate(args):
    sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"ENVIRON": {"SILLON_CONFIG": str(Path(args["instance"]) / "absent-config.json"),
                                  "INSTANCE_PATH": args["instance"]}})
    with app.app_context():
        upgrade()
    return {}


def child_baseline(args):
    """The bare loop: the same pages, one after another, through pylast; nothing stored."""
    sys.path.insert(0, str(ROOT))
    from modules.sources import lastfm

    settings = _environ(args["instance"], args["url"], args["username"], {})
    network = lastfm.make_network(settings)
    rss_before = _rss_kb()
    cpu_before = _cpu_s()
    started = time.perf_counter()
    listens = 0
    for page in range(args["pages"], 0, -1):  # oldest first, like the import
        listens += len(lastfm.fetch_recent_page(network, args["username"], page, None, args["to"]).scrobbles)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "cpu_s": _cpu_s() - cpu_before, "pages": args["pages"], "listens": listens,
            "rss_before_kb": rss_before, "peak_rss_kb": _peak_kb()}


def child_import(args):
    """The real job: POST import-history, join the job thread, read what it stored."""
    sys.path.insert(0, str(ROOT))
    from app import create_app

    environ = _environ(args["instance"], args["url"], args["username"], args["settings"])
    app = create_app({"ENVIRON": environ})
    client = app.test_client()
    client.get("/api/v1/jobs")  # first request's lazy set-up, outside the measure
    rss_before = _rss_kb()
    peak_before = _peak_kb()
    cpu_before = _cpu_s()
    started = time.perf_counter()
    response = client.post("/api/v1/services/lastfm/import-history")
    if response.status_code != 202:
        raise RuntimeError(f"POST import-history: {response.status_code} {response.get_data(as_text=True)[:500]}")
    job_id = response.get_json()["job_id"]
    app.extensions["sillon"]["runner"].join(job_id, args.get("timeout", 900))
    wall = time.perf_counter() - started
    cpu = _cpu_s() - cpu_before
    peak = _peak_kb()
    with app.app_context():
        snap = app.extensions["sillon"]["progress_store"].get(job_id) or {}
        import sqlalchemy as sa

        from modules.db import db
        from modules.models import Listen

        stored = db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar()
        db.session.remove()
    result = snap.get("result") or {}
    return {"wall_s": wall, "cpu_s": cpu, "status": snap.get("status"), "message": snap.get("message"),
            "imported": result.get("imported"), "batches": result.get("batches"),
            "total_batches": result.get("total_batches"), "stored": stored,
            "rss_before_kb": rss_before, "peak_before_kb": peak_before, "peak_rss_kb": peak,
            "growth_kb": peak - rss_before}


CHILDREN = {"migrate": child_migrate, "baseline": child_baseline, "import": child_import}


def run_child(mode, args, pyspy=None):
    """Run this script as `--child mode` in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(args)]
    if pyspy:
        # --gil: only the thread holding the GIL is sampled, i.e. where the process's CPU goes.
        cmd = [pyspy, "record", "--threads", "--gil", "-r", "200", "-f", "raw",
               "-o", pyspy_out(mode, args), "--"] + cmd
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]  # py-spy prints too
    return json.loads(last)


PYSPY_DIR = Path(tempfile.gettempdir()) / "bench-lastfm-pyspy"


def pyspy_out(mode, args):
    """py-spy's collapsed stacks (one line per stack, thread names included) for an import."""
    PYSPY_DIR.mkdir(exist_ok=True)
    return str(PYSPY_DIR / f"{mode}-{args.get('username', 'x')}.txt")


# ------------------------------------------------------------------------------ parent
class Bench:
    def __init__(self, opts):
        sys.path.insert(0, str(ROOT))
        from tests.emulators.lastfm import LastfmEmulator

        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="bench-lastfm-"))
        self.fm = LastfmEmulator(api_key=API_KEY).start()
        self.template = self.work / "template"
        self.template.mkdir()
        run_child("migrate", {"instance": str(self.template)})
        self.pyspy = shutil.which("py-spy") or (str(ROOT / ".venv/bin/py-spy")
                                                if (ROOT / ".venv/bin/py-spy").exists() else None)

    def close(self):
        self.fm.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def user(self, name, n):
        from tests.emulators.lastfm import generate_listens

        self.fm.add_user(name)
        self.fm.add_listens(name, generate_listens(n, START_UTS, same_second_every=7))
        return name

    def instance(self):
        inst = Path(tempfile.mkdtemp(prefix="instance-", dir=self.work))
        shutil.copy(self.template / "sillon.db", inst / "sillon.db")
        return inst

    def baseline(self, username, n):
        pages = -(-n // 200)
        self.fm.reset_counters()
        out = run_child("baseline", {"instance": str(self.instance()), "url": self.fm.url, "username": username,
                                     "pages": pages, "to": int(time.time())})
        out["requests"] = self.fm.count()
        if out["listens"] != n:
            raise RuntimeError(f"bare loop read {out['listens']} listens, expected {n}")
        return out

    def import_(self, username, n, settings):
        self.fm.reset_counters()
        args = {"instance": str(self.instance()), "url": self.fm.url, "username": username,
                "settings": settings}
        use_spy = self.pyspy if self.opts.pyspy else None
        out = run_child("import", args, pyspy=use_spy)
        requests = self.fm.requests
        out["requests"] = len(requests)
        out["max_in_flight"] = self.fm.max_in_flight
        arrivals = sorted(r.time for r in requests)
        out["max_starts_per_second"] = max_in_window(arrivals, 1.0)  # as the server sees them
        out["max_starts_per_5_seconds"] = max_in_window(arrivals, 5.0)
        if out["status"] != "completed" or out["stored"] != n:
            raise RuntimeError(f"import of {n} did not complete: {out}")
        return out


def max_in_window(times, window):
    """Most request arrivals in any `window`-second span."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def throughput(bench, opts):
    print(f"\n== throughput: {opts.listens:,} listens, no latency, LASTFM_REQUESTS_PER_SECOND=1000 "
          "(pacing not the limit)", flush=True)
    big = bench.user("bench_big", opts.listens)
    small = bench.user("bench_small", opts.small)
    fast = {"LASTFM_REQUESTS_PER_SECOND": "1000"}
    bases, imports = [], []
    for round_no in range(opts.rounds):
        bases.append(bench.baseline(big, opts.listens))
        print(f"  round {round_no + 1}: bare loop {bases[-1]['wall_s']:.2f} s (CPU {bases[-1]['cpu_s']:.1f} s)",
              flush=True)
        imports.append(bench.import_(big, opts.listens, fast))
        print(f"  round {round_no + 1}: import    {imports[-1]['wall_s']:.2f} s (CPU {imports[-1]['cpu_s']:.1f} s, "
              f"peak RSS {imports[-1]['peak_rss_kb'] / 1024:.0f} MB)", flush=True)
    small_run = bench.import_(small, opts.small, fast)
    print(f"  import of {opts.small:,}: {small_run['wall_s']:.2f} s (peak RSS {small_run['peak_rss_kb'] / 1024:.0f} MB)",
          flush=True)
    base_s = median([b["wall_s"] for b in bases])
    imp_s = median([i["wall_s"] for i in imports])
    big_run = min(imports, key=lambda i: abs(i["wall_s"] - imp_s))
    ratio = imp_s / base_s
    peak_big = max(i["peak_rss_kb"] for i in imports)
    mem_ratio = peak_big / small_run["peak_rss_kb"]
    growth_big = max(i["growth_kb"] for i in imports)
    return {
        "note": "LASTFM_REQUESTS_PER_SECOND=1000 (pacing not the limit); LASTFM_CONCURRENCY default",
        "listens": opts.listens, "pages": -(-opts.listens // 200), "rounds": opts.rounds,
        "baseline_cpu_s": median([b["cpu_s"] for b in bases]), "import_cpu_s": median([i["cpu_s"] for i in imports]),
        "requests_per_second_setting": 1000,
        "baseline_s": base_s, "import_s": imp_s, "ratio": ratio,
        "cpu_ratio": median([i["cpu_s"] for i in imports]) / median([b["cpu_s"] for b in bases]),
        "target": TARGETS["throughput_ratio"], "target_met": ratio <= TARGETS["throughput_ratio"],
        "baseline_runs": bases, "import_runs": imports,
        "import_listens_per_s": opts.listens / imp_s, "baseline_listens_per_s": opts.listens / base_s,
        "memory": {
            "small_listens": opts.small, "peak_rss_kb_big": peak_big, "peak_rss_kb_small": small_run["peak_rss_kb"],
            "ratio": mem_ratio, "target": TARGETS["memory_ratio"], "target_met": mem_ratio <= TARGETS["memory_ratio"],
            "growth_kb_big": growth_big, "growth_kb_small": small_run["growth_kb"],
            "growth_ratio": growth_big / max(small_run["growth_kb"], 1),
            "small_run": small_run, "big_run_requests": big_run["requests"],
        },
    }


def latency(bench, opts):
    pages = -(-opts.latency_listens // 200)
    bound = pages / POLITE_RATE
    print(f"\n== latency: {opts.latency_listens:,} listens ({pages} pages), {opts.latency * 1000:.0f} ms per answer, "
          f"default pacing (5/s), polite bound {bound:.1f} s", flush=True)
    name = bench.user("bench_latency", opts.latency_listens)
    bench.fm.latency = opts.latency
    try:
        run = bench.import_(name, opts.latency_listens, {})
    finally:
        bench.fm.latency = 0
    ratio = run["wall_s"] / bound
    print(f"  import {run['wall_s']:.2f} s, {run['requests']} requests, max {run['max_in_flight']} in flight, "
          f"at most {run['max_starts_per_second']} arriving in any 1 s, {run['max_starts_per_5_seconds']} in any 5 s",
          flush=True)
    return {"note": "default pacing and concurrency; bound = pages / 5 requests per second",
            "listens": opts.latency_listens, "pages": pages, "latency_s": opts.latency,
            "polite_bound_s": bound, "import_s": run["wall_s"], "ratio": ratio,
            "target": TARGETS["latency_ratio"], "target_met": ratio <= TARGETS["latency_ratio"],
            "one_after_another_best_ratio": pages * opts.latency / bound, "run": run}


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def table(results):
    rows = [("measure", "value", "target", "met")]
    t = results.get("throughput")
    if t:
        m = t["memory"]
        rows += [
            (f"bare loop, {t['pages']} pages (s)", f"{t['baseline_s']:.2f}", "", ""),
            (f"import {t['listens']:,} listens (s)", f"{t['import_s']:.2f}", "", ""),
            ("process CPU, bare loop / import (s)", f"{t['baseline_cpu_s']:.1f} / {t['import_cpu_s']:.1f}",
             f"ratio {t['cpu_ratio']:.2f}x", ""),
            ("import / bare loop", f"{t['ratio']:.3f}x", f"<= {t['target']}x", "yes" if t["target_met"] else "NO"),
            ("import listens/s", f"{t['import_listens_per_s']:,.0f}", "", ""),
            (f"peak RSS at {t['listens']:,} (MB)", f"{m['peak_rss_kb_big'] / 1024:.1f}", "", ""),
            (f"peak RSS at {m['small_listens']:,} (MB)", f"{m['peak_rss_kb_small'] / 1024:.1f}", "", ""),
            ("peak RSS ratio", f"{m['ratio']:.3f}x", f"<= {m['target']}x", "yes" if m["target_met"] else "NO"),
            ("RSS growth during import (MB)",
             f"{m['growth_kb_big'] / 1024:.1f} vs {m['growth_kb_small'] / 1024:.1f}", "", ""),
        ]
    lat = results.get("latency")
    if lat:
        rows += [
            (f"polite bound, {lat['pages']} pages / 5 (s)", f"{lat['polite_bound_s']:.1f}", "", ""),
            (f"import {lat['listens']:,} at {lat['latency_s'] * 1000:.0f} ms (s)", f"{lat['import_s']:.2f}", "", ""),
            ("import / polite bound", f"{lat['ratio']:.3f}x", f"<= {lat['target']}x",
             "yes" if lat["target_met"] else "NO"),
            ("most requests arriving in any 1 s / 5 s",
             f"{lat['run']['max_starts_per_second']} / {lat['run']['max_starts_per_5_seconds']}", "", ""),
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def result_tables(results):
    """The table docs/performance.md shows for this run."""
    rows = []
    t = results.get("throughput")
    if t:
        m = t["memory"]
        rows += [[f"{t['listens']:,} listens, no added latency, vs a bare loop fetching the same {t['pages']} pages "
                  "through pylast one after another and storing nothing",
                  f"{t['ratio']:.2f}x ({t['import_s']:.1f} s vs {t['baseline_s']:.1f} s; CPU {t['cpu_ratio']:.2f}x)",
                  f"at most {t['target']}x"],
                 [f"peak memory at {t['listens']:,} vs {m['small_listens']:,} listens",
                  f"{m['ratio']:.2f}x ({m['peak_rss_kb_big'] / 1024:.0f} MB vs {m['peak_rss_kb_small'] / 1024:.0f} MB)",
                  f"at most {m['target']}x"]]
    lat = results.get("latency")
    if lat:
        rows.append([f"{lat['listens']:,} listens with {lat['latency_s'] * 1000:.0f} ms added to every answer, "
                     "vs the polite bound (pages / 5 a second)",
                     f"{lat['ratio']:.3f}x ({lat['import_s']:.1f} s vs {lat['polite_bound_s']:.1f} s)",
                     f"at most {lat['target']}x"])
    return [bench_results.table(["measure", "figure", "target"], rows)]


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("throughput", "latency"))
    parser.add_argument("--listens", type=int, default=LISTENS)
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--latency-listens", type=int, default=LATENCY_LISTENS)
    parser.add_argument("--latency", type=float, default=LATENCY)
    parser.add_argument("--rounds", type=int, default=1, help="bare loop + import pairs (median reported)")
    parser.add_argument("--pyspy", action="store_true",
                        help=f"record each import with py-spy (collapsed stacks in {PYSPY_DIR})")
    opts = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(opts)
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_before": os.getloadavg()}
    try:
        if opts.only in (None, "throughput"):
            results["throughput"] = throughput(bench, opts)
        if opts.only in (None, "latency"):
            results["latency"] = latency(bench, opts)
    finally:
        bench.close()
    results["loadavg_after"] = os.getloadavg()  # other work on the machine skews wall times
    table(results)
    print(f"\nload average before / after: {results['loadavg_before'][0]:.2f} / {results['loadavg_after'][0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    bench_results.write_results("lastfm", results, result_tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
