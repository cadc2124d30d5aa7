"""Every analytics panel on 1,000,000 listens, against `SELECT count(*) FROM listens` in the same run.

The data (deterministic, --seed): 5,000 artists, 25,000 albums (5 an artist), 125,000 tracks (5 an
album), LISTENS listens on distinct seconds over the ten years before now (so the rolling periods
have listens), tracks drawn with a Zipf-like popularity, 5 % of
the listens without an album; 2,000 owned copies of 1,800 albums (a few twice), chosen at random,
so most of them sit in the long tail and many are never played. Everything is written with
executemany in batches of 20,000 into a freshly migrated database (a temporary SQLite file, or
--database-url, for instance a PostgreSQL database you created for it), then ANALYZEd.

Each panel is the function the page and the API call (modules/web/analytics.py), in an app context
with TIMEZONE=Europe/Paris; the period panels are timed for `all` and `12m`. Each measure is the
median of --repeat runs (after one warm-up); the ratio is that median over the median of
`SELECT count(*) FROM listens` measured the same way in the same run. With --compare-index the
panels are timed again after dropping ix_listens_album_played (migration 0005), to show what it
buys; the index is put back afterwards.

    .venv/bin/python bench/bench_analytics.py                      # 1,000,000 listens, SQLite
    .venv/bin/python bench/bench_analytics.py --compare-index
    .venv/bin/python bench/bench_analytics.py --listens 200000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/sillon_bench

Prints a table and writes bench/results/analytics.json (analytics-postgresql.json on PostgreSQL; with the load
average before and after);
never fails on a timing.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import results as bench_results  # noqa: E402 - bench/results.py

ARTISTS, ALBUMS_PER_ARTIST, TRACKS_PER_ALBUM = 5_000, 5, 5
OWNED_ALBUMS, OWNED_COPIES = 1_800, 2_000
BATCH = 20_000
YEARS = 10
INDEX = "ix_listens_album_played"
BASELINE = "baseline: SELECT count(*) FROM listens"


def build_app(instance, database_url, tz):
    from app import create_app

    environ = {"SILLON_CONFIG": str(instance / "absent.json"), "INSTANCE_PATH": str(instance), "TIMEZONE": tz}
    if database_url:
        environ["DATABASE_URL"] = database_url
    app = create_app({"ENVIRON": environ})
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    return app


def generate(app, listens, seed):
    """Write the catalogue, the listens and the shelf; returns counts."""
    import sqlalchemy as sa

    from modules.db import db
    from modules.models import Album, Artist, CollectionItem, Listen, Track

    rng = random.Random(seed)
    albums = ARTISTS * ALBUMS_PER_ARTIST
    tracks = albums * TRACKS_PER_ALBUM
    now = int(time.time())
    first = now - YEARS * 365 * 86400
    started = time.perf_counter()
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.insert(Artist), [{"id": a + 1, "name": f"Artist {a}", "name_key": f"artist {a}", "created_at": 0}
                                         for a in range(ARTISTS)])
        conn.execute(sa.insert(Album), [{"id": b + 1, "artist_id": b // ALBUMS_PER_ARTIST + 1, "title": f"Album {b}",
                                         "title_key": f"album {b}", "created_at": 0} for b in range(albums)])
        for lo in range(0, tracks, BATCH):
            conn.execute(sa.insert(Track), [{"id": t + 1, "artist_id": t // (ALBUMS_PER_ARTIST * TRACKS_PER_ALBUM) + 1,
                                             "title": f"Track {t}", "title_key": f"track {t}"}
                                            for t in range(lo, min(lo + BATCH, tracks))])
        # Distinct seconds, so no two listens collide on the unique key.
        seconds = sorted(rng.sample(range(first, now), listens))
        rows = []
        for played_at in seconds:
            track = min(int(tracks * rng.random() ** 4), tracks - 1)
            album = track // TRACKS_PER_ALBUM
            rows.append({"played_at": played_at, "artist_key": f"artist {album // ALBUMS_PER_ARTIST}",
                         "title_key": f"track {track}", "artist_id": album // ALBUMS_PER_ARTIST + 1,
                         "album_id": None if rng.random() < 0.05 else album + 1, "track_id": track + 1,
                         "source": "bench"})
            if len(rows) == BATCH:
                conn.execute(sa.insert(Listen), rows)
                rows = []
        if rows:
            conn.execute(sa.insert(Listen), rows)
        owned = rng.sample(range(albums), OWNED_ALBUMS)
        copies = owned + rng.sample(owned, OWNED_COPIES - OWNED_ALBUMS)
        conn.execute(sa.insert(CollectionItem), [
            {"instance_id": n + 1, "release_id": n + 1, "album_id": b + 1, "title": f"Album {b}",
             "artist": f"Artist {b // ALBUMS_PER_ARTIST}", "source": "bench", "created_at": 0}
            for n, b in enumerate(copies)])
        from modules.importers import summaries
        summaries.rebuild(conn)  # the listens went in by hand, not through write_plays
    with app.app_context(), db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ANALYZE")
    return {"listens": listens, "artists": ARTISTS, "albums": albums, "tracks": tracks,
            "owned_copies": OWNED_COPIES, "generate_s": round(time.perf_counter() - started, 1)}


def measure(fn, baseline, repeat):
    """(median seconds of fn, median of fn's time over the baseline's time taken just before it).
    Interleaving the two keeps the ratio meaningful when the machine's load moves during the run."""
    from flask import g, has_app_context

    fn()  # warm-up: prepared plans, the database's own cache
    times, ratios = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        baseline()
        base = time.perf_counter() - started
        if has_app_context():
            g.pop("analytics_buckets", None)  # the per-request caches of counts: time the real work
            g.pop("analytics_local", None)
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        ratios.append(times[-1] / base)
    return statistics.median(times), statistics.median(ratios)


