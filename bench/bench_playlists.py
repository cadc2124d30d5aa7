"""Playlist generators and exports on a large history.

A migrated SQLite database (or --database-url) gets --listens listens (default 300,000: 2,000 artists,
24,000 tracks, six years; two albums of each artist never played) and 3,000 owned records, a third
of them never played. Each generator
runs ROUNDS times, interleaved with a baseline measured the same way in the same run: one grouped
pass over every listen (`SELECT track_id, count(*) FROM listens GROUP BY track_id`), the least any
ranking of tracks has to read. Targets: each generator at most RATIO_TARGET x that pass.
Exports of a 1,000-entry playlist (M3U, XSPF, CSV) are timed against json.dumps of the same entries.

Run: .venv/bin/python bench/bench_playlists.py [--listens N] [--database-url URL]
     (writes bench/results/playlists.json, or playlists-postgresql.json on PostgreSQL)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py
import sqlalchemy as sa  # noqa: E402

from app import create_app  # noqa: E402
from modules import playlists  # noqa: E402
from modules.db import db  # noqa: E402
from modules.models import Album, Artist, CollectionItem, Listen, Track  # noqa: E402
from modules.playlists import formats as playlist_formats  # noqa: E402

ROUNDS = 5
RATIO_TARGET = 3.0
DAY = 86400
SEARCHES = ["track 1", "artist 19", "zzz"]
GENERATORS = [("this_month_top", {"count": 100}), ("this_month_top", {"count": 100, "period": "30days"}),
              ("forgotten_favourites", {"count": 200, "min_plays": 5}), ("unplayed_records", {"count": 500})]


def build(listens, seed=1):
    """Hand-made history written with bulk inserts; returns the 'now' the history ends at."""
    rng = random.Random(seed)
    now = int(time.time())
    conn = db.session.connection()
    conn.execute(sa.insert(Artist), [{"id": a, "name": f"Artist {a}", "name_key": f"artist {a}", "created_at": 0}
                                     for a in range(1, 2001)])
    conn.execute(sa.insert(Album), [{"id": b, "artist_id": (b - 1) // 8 + 1, "title": f"Album {b}",
                                     "title_key": f"album {b}", "created_at": 0} for b in range(1, 16001)])
    conn.execute(sa.insert(Track), [{"id": t, "artist_id": (t - 1) // 12 + 1, "title": f"Track {t}",
                                     "title_key": f"track {t}"} for t in range(1, 24001)])
    rows, seen = [], set()
    while len(rows) < listens:
        track = int(24000 * rng.random() ** 3)  # a few tracks played a lot, most rarely
        track = (track * 7919) % 24000 + 1
        played = now - rng.randrange(6 * 365 * DAY)
        if (played, track) in seen:
            continue
        seen.add((played, track))
        artist = (track - 1) // 12 + 1
        rows.append({"played_at": played, "artist_key": f"artist {artist}", "title_key": f"track {track}",
                     "artist_id": artist, "album_id": (artist - 1) * 8 + rng.randrange(6) + 1 if track % 3 else None,
                     "track_id": track, "source": "bench"})
        if len(rows) % 50_000 == 0:
            conn.execute(sa.insert(Listen), rows[-50_000:])
    if len(rows) % 50_000:
        conn.execute(sa.insert(Listen), rows[len(rows) - len(rows) % 50_000:])
    played_albums = {r["album_id"] for r in rows if r["album_id"]}
    unplayed = [b for b in range(1, 16001) if b not in played_albums]
    chosen = rng.sample(sorted(played_albums), min(2000, len(played_albums))) + unplayed[:1000]
    conn.execute(sa.insert(CollectionItem), [
        {"instance_id": i + 1, "release_id": i + 1, "album_id": b, "title": f"Album {b}",
         "artist": f"Artist {(b - 1) // 8 + 1}", "year": 1960 + b % 60,
         "date_added": f"20{10 + b % 15}-01-01T00:00:00-08:00", "source": "bench", "created_at": 0}
        for i, b in enumerate(chosen)])
    db.session.commit()
    return now, len(unplayed[:1000])


def timed(work):
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def baseline():
    return db.session.execute(sa.select(Listen.track_id, sa.func.count()).group_by(Listen.track_id)).all()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listens", type=int, default=300_000)
    parser.add_argument("--database-url", default=None, help="an empty migrated database (default: SQLite in a temp folder)")
    args = parser.parse_args(argv)

    from flask_migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        environ = {"INSTANCE_PATH": tmp, "SILLON_CONFIG": os.path.join(tmp, "none.json"), "TRACKER_AUTOSTART": "false"}
        if args.database_url:
            environ["DATABASE_URL"] = args.database_url
        app = create_app({"ENVIRON": environ})
        with app.app_context():
            upgrade()
            built, (now, unplayed) = timed(lambda: build(args.listens))
            print(f"history: {args.listens:,} listens, 3,000 records ({unplayed:,} never played), built in {built:.1f} s")
            base_times, gen_times = [], {f"{k} {p}": [] for k, p in GENERATORS}
            sizes = {}
            for _ in range(ROUNDS):
                base_times.append(timed(baseline)[0])
                for kind, params in GENERATORS:
                    seconds, (_name, items, _p) = timed(lambda k=kind, p=params: playlists.generate(k, p, now=now))
                    gen_times[f"{kind} {params}"].append(seconds)
                    sizes[f"{kind} {params}"] = len(items)
                db.session.rollback()
            search_times = [timed(lambda: [playlists.store.search_tracks(q) for q in SEARCHES])[0] / len(SEARCHES)
                            for _ in range(ROUNDS)]
            base = statistics.median(base_times)
            items = [{"artist": f"Artist {i} <&>", "title": f"Track {i} \"q\"", "album": f"Album {i}", "duration": 200 + i}
                     for i in range(1000)]
            export_base = statistics.median(timed(lambda: json.dumps(items))[0] for _ in range(ROUNDS))
            exports = {name: statistics.median(timed(lambda f=f: f(items))[0] for _ in range(ROUNDS))
                       for name, f in (("m3u", lambda i: playlist_formats.m3u("Bench", i)),
                                       ("xspf", lambda i: playlist_formats.xspf("Bench", i, time.time())),
                                       ("csv", playlist_formats.csv_text))}
            db.engine.dispose()
            engine = db.engine.dialect.name

    results = {"listens": args.listens, "database": engine, "rounds": ROUNDS, "load_average": os.getloadavg(),
               "baseline_group_by_seconds": round(base, 4),
               "generators": {name: {"median_seconds": round(statistics.median(t), 4),
                                     "ratio_to_baseline": round(statistics.median(t) / base, 2),
                                     "items": sizes[name]} for name, t in gen_times.items()},
               "track_search": {"median_seconds": round(statistics.median(search_times), 4),
                                "ratio_to_baseline": round(statistics.median(search_times) / base, 2)},
               "exports_1000_items": {"json_dumps_seconds": round(export_base, 5),
                                      **{name: {"median_seconds": round(s, 5), "ratio_to_json": round(s / export_base, 1)}
                                         for name, s in exports.items()}}}
    results["targets"] = {"generators_ratio_ok": all(g["ratio_to_baseline"] <= RATIO_TARGET
                                                     for g in results["generators"].values())}

    print(f"\nbaseline: one grouped pass over {args.listens:,} listens ({engine}): {base * 1000:.1f} ms (median of {ROUNDS})")
    print(f"{'generator':<62} {'median ms':>10} {'x base':>7} {'items':>6}")
    for name, g in results["generators"].items():
        print(f"{name:<62} {g['median_seconds'] * 1000:>10.1f} {g['ratio_to_baseline']:>7.2f} {g['items']:>6}")
    search = results["track_search"]
    print(f"{'track search (the add-a-track box)':<62} {search['median_seconds'] * 1000:>10.1f} "
          f"{search['ratio_to_baseline']:>7.2f}")
    print(f"target: each generator at most {RATIO_TARGET}x the baseline -> "
          f"{'ok' if results['targets']['generators_ratio_ok'] else 'MISSED'}")
    print(f"\nexports of 1,000 entries (json.dumps {export_base * 1000:.2f} ms):")
    for name, e in results["exports_1000_items"].items():
        if name != "json_dumps_seconds":
            print(f"  {name:<5} {e['median_seconds'] * 1000:8.2f} ms  {e['ratio_to_json']:>6.1f}x json.dumps")
    print(f"load average: {results['load_average']}")
    name = "playlists" if engine == "sqlite" else f"playlists-{engine}"
    bench_results.write_results(name, results, result_tables(results))
    return 0


LABELS = {"this_month_top {'count': 100}": "this month's top, 100 tracks",
          "this_month_top {'count': 100, 'period': '30days'}": "top of the last 30 days, 100 tracks",
          "forgotten_favourites {'count': 200, 'min_plays': 5}": "forgotten favourites, 200 tracks (at least 5 plays)",
          "unplayed_records {'count': 500}": "records never played, 500"}


def result_tables(results):
    """The table docs/performance.md shows for this run (one database per run)."""
    def ms(seconds):
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"

    rows = [[f"baseline: grouped pass over {results['listens']:,} listens", ms(results["baseline_group_by_seconds"]), ""]]
    for name, g in results["generators"].items():
        rows.append([LABELS.get(name, name), f"{ms(g['median_seconds'])} ({g['ratio_to_baseline']:.2f}x)",
                     f"at most {RATIO_TARGET:g}x"])
    search = results["track_search"]
    rows.append([f"add-a-track search (average of {len(SEARCHES)} queries)",
                 f"{ms(search['median_seconds'])} ({search['ratio_to_baseline']:.2f}x)", ""])
    exports = results["exports_1000_items"]
    rows.append(["M3U / XSPF / CSV of 1,000 entries",
                 " / ".join(f"{exports[f]['median_seconds'] * 1000:.1f}" for f in ("m3u", "xspf", "csv")) + " ms", ""])
    database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(results["database"], results["database"])
    return [bench_results.table(["measure", database, "target"], rows)]


if __name__ == "__main__":
    sys.exit(main())
