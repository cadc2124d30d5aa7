"""Discogs collection sync against the local emulator (tests/emulators/discogs.py), through the real
python3-discogs-client.

For a collection of ITEMS (2,000) items, in one process:

* baseline, the bare fetch: a loop with a ``discogs_client.Client`` pointed at the emulator
  (``client._base_url = dc.url``, backoff off) that reads folder 0's releases with ``per_page=100``,
  ``sort=added``, ``sort_order=asc``: the page count (page 1), then every page, each item's raw
  data touched, nothing stored. The folder object is built from its URL, so the loop makes only the
  page calls (no identity, profile or folder-list call).
* sync, everything new: the real job (``create_app`` on a fresh copy of a migrated SQLite database,
  ``POST /api/v1/services/discogs/sync`` on the app's test client, then the runner's join) into an
  empty database: 2,000 items added.
* sync, nothing new: the same job again on that database: 0 added.

API calls are counted from the emulator's request log; wall time runs from the POST to the end of
the job (the POST's own work included). Each sync is reported as a ratio to the baseline of the same
round: calls / baseline calls and wall / baseline wall (the median of REPEATS runs each, the runs of
a round interleaved so that machine noise falls on both sides). The issue's bound, at most 23
calls for 2,000 items with nothing new and none per item, is reported as ``calls_ok`` for both
syncs (a count, not a timing; the everything-new sync makes the same calls).

Two rounds: the emulator answering at once (what the app itself costs), then with LATENCY (20 ms)
added to every answer (the network cost: one request after another, so about calls x 20 ms).

The emulator serves from a thread of this process, so its JSON rendering shares the GIL with the
measured code, on both sides of each ratio alike. CPU figures are this process's (emulator included).

Prints a table and writes bench/results/discogs.json; never fails on a timing.

    .venv/bin/python bench/bench_discogs.py              # about 40 s
    .venv/bin/python bench/bench_discogs.py --repeats 3 --items 5000
"""
from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py

ITEMS = 2_000
REPEATS = 5
LATENCY = 0.020
PER_PAGE = 100
TOKEN = "test-token"
MAX_CALLS_NOTHING_NEW = 23  # the issue: identity, at most two to find the folder, one per page of 100


def environ(instance, dc):
    return {"SILLON_CONFIG": str(Path(instance) / "absent-config.json"), "INSTANCE_PATH": str(instance),
            "DISCOGS_API_URL": dc.url, "DISCOGS_TOKEN": TOKEN, "TRACKER_AUTOSTART": "false"}


