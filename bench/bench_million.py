"""A million listens: every page, first request and warm, on SQLite and PostgreSQL, and page times
during an import against idle.

The history is built through the app's own import path: a generated Last.fm CSV (header format:
uts, utc_time, artist, artist_mbid, album, album_mbid, track, track_mbid) of `--listens` plays over
ten years, 8,000 artists, 20,000 albums, 120,000 tracks (six per album), Zipf-like popularity
(track rank = 120,000 * u^4), uploaded with `POST /api/v1/imports` on the app's test client and
joined through the job runner; the summaries are therefore the ones the import itself wrote.

Then, on the same app (Flask test client, in process: server time, no network), each page once
("first": the first request after the import) and the median of three more ("warm"): the journal
first and deep page (page 5,000 at a million listens, 90 % of the way down at smaller sizes) and
its filters, the timeline by day, week and month, the analytics page for every period and a year,
each analytics JSON panel, the listens API first and deep page, the collection, playlists and jobs.
Beside each page, in the same run, its ratio to the journal's first page (the page-1 baseline) and,
for the pages whose figures used to be counted from the listens, the time of that direct query
("before": COUNT(*) with OFFSET, GROUP BY over every listen) on the same data.

During an import: a second upload of `--during` plays runs while a loop asks journal page 1, the
analytics page (12 months), the timeline by month and the listens API; its p99 against the same
loop on the idle app just after (target: at most 2x idle). One p99 is a few dozen requests, so
this is done `--rounds` times (3; each round uploads plays of another seed, so the history grows)
and the median round's ratio is the figure, every round's ratio beside it.

    .venv/bin/python bench/bench_million.py                       # 100,000 listens, both databases, ~7 min
    .venv/bin/python bench/bench_million.py --listens 1000000 --database sqlite   # the issue's size
    .venv/bin/python bench/bench_million.py --listens 10000000 --database postgresql

Prints a table per database and writes bench/results/million.json (million-1m-sqlite.json for
`--listens 1000000 --database sqlite`, and so on; load average before and after:
the machine may be shared, so read ratios, measured in the same run, rather than milliseconds).
Targets (issue 16): every page at most 200 ms warm and 500 ms first (`*_ok` per database), page p99
during an import at most 2x idle, and the process's peak RSS (VmHWM, read just after the first upload: the
app, the job and the test client holding the request body) at most 250 MB (`peak_rss_ok`; a second
database in the same run reports the peak of both, so measure it with `--database` alone).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import results as bench_results  # bench/results.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = Path(tempfile.gettempdir()) / "sillon-bench-million"
ARTISTS, ALBUMS, TRACKS = 8_000, 20_000, 120_000
YEARS = 10
SEED = 16
DEFAULT_LISTENS, DEFAULT_DURING = 100_000, 100_000
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
WARM_TARGET_MS, FIRST_TARGET_MS, DURING_TARGET, PEAK_RSS_TARGET_MB = 200, 500, 2.0, 250
TOKEN = "bench-million-" + uuid.uuid4().hex  # the upload is a script's: Authorization, no CSRF
END = 1_764_547_200  # 2025-12-01 UTC: the histories end there, whatever the day the bench runs


def generate(listens, seed, path):
    """The CSV (cached by size and seed): distinct seconds, so every row is one listen."""
    if path.exists():
        return path
    rng = random.Random(seed)
    first = END - YEARS * 365 * 86400
    step = (END - first) // listens
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write("uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n")
        for i in range(listens):
            ts = first + i * step + rng.randrange(step)
            track = min(int(TRACKS * rng.random() ** 4), TRACKS - 1)
            album = track // (TRACKS // ALBUMS)
            artist = album * ARTISTS // ALBUMS
            out.write(f"{ts},x,Artist {artist},,Album {album},,Track {track},\n")
    tmp.replace(path)
    return path


def build_app(instance, database_url):
    from flask_migrate import upgrade

    from app import create_app

    environ = {"SILLON_CONFIG": str(instance / "absent.json"), "INSTANCE_PATH": str(instance),
               "TIMEZONE": "Europe/Paris", "API_TOKEN": TOKEN}
    if database_url:
        environ["DATABASE_URL"] = database_url
    app = create_app({"ENVIRON": environ})
    with app.app_context():
        upgrade()
    return app


def start_upload(client, path):
    with open(path, "rb") as handle:
        answer = client.post("/api/v1/imports", content_type="multipart/form-data",
                             headers={"Authorization": f"Bearer {TOKEN}"}, data={"files": [(handle, path.name)]})
    if answer.status_code != 202:
        raise RuntimeError(f"POST /api/v1/imports: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
    return answer.get_json()["job_id"]


def finish(app, job_id):
    app.extensions["sillon"]["runner"].join(job_id, 3600)
    from modules.db import db
    from modules.models import Job
    with app.app_context():
        job = db.session.get(Job, job_id)
        if job.status != "completed":
            raise RuntimeError(f"import {job_id} ended {job.status}: {job.message}")
        return job.result


def peak_rss_mb():
    """This process's peak RSS so far (VmHWM): the app, its job threads and the test client."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def timed(client, url):
    started = time.perf_counter()
    answer = client.get(url)
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url}: {answer.status_code}")
    return seconds


