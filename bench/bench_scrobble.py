"""What a scrobble costs: Sillon's ListenBrainz API (/1/submit-listens) with 100,000 listens stored.

1. Server time, in process (Flask's test client, so socket time does not drown it), on a copy of a
   migrated SQLite database (or `--database-url`, an empty PostgreSQL database) holding 100,000
   listens: an `import` of 1,000 new listens (target: at most 1 s), and `single` listens (target:
   p95 at most 50 ms). Each is also given as a ratio to a bare batch insert of the same listen rows
   (artists and tracks already there: one INSERT of the rows in one transaction), measured in the
   same run, interleaved.
2. Under load, on a real gunicorn (the shipped gunicorn.conf.py: 2 gevent workers, SQLite): 20
   `single` submissions a second for a minute while uploads of Last.fm CSV files run one after the
   other. Target: none refused, none lost (every listen sent is in the database at the end).

Run: .venv/bin/python bench/bench_scrobble.py [--seconds 60] [--database-url URL]
(writes bench/results/scrobble.json)
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results import table, write_results  # noqa: E402 - bench/results.py

STORED = 100_000
IMPORT_SIZE = 1000
IMPORT_ROUNDS = 7
SINGLES = 300
RATE = 20  # submissions a second under load
TOKEN = "fake-bench-scrobble-token-0123456789"
AUTH = {"Authorization": f"Token {TOKEN}"}
START = 1_500_000_000


def environ(instance, **extra):
    return {"SILLON_CONFIG": str(instance / "absent.json"), "INSTANCE_PATH": str(instance), "API_TOKEN": TOKEN,
            **extra}


def migrated(instance, database_url=None):
    from flask_migrate import upgrade

    from app import create_app

    extra = {"DATABASE_URL": database_url} if database_url else {}
    app = create_app({"ENVIRON": environ(instance, **extra)})
    with app.app_context():
        upgrade()
    return app


def fill(app, n):
    """n listens over the years before START, through write_plays like any import."""
    from modules.db import db
    from modules.importers.listens import IdCache, write_plays
    from modules.importers.scrobbles import Scrobble

    cache = IdCache()
    with app.app_context():
        for start in range(0, n, 2000):
            plays = [Scrobble(START - 10 * n + 10 * i, f"Stored Artist {i % 1500}", f"Stored Song {i % 20000}",
                              f"Stored Album {i % 3000}") for i in range(start, min(n, start + 2000))]
            with db.engine.begin() as conn:
                write_plays(conn, plays, "lastfm", cache=cache)
        db.session.remove()


def listen(t, i, prefix):
    return {"listened_at": t, "track_metadata": {
        "artist_name": f"{prefix} Artist {i % 50}", "track_name": f"{prefix} Song {i}", "release_name": f"{prefix} Album {i % 80}",
        "additional_info": {"duration_ms": 200_000 + i % 100_000, "submission_client": "bench",
                            "recording_mbid": f"00000000-0000-4000-8000-{i:012d}"}}}


def bare_insert(app, rows_needed, offset):
    """The baseline: the same number of listen rows (artist and track ids known) in one INSERT."""
    import sqlalchemy as sa

    from modules.db import db, insert_ignoring_conflicts
    from modules.models import Listen

    t = Listen.__table__
    with app.app_context():
        artist_id, track_id = db.session.execute(sa.select(Listen.artist_id, Listen.track_id).limit(1)).one()
        db.session.remove()
        rows = [{"played_at": START + offset + i, "artist_key": f"bare {offset}", "title_key": f"bare {i}",
                 "artist_id": artist_id, "album_id": None, "track_id": track_id, "source": "bench",
                 "job_id": None, "additional_info": {"duration_ms": 200_000}} for i in range(rows_needed)]
        began = time.perf_counter()
        with db.engine.begin() as conn:
            insert_ignoring_conflicts(conn, t, rows, returning=[t.c.id])
        return time.perf_counter() - began


def server_time(app):
    client = app.test_client()
    imports, bare_imports = [], []
    base = START + 1000
    for r in range(IMPORT_ROUNDS):
        payload = [listen(base + r * 10 * IMPORT_SIZE + 10 * i, r * IMPORT_SIZE + i, "Import") for i in range(IMPORT_SIZE)]
        body = json.dumps({"listen_type": "import", "payload": payload})
        began = time.perf_counter()
        response = client.post("/1/submit-listens", data=body, headers=AUTH)
        imports.append(time.perf_counter() - began)
        assert response.status_code == 200, response.get_data(as_text=True)
        bare_imports.append(bare_insert(app, IMPORT_SIZE, 10_000_000 + r * IMPORT_SIZE))
    singles, bare_singles = [], []
    base = START + 100_000_000
    for i in range(SINGLES):
        body = json.dumps({"listen_type": "single", "payload": [listen(base + 60 * i, i, "Single")]})
        began = time.perf_counter()
        response = client.post("/1/submit-listens", data=body, headers=AUTH)
        singles.append(time.perf_counter() - began)
        assert response.status_code == 200
        bare_singles.append(bare_insert(app, 1, 20_000_000 + i))
    p95 = statistics.quantiles(singles, n=20)[18]
    bare_p95 = statistics.quantiles(bare_singles, n=20)[18]
    return {
        "import_1000": {"median_s": round(statistics.median(imports), 4), "max_s": round(max(imports), 4),
                        "bare_insert_median_s": round(statistics.median(bare_imports), 4),
                        "ratio_to_bare_insert": round(statistics.median(imports) / statistics.median(bare_imports), 2),
                        "target_s": 1.0, "target_met": max(imports) <= 1.0},
        "single": {"p50_ms": round(statistics.median(singles) * 1000, 2), "p95_ms": round(p95 * 1000, 2),
                   "bare_insert_p95_ms": round(bare_p95 * 1000, 2), "ratio_to_bare_insert_p95": round(p95 / bare_p95, 2),
                   "target_ms": 50, "target_met": p95 <= 0.050},
    }


def csv_file(first, rows):
    out = io.StringIO()
    for i in range(rows):
        moment = time.strftime("%d %b %Y %H:%M", time.gmtime(first + 60 * i))
        out.write(f"Upload Artist {i % 200},Upload Album {i % 400},Upload Song {i},{moment}\n")
    return out.getvalue().encode()


def under_load(instance, seconds):
    """20 singles a second against a real gunicorn while uploads run; every answer and every listen checked."""
    import requests

    from tests.conftest import Server

    class PatientServer(Server):
        def wait_ready(self, timeout=180):  # two workers booting on a busy machine
            return super().wait_ready(timeout)

    server = PatientServer(instance, workers=2, env={"API_TOKEN": TOKEN})
    stop = threading.Event()
    uploads = {"started": 0, "rows": 0}

    def keep_uploading():
        n = 0
        while not stop.is_set():
            data = csv_file(START - 400_000_000 + n * 40_000 * 60, 40_000)
            response = requests.post(f"{server.url}/api/v1/imports", files={"files": (f"up{n}.csv", data)}, timeout=120)
            if response.status_code == 202:
                uploads["started"] += 1
                uploads["rows"] += 40_000
                job = response.json()["job_id"]
                while not stop.is_set():
                    status = requests.get(f"{server.url}/api/v1/jobs/{job}", timeout=60).json()["status"]
                    if status not in ("queued", "running"):
                        break
                    time.sleep(0.5)
            n += 1

    uploader = threading.Thread(target=keep_uploading, daemon=True)
    uploader.start()
    time.sleep(2)  # the first upload is running
    sent, refused, latencies, lock = 0, [], [], threading.Lock()
    base = START + 200_000_000
    session_local = threading.local()

    def send(i):
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        body = json.dumps({"listen_type": "single", "payload": [listen(base + 30 * i, i, "Load")]})
        began = time.perf_counter()
        try:
            response = session.post(f"{server.url}/1/submit-listens", data=body, headers=AUTH, timeout=60)
            ok = response.status_code == 200
            why = None if ok else f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            ok, why = False, str(exc)
        with lock:
            latencies.append(time.perf_counter() - began)
            if not ok:
                refused.append(why)

    from concurrent.futures import ThreadPoolExecutor

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(seconds * RATE):
            target = began + i / RATE  # paced: 20 starts a second, whatever the answers take
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(send, i)
            sent += 1
    took = time.monotonic() - began
    stop.set()
    uploader.join(180)
    server.stop()
    import sqlalchemy as sa

    from app import create_app

    app = create_app({"ENVIRON": environ(instance)})
    with app.app_context():
        from modules.db import db
        from modules.models import Listen

        stored = db.session.execute(sa.select(sa.func.count()).select_from(Listen)
                                    .where(Listen.source == "listenbrainz_api", Listen.played_at >= base)).scalar()
    lost = sent - stored
    p95 = statistics.quantiles(latencies, n=20)[18]
    return {"seconds": round(took, 1), "sent": sent, "refused": len(refused), "refusals_sample": refused[:5],
            "stored": stored, "lost": lost, "uploads_started": uploads["started"], "upload_rows": uploads["rows"],
            "latency_p50_ms": round(statistics.median(latencies) * 1000, 1), "latency_p95_ms": round(p95 * 1000, 1),
            "none_refused_ok": not refused, "none_lost_ok": lost == 0}


def result_tables(timing, load, database):
    imp, single = timing["import_1000"], timing["single"]
    server = table(["measure", database, "ratio to a bare insert", "target"], [
        ["`import` of 1,000 listens, median (max)", f"{imp['median_s']:.2f} s ({imp['max_s']:.2f} s)",
         f"{imp['ratio_to_bare_insert']}x", "at most 1 s"],
        ["`single`, p95", f"{single['p95_ms']} ms", f"{single['ratio_to_bare_insert_p95']}x", "at most 50 ms"],
    ], title=f"Server time with {STORED:,} listens stored")
    under = table(["sent", "refused", "lost", "latency p50", "latency p95", "upload rows meanwhile"], [
        [f"{load['sent']:,} in {load['seconds']} s", load["refused"], load["lost"], f"{load['latency_p50_ms']} ms",
         f"{load['latency_p95_ms']} ms", f"{load['upload_rows']:,}"],
    ], title=f"{RATE} singles a second on gunicorn (2 gevent workers, SQLite) while uploads run")
    return [server, under]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="length of the load part (default 60)")
    parser.add_argument("--database-url", help="an empty PostgreSQL database for the server-time part")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-scrobble-"))
    try:
        instance = work / "instance"
        app = migrated(instance, args.database_url)
        began = time.monotonic()
        fill(app, STORED)
        print(f"{STORED:,} listens stored in {time.monotonic() - began:.1f} s", flush=True)
        timing = server_time(app)
        print(json.dumps(timing, indent=2), flush=True)
        load_instance = work / "load"  # the load part always runs on the shipped default, SQLite
        if args.database_url:
            fill(migrated(load_instance), STORED)
        else:
            with app.app_context():
                from modules.db import db
                db.engine.dispose()  # the copy must hold everything (no open WAL)
            shutil.copytree(instance, load_instance)
        load = under_load(load_instance, args.seconds)
        print(json.dumps(load, indent=2), flush=True)
        database = "postgresql" if args.database_url else "sqlite"
        write_results("scrobble" if database == "sqlite" else "scrobble-postgresql",
                      {"database": database, "stored_before": STORED, "server_time": timing, "under_load": load},
                      result_tables(timing, load, database))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