class Bench:
    def __init__(self, opts):
        from tests.emulators.discogs import DiscogsEmulator, generate_items

        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="bench-discogs-"))
        self.dc = DiscogsEmulator(token=TOKEN).start()
        # Every 10th item a second copy of the release before it: two items, one release.
        self.dc.add_items(generate_items(opts.items, duplicate_every=10, image_base=self.dc.image_base))
        self.template = self.work / "template"
        self.template.mkdir()
        self._migrate()
        self.apps = []

    def _migrate(self):
        from flask_migrate import upgrade

        from app import create_app

        app = create_app({"ENVIRON": environ(self.template, self.dc)})
        with app.app_context():
            upgrade()
            from modules.db import db
            db.engine.dispose()
        logging.getLogger("alembic").setLevel(logging.WARNING)

    def close(self):
        for app in self.apps:
            self._dispose(app)
        self.dc.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def _dispose(app):
        with app.app_context():
            from modules.db import db
            db.engine.dispose()

    def fresh_app(self):
        from app import create_app

        instance = Path(tempfile.mkdtemp(prefix="instance-", dir=self.work))
        shutil.copy(self.template / "sillon.db", instance / "sillon.db")
        app = create_app({"ENVIRON": environ(instance, self.dc)})
        app.test_client().get("/api/v1/jobs")  # first request's lazy set-up, outside the measure
        self.apps.append(app)
        return app

    # -------------------------------------------------------------------------------- measured runs
    def _calls(self):
        requests = self.dc.requests
        by_kind = collections.Counter(kind(r.path) for r in requests)
        return {"calls": len(requests), "by_kind": dict(sorted(by_kind.items())),
                "per_item_calls": sum(n for k, n in by_kind.items() if k in ("release", "master", "artist",
                                                                             "label", "instances", "image"))}

    def baseline(self):
        import discogs_client
        from discogs_client.models import CollectionFolder

        gc.collect()
        self.dc.reset_counters()
        cpu, started = time.process_time(), time.perf_counter()
        client = discogs_client.Client("SillonBench/1.0", user_token=TOKEN)
        client._base_url = self.dc.url
        client.backoff_enabled = False
        folder = CollectionFolder(client, {"id": 0, "resource_url":
                                           f"{self.dc.url}/users/{self.dc.username}/collection/folders/0"})
        listing = folder.releases
        listing.per_page = PER_PAGE
        listing = listing.sort("added", "asc")
        read = 0
        for page in range(1, listing.pages + 1):
            read += len([item.data for item in listing.page(page)])
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        if read != self.opts.items:
            raise RuntimeError(f"the bare fetch read {read} items, expected {self.opts.items}")
        return {"wall_s": wall, "cpu_s": cpu, "items": read, **self._calls()}

    def sync(self, app, expect_added):
        from modules.db import db
        from modules.models import CollectionItem

        gc.collect()
        client = app.test_client()
        self.dc.reset_counters()
        cpu, started = time.process_time(), time.perf_counter()
        response = client.post("/api/v1/services/discogs/sync")
        if response.status_code != 202:
            raise RuntimeError(f"POST sync: {response.status_code} {response.get_data(as_text=True)[:500]}")
        job_id = response.get_json()["job_id"]
        app.extensions["sillon"]["runner"].join(job_id, 300)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        calls = self._calls()
        with app.app_context():
            snap = app.extensions["sillon"]["progress_store"].get(job_id) or {}
            import sqlalchemy as sa

            stored = db.session.execute(sa.select(sa.func.count()).select_from(CollectionItem)).scalar()
            db.session.remove()
        result = snap.get("result") or {}
        out = {"wall_s": wall, "cpu_s": cpu, "status": snap.get("status"), "added": result.get("added"),
               "skipped": result.get("skipped"), "errors": result.get("errors"), "stored": stored,
               "job_elapsed_s": snap.get("elapsed_time"), **calls}
        if out["status"] != "completed" or out["added"] != expect_added or stored != self.opts.items:
            raise RuntimeError(f"sync did not do what was expected (added {expect_added}): {out}")
        return out

    def round(self, latency):
        self.dc.latency = latency
        # Warm-up, not counted: imports, first connections, SQLAlchemy's compiled-statement cache.
        self.baseline()
        app = self.fresh_app()
        self.sync(app, self.opts.items)
        self.sync(app, 0)
        runs = {"baseline": [], "new": [], "nothing_new": []}
        for i in range(self.opts.repeats):
            runs["baseline"].append(self.baseline())
            app = self.fresh_app()
            runs["new"].append(self.sync(app, self.opts.items))
            runs["nothing_new"].append(self.sync(app, 0))
            print(f"  latency {latency * 1000:.0f} ms, run {i + 1}/{self.opts.repeats}: "
                  f"bare {runs['baseline'][-1]['wall_s']:.3f} s, new {runs['new'][-1]['wall_s']:.3f} s, "
                  f"nothing new {runs['nothing_new'][-1]['wall_s']:.3f} s", flush=True)
        self.dc.latency = 0
        return summarise(latency, runs)


def kind(path):
    """A request path's kind, for the breakdown of calls."""
    parts = path.strip("/").split("/")
    if path == "/oauth/identity":
        return "identity"
    if path.startswith("/images/"):
        return "image"
    if parts[0] == "users":
        if len(parts) == 2:
            return "profile"
        if parts[2:4] == ["collection", "folders"]:
            return {4: "folder_list", 5: "folder", 6: "folder_page"}.get(len(parts), "other")
        if parts[2:4] == ["collection", "releases"]:
            return "instances"
    return {"releases": "release", "masters": "master", "artists": "artist", "labels": "label"}.get(parts[0], "other")