def pages(total, artist):
    deep = 5000 if total >= 1_000_000 else max(2, int(total / 100 * 0.9))
    api_deep = 5000 if total >= 1_000_000 else max(2, int(total / 100 * 0.9))
    year = time.gmtime(END - 400 * 86400).tm_year
    found = [("/journal", "/journal"), (f"/journal?page={deep}", f"/journal page {deep}"),
             (f"/journal?artist={artist}", "/journal?artist"),
             (f"/journal?artist={artist}&page=20", "/journal?artist page 20"),
             (f"/journal?from={year}-03-01&to={year}-03-31", "/journal?from&to"),
             (f"/journal?from={year}-03-01&to={year}-10-31&page=40", "/journal?from&to page 40")]
    found += [(f"/timeline?unit={u}", f"/timeline {u}") for u in ("day", "week", "month")]
    found += [(f"/analytics?period={p}", f"/analytics {p}") for p in ("all", "12m", "30d", "7d", str(year))]
    found += [(f"/api/v1/analytics/{p}?period=all", f"/api/v1/analytics/{p}") for p in (
        "top-artists", "top-albums", "top-tracks", "heatmap", "streaks", "discoveries", "shelf-over-time")]
    found += [(f"/api/v1/analytics/top-tracks?period={year}", f"/api/v1/analytics/top-tracks {year}")]
    found += [("/api/v1/listens?page=1&page_size=100", "/api/v1/listens"),
              (f"/api/v1/listens?page={api_deep}&page_size=100", f"/api/v1/listens page {api_deep}"),
              ("/collection", "/collection"), ("/playlists", "/playlists"), ("/jobs", "/jobs")]
    return found