def panels(app, repeat):
    """{name: (median seconds, median ratio to count(*))} for count(*) and every panel."""
    import sqlalchemy as sa

    from modules.db import db
    from modules.web import analytics as an

    out = {}
    with app.app_context():
        tz = an.timezone()
        periods = {key: an.parse_period(key, tz) for key in ("all", "12m")}

        def count():
            return db.session.execute(sa.text("SELECT count(*) FROM listens")).scalar()

        out[BASELINE] = measure(count, count, repeat)
        for key, period in periods.items():
            for kind in ("artists", "albums", "tracks"):
                out[f"top {kind} ({key})"] = measure(lambda k=kind, p=period: an.top(k, p), count, repeat)
            out[f"heatmap ({key})"] = measure(lambda p=period: an.heatmap(tz, p), count, repeat)
            out[f"albums played, not owned ({key})"] = measure(
                lambda p=period: an.top("albums", p, not_owned=True), count, repeat)
        out["streaks"] = measure(lambda: an.streaks(tz), count, repeat)
        out["artists discovered per month"] = measure(lambda: an.discoveries(tz), count, repeat)
        out["owned, never played"] = measure(lambda: an.unplayed(), count, repeat)
        out["owned vs all listens per month"] = measure(lambda: an.owned_over_time(tz), count, repeat)
        db.session.remove()
    client = app.test_client()
    out["the whole page (12m), one request"] = measure(lambda: client.get("/analytics?period=12m").close(), count_in(app), 1)
    return out


def count_in(app):
    import sqlalchemy as sa

    from modules.db import db

    def count():
        with app.app_context():
            return db.session.execute(sa.text("SELECT count(*) FROM listens")).scalar()
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listens", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="an empty database to migrate and fill (default: temporary SQLite)")
    parser.add_argument("--timezone", default="Europe/Paris")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compare-index", action="store_true", help=f"also time every panel without {INDEX}")
    args = parser.parse_args()

    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
               "loadavg_before": os.getloadavg(), "timezone": args.timezone, "repeat": args.repeat}
    instance = Path(tempfile.mkdtemp(prefix="sillon-bench-analytics-"))
    try:
        app = build_app(instance, args.database_url, args.timezone)
        with app.app_context():
            from modules.db import db
            results["database"] = db.engine.dialect.name
        results["data"] = generate(app, args.listens, args.seed)
        print(f"{args.listens:,} listens on {results['database']}, generated in {results['data']['generate_s']} s")
        timed = panels(app, args.repeat)
        without = None
        if args.compare_index:
            with app.app_context(), db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP INDEX {INDEX}")
            without = panels(app, args.repeat)
            with app.app_context(), db.engine.begin() as conn:
                conn.exec_driver_sql(f"CREATE INDEX {INDEX} ON listens (album_id, played_at)")
        with app.app_context():
            db.engine.dispose()
    finally:
        shutil.rmtree(instance, ignore_errors=True)

    rows = []
    for name, (seconds, ratio) in timed.items():
        row = {"measure": name, "ms": round(seconds * 1000, 1), "ratio": round(ratio, 1)}
        if without:
            row.update({"ms_without_index": round(without[name][0] * 1000, 1),
                        "ratio_without_index": round(without[name][1], 1)})
        rows.append(row)
    results["panels"] = rows
    results["loadavg_after"] = os.getloadavg()
    head = f"{'measure':44} {'median ms':>10} {'x count(*)':>11}" + (f" {'no index ms':>12} {'x count(*)':>11}" if without else "")
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row['measure']:44} {row['ms']:>10,.1f} {row['ratio']:>10,.1f}x"
        if without:
            line += f" {row['ms_without_index']:>12,.1f} {row['ratio_without_index']:>10,.1f}x"
        print(line)
    print(f"load average before / after: {results['loadavg_before'][0]:.2f} / {results['loadavg_after'][0]:.2f}")
    name = "analytics" if results["database"] == "sqlite" else f"analytics-{results['database']}"
    bench_results.write_results(name, results, *result_tables(results))


LABELS = {"heatmap": "weekday × hour heat map", "albums played, not owned": "most played albums not owned",
          "streaks": "streaks (all time)", "owned, never played": "records owned, never played",
          "the whole page (12m), one request": "the whole page (`12m`, one request)"}


def result_tables(results):
    """The table docs/performance.md shows for this run: one row per panel, one column per period."""
    def shown(ratio, ms):
        return f"{ratio:,.1f}x ({ms / 1000:.1f} s)" if ms >= 1000 else f"{ratio:,.1f}x ({ms:.0f} ms)"

    panels, baseline = {}, None
    for row in results["panels"]:
        if row["measure"] == BASELINE:
            baseline = row
            continue
        period = "12m" if "(12m)" in row["measure"] else "all"
        base = row["measure"].removesuffix(" (all)").removesuffix(" (12m)")
        cells = panels.setdefault(LABELS.get(base, base), {})
        cells[period] = shown(row["ratio"], row["ms"])
        if "ratio_without_index" in row and (period == "all" or not row["measure"].endswith(" (12m)")):
            cells["without"] = shown(row["ratio_without_index"], row["ms_without_index"])
    columns = ["panel", "period `all`", "period `12m`"]
    with_index = any("without" in cells for cells in panels.values())
    if with_index:
        columns.append("`all` without index 0005")
    rows = [[name, cells.get("all", ""), cells.get("12m", "")] + ([cells.get("without", "")] if with_index else [])
            for name, cells in panels.items()]
    notes = [f"`SELECT count(*) FROM listens` took {baseline['ms']:.1f} ms (median) in this run."] if baseline else []
    return [bench_results.table(columns, rows)], notes


if __name__ == "__main__":
    main()