def summarise(latency, runs):
    base = runs["baseline"]
    base_wall = statistics.median(r["wall_s"] for r in base)
    base_calls = base[0]["calls"]
    out = {"latency_s": latency, "baseline": {"wall_s": base_wall, "wall_min_s": min(r["wall_s"] for r in base),
                                              "cpu_s": statistics.median(r["cpu_s"] for r in base),
                                              "calls": base_calls, "by_kind": base[0]["by_kind"], "runs": base}}
    for name in ("new", "nothing_new"):
        rs = runs[name]
        wall = statistics.median(r["wall_s"] for r in rs)
        calls = sorted({r["calls"] for r in rs})
        out[name] = {
            "wall_s": wall, "wall_min_s": min(r["wall_s"] for r in rs),
            "cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "calls": max(calls), "calls_seen": calls, "by_kind": rs[0]["by_kind"],
            "per_item_calls": max(r["per_item_calls"] for r in rs),
            "calls_ratio": max(calls) / base_calls, "wall_ratio": wall / base_wall,
            "extra_wall_s": wall - base_wall,
            "calls_ok": max(calls) <= MAX_CALLS_NOTHING_NEW and max(r["per_item_calls"] for r in rs) == 0,
            "calls_bound": MAX_CALLS_NOTHING_NEW, "runs": rs,
        }
    return out


def table(results):
    rows = [("round", "run", "API calls", "calls ratio", "wall (median)", "wall ratio", "CPU")]
    for rnd in results["rounds"].values():
        label = f"{rnd['latency_s'] * 1000:.0f} ms"
        b = rnd["baseline"]
        rows.append((label, "bare fetch (baseline)", str(b["calls"]), "1.00x", f"{b['wall_s'] * 1000:.0f} ms",
                     "1.00x", f"{b['cpu_s'] * 1000:.0f} ms"))
        for name, title in (("new", f"sync, {results['items']:,} new"), ("nothing_new", "sync, nothing new")):
            r = rnd[name]
            rows.append((label, title, str(r["calls"]) + ("" if r["calls_ok"] else " (!)"),
                         f"{r['calls_ratio']:.2f}x", f"{r['wall_s'] * 1000:.0f} ms", f"{r['wall_ratio']:.2f}x",
                         f"{r['cpu_s'] * 1000:.0f} ms"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    first = next(iter(results["rounds"].values()))
    print(f"\ncalls by kind: bare fetch {first['baseline']['by_kind']}; sync {first['nothing_new']['by_kind']}")
    print(f"calls bound for {results['items']:,} items with nothing new: <= {MAX_CALLS_NOTHING_NEW}, "
          f"none per item: {'met' if all(r[n]['calls_ok'] for r in results['rounds'].values() for n in ('new', 'nothing_new')) else 'MISSED'}")


def result_tables(results):
    """The table docs/performance.md shows for this run: one column per round."""
    rounds = list(results["rounds"].values())
    columns = ["run", "API calls"] + [f"wall, {r['latency_s'] * 1000:.0f} ms a call" if r["latency_s"]
                                      else "wall, no added latency" for r in rounds]
    first = rounds[0]
    rows = [["bare fetch (baseline)", str(first["baseline"]["calls"])]
            + [f"1.00x ({r['baseline']['wall_s'] * 1000:.0f} ms)" for r in rounds]]
    for name, title in (("new", "sync, everything new"), ("nothing_new", "sync, nothing new")):
        rows.append([title, f"{first[name]['calls']} ({first[name]['calls_ratio']:.2f}x)"]
                    + [f"{r[name]['wall_ratio']:.2f}x" for r in rounds])
    return [bench_results.table(columns, rows)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="measured runs of each kind per round (median)")
    parser.add_argument("--latency", type=float, default=LATENCY, help="seconds added to each answer in round 2")
    opts = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    results = {"items": opts.items, "per_page": PER_PAGE, "repeats": opts.repeats,
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_before": os.getloadavg(), "rounds": {}}
    started = time.monotonic()
    bench = Bench(opts)
    try:
        for latency in (0.0, opts.latency):
            print(f"\n== {opts.items:,} items, {latency * 1000:.0f} ms added to every answer", flush=True)
            # A dict, not a list: bench/run_all.py looks for the `*_ok` flags inside dicts only.
            results["rounds"][f"latency_{latency * 1000:.0f}ms"] = bench.round(latency)
    finally:
        bench.close()
    results["loadavg_after"] = os.getloadavg()
    results["bench_seconds"] = time.monotonic() - started
    table(results)
    print(f"\nload average before / after: {results['loadavg_before'][0]:.2f} / {results['loadavg_after'][0]:.2f} "
          f"on {os.cpu_count()} CPUs; bench took {results['bench_seconds']:.0f} s")
    bench_results.write_results("discogs", results, result_tables(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