def before_queries(app, total):
    """The direct queries the pages used to run, on the same data: (label, seconds)."""
    import sqlalchemy as sa

    from modules.db import db
    from modules.models import Listen
    deep = 5000 if total >= 1_000_000 else max(2, int(total / 100 * 0.9))
    newest = (Listen.played_at.desc(), Listen.id.desc())
    queries = {
        "/journal": [sa.select(sa.func.count()).select_from(Listen)],
        f"/journal page {deep}": [sa.select(sa.func.count()).select_from(Listen),
                                  sa.select(Listen.id).order_by(*newest).limit(100).offset((deep - 1) * 100)],
        f"/api/v1/listens page {deep}": [sa.select(sa.func.count()).select_from(Listen),
                                         sa.select(Listen.id).order_by(*newest).limit(100).offset((deep - 1) * 100)],
        "/timeline day": [sa.select((Listen.played_at // 86400).label("d"), sa.func.count()).group_by("d")],
        "/api/v1/analytics/top-tracks": [sa.select(Listen.track_id, sa.func.count().label("n"))
                                         .group_by(Listen.track_id).order_by(sa.desc("n")).limit(10)],
        "/api/v1/analytics/heatmap": [sa.select((Listen.played_at // 3600).label("b"), sa.func.count())
                                      .group_by("b")],
        "/api/v1/analytics/discoveries": [sa.select(sa.func.min(Listen.played_at)).group_by(Listen.artist_id)],
    }
    out = {}
    with app.app_context():
        for label, statements in queries.items():
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                for statement in statements:
                    db.session.execute(statement).all()
                runs.append(time.perf_counter() - started)
                db.session.rollback()
            out[label] = statistics.median(runs)
    return out


def loop_pages(client, stop_when, limit=None):
    urls = ["/journal", "/analytics?period=12m", "/timeline?unit=month", "/api/v1/listens?page=1&page_size=100"]
    times = []
    while not stop_when() and (limit is None or len(times) < limit):
        times.append(timed(client, urls[len(times) % len(urls)]))
    return times


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else None


def run(database, listens, during, csv, during_csvs):
    import sqlalchemy as sa

    instance = Path(tempfile.mkdtemp(prefix=f"bench-million-{database}-"))
    url, admin, name = None, None, None
    if database == "postgresql":
        name = f"sillon_bench_million_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = f"{PG_SERVER}/{name}"
    try:
        app = build_app(instance, url)
        client = app.test_client()
        client.get("/jobs")
        started = time.perf_counter()
        result = finish(app, start_upload(client, csv))
        import_s = time.perf_counter() - started
        print(f"[{database}] {listens:,} listens uploaded in {import_s:.1f} s ({result})", flush=True)
        from modules.db import db
        with app.app_context():
            if database == "postgresql":
                with db.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            total = db.session.execute(sa.text("SELECT count(*) FROM listens")).scalar()
        peak = peak_rss_mb()  # the first run in this process: its peak is this upload's
        rows, figures = [], {"listens": total, "import_s": round(import_s, 1), "peak_rss_mb": round(peak, 1),
                             "peak_rss_ok": peak <= PEAK_RSS_TARGET_MB}
        firsts = {}
        for url_, label in pages(total, "Artist 0"):
            firsts[label] = (url_, timed(client, url_))
        for label, (url_, first) in firsts.items():
            warm = statistics.median(timed(client, url_) for _ in range(3))
            firsts[label] = (url_, first, warm)
        base = firsts["/journal"][2]
        before = before_queries(app, total)
        worst_first = worst_warm = 0
        for label, (_url, first, warm) in firsts.items():
            worst_first, worst_warm = max(worst_first, first), max(worst_warm, warm)
            was = before.get(label)
            rows.append([label, f"{first * 1000:.0f} ms", f"{warm * 1000:.0f} ms", f"{warm / base:.1f}x",
                         f"{was * 1000:.0f} ms" if was is not None else ""])
            figures.setdefault("pages", {})[label] = {"first_ms": round(first * 1000, 1), "warm_ms": round(warm * 1000, 1),
                                                     "ratio_to_journal_page_1": round(warm / base, 2),
                                                     "before_query_ms": round(was * 1000, 1) if was else None}
        figures["warm_ok"] = worst_warm * 1000 <= WARM_TARGET_MS
        figures["first_ok"] = worst_first * 1000 <= FIRST_TARGET_MS
        figures["worst_warm_ms"], figures["worst_first_ms"] = round(worst_warm * 1000, 1), round(worst_first * 1000, 1)

        # During an import, then idle, the same loop of pages: a round per file of later plays.
        runner = app.extensions["sillon"]["runner"]
        rounds = []
        for n, during_csv in enumerate(during_csvs, 1):
            job = start_upload(client, during_csv)
            done = threading.Event()
            threading.Thread(target=lambda job=job, done=done: (runner.join(job, 3600), done.set()), daemon=True).start()
            busy = loop_pages(client, done.is_set)
            finish(app, job)
            idle = loop_pages(client, lambda: False, limit=max(40, len(busy)))
            ratio = p99(busy) / p99(idle) if busy else None
            rounds.append({"requests_during": len(busy), "p99_during_ms": round(p99(busy) * 1000, 1) if busy else None,
                           "p99_idle_ms": round(p99(idle) * 1000, 1), "ratio": round(ratio, 2) if ratio else None})
            print(f"[{database}] round {n}: p99 {rounds[-1]['p99_during_ms']} ms during, "
                  f"{rounds[-1]['p99_idle_ms']} ms idle: {rounds[-1]['ratio']}x", flush=True)
        measured = sorted((r for r in rounds if r["ratio"] is not None), key=lambda r: r["ratio"])
        middle = measured[len(measured) // 2] if measured else None
        figures["during"] = {**(middle or {}), "rounds": rounds,
                             "during_import_ok": middle is not None and middle["ratio"] <= DURING_TARGET}
        rows.append([f"p99 of 4 pages during an import of {during:,} (idle), median of {len(rounds)} rounds",
                     f"{middle['p99_during_ms']:.0f} ms" if middle else "-",
                     f"({middle['p99_idle_ms']:.0f} ms)" if middle else "",
                     f"{middle['ratio']:.2f}x idle" if middle else "-",
                     "rounds: " + ", ".join(f"{r['ratio']}x" for r in rounds)])
        rows.append([f"peak RSS of the process after the upload of {listens:,}", f"{peak:.0f} MB", "",
                     f"target {PEAK_RSS_TARGET_MB} MB", ""])
        with app.app_context():
            db.engine.dispose()
        return figures, rows
    finally:
        shutil.rmtree(instance, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listens", type=int, default=DEFAULT_LISTENS)
    parser.add_argument("--during", type=int, default=DEFAULT_DURING, help="plays of the import pages are timed during")
    parser.add_argument("--rounds", type=int, default=3, help="imports pages are timed during (median ratio)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seed", type=int, default=SEED)
    opts = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    csv = generate(opts.listens, opts.seed, CACHE / f"history-{opts.listens}-{opts.seed}.csv")
    # The imports timed against: other plays of the same catalogue (another seed each): none is a duplicate.
    during_csvs = [generate(opts.during, opts.seed + n, CACHE / f"during-{opts.during}-{opts.seed + n}.csv")
                   for n in range(1, opts.rounds + 1)]
    databases = ("sqlite", "postgresql") if opts.database == "both" else (opts.database,)
    figures, tables = {"listens": opts.listens, "during": opts.during}, []
    for database in databases:
        found, rows = run(database, opts.listens, opts.during, csv, during_csvs)
        figures[database] = found
        title = f"{database}: {found['listens']:,} listens (uploaded in {found['import_s']} s)"
        tables.append(bench_results.table(("page", "first", "warm", "warm / journal page 1",
                                           "before: direct query over listens"), rows, title))
        print(f"\n{title}")
        print(f"{'page':<44} {'first':>9} {'warm':>9} {'ratio':>12} {'before':>10}")
        for row in rows:
            print(f"{row[0]:<44} {row[1]:>9} {row[2]:>9} {row[3]:>12} {row[4]:>10}")
    figures["loadavg_before"], figures["loadavg_after"] = load_before, [round(x, 2) for x in os.getloadavg()]
    notes = [f"Load average before {load_before}, after {figures['loadavg_after']} (2 shared cores): the "
             "ratios, measured in the same run, carry over; the milliseconds depend on the load.",
             "\"before\": the direct query the page used to run over the listens, timed on the same data.",
             "Server time in process (Flask test client), one process, as one gunicorn gevent worker."]
    if opts.listens < 1_000_000:
        notes.append(f"Reduced run ({opts.listens:,} listens); the issue's size: --listens 1000000.")
    # `make bench` (100,000, both databases) writes million.json; the sizes a file each.
    name = "million" if opts.listens < 1_000_000 else f"million-{opts.listens // 1_000_000}m-{opts.database}"
    bench_results.write_results(name, figures, tables, notes)


if __name__ == "__main__":
    main()
