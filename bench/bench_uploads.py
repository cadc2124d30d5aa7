"""Upload import of a generated Spotify Extended Streaming History: rows per second against a bare
`json.load` of the same files, and peak memory.

The history: PER_FILE (100,000) plays per file, `Streaming_History_Audio_<years>_<N>.json`, each a
JSON array of objects with the fields of Spotify's current export (ts, platform, ms_played,
conn_country, ip_addr, master_metadata_*, spotify_track_uri, episode_*, audiobook_*, reason_start,
reason_end, shuffle, skipped, offline, offline_timestamp, incognito_mode), pretty-printed with a
2-space indent like the real files, UTF-8 (non-ASCII names written as such). About 3,000 artists,
20,000 tracks (on about 3,900 albums) played with a Zipf-like popularity; plays one after another
from October 2008 to June 2025 (1,000,000 plays fill about half of that time), each file a stretch
of time (so its name carries its years). A few % of the rows are what the importer skips and counts: 4 % short plays (< 30 s), 1 % incognito, 2 % podcast
episodes, 0.2 % audiobook chapters, 0.3 % without track metadata (local files). Generation is
deterministic (--seed) and cached under CACHE (/tmp/sillon-bench-uploads); file N of a history is
the same whatever the number of plays, so the 200,000-play run reads the first 2 files of the
1,000,000-play one.

Each measured run is a fresh subprocess (peak RSS = its own VmHWM):
(a) baseline: `json.load` of each file one after another (text mode, UTF-8), counting the items;
(b) parse: `formats.detect_format` + `formats.open_reader` over each file, counting the items;
(c) import: the real job, `modules.jobs.start_job("upload_import", {"files": [...], "upload_dir": None})`
    in an app context on a fresh copy of a migrated SQLite database (the files hard-linked into the
    instance folder's uploads/, as the upload endpoint would have saved them), joined through the
    runner. Wall time from start_job to the end of the job; default settings (UPLOAD_WORKERS 4,
    IMPORT_BATCH_SIZE 500, PROGRESS_STORE database). `--via-post` instead POSTs the files as
    multipart to /api/v1/imports on the test client (the POST's save to disk included in the time).
    The job must end "completed" with exactly the expected listens stored, or the bench fails.

Rows per second = every item of the files (skipped rows included) / wall time; (b) and (c) are
reported as a ratio of their rows per second to (a)'s (1.0 = as fast as a bare json.load, 0.1 = ten
times slower). Target (the issue): the import's peak RSS at most 250 MB (`target_met`); the ratios
have no target, the bench reports them. The baseline's peak RSS is given for context (json.load
holds a whole file).

The issue's size, 1,000,000 plays (10 files, 806 MB), is the default: on a 2-CPU machine the import
takes about 1.5-3 minutes (95-170 s measured, depending on the load) and the whole bench about 2-4
(plus about 30 s to generate the files the first time), under run_all.py's 10-minute limit. `--plays N` (a multiple of --per-file) measures fewer,
and the output and results then say so (`reduced`).

    .venv/bin/python bench/bench_uploads.py                     # 1,000,000 plays, about 2 minutes
    .venv/bin/python bench/bench_uploads.py --plays 200000      # the first 2 files, about 40 s
    .venv/bin/python bench/bench_uploads.py --plays 200000 --only import --pyspy

Prints a table and writes bench/results/uploads.json (with the load average before and after);
never fails on a timing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import results as bench_results  # bench/results.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = Path(tempfile.gettempdir()) / "sillon-bench-uploads"
PYSPY_DIR = Path(tempfile.gettempdir()) / "bench-uploads-pyspy"
FULL_PLAYS = 1_000_000
PER_FILE = 100_000
ARTISTS, TRACKS = 3_000, 20_000
SEED = 5
GENERATOR_VERSION = 1  # bump when the generated content changes (the cache key)
FIRST_TS, LAST_TS = 1_223_337_600, 1_751_241_600  # 2008-10-07 (Spotify opens) .. 2025-06-30 UTC
TARGET_PEAK_MB = 250
MIX = (("short_play", 0.04), ("incognito", 0.01), ("podcast", 0.02), ("audiobook", 0.002), ("no_metadata", 0.003))
SCENARIOS = ("baseline", "parse", "import")


# ------------------------------------------------------------------------------ generation
_WORDS = ("Blue Night Fire River Silent Golden Electric Broken Velvet Paper Glass Winter Summer Neon Hollow "
          "Wild Echo Crystal Midnight Satellite Ocean Desert Ghost Violet Iron Honey Lunar Static Amber Black "
          "White Northern Southern Secret Lost Young Empty Burning Falling Rising Crimson Silver Dream Shadow "
          "Thunder Coral Marble Copper Wolf Fox Raven Tiger Garden Machine Radio Heart Signal Harbor Canyon").split()
_NOUNS = ("Lights Kids Hearts Waves Lions Birds Engines Roses Stones Riders Pilots Sisters Brothers Circus "
          "Society Orchestra Collective Club Union Parade Choir Project Band Trio Quartet Machines Ghosts").split()
_NON_ASCII = ("Björk Sigur Rós Mø Ásgeir Żabson Röyksopp Motörhead Beyoncé Céline Zaz Françoise Øystein Åsa "
              "Måneskin Jóhann Mýa Ólafur Þórir Ñandú Ça Über Straße Naïve Señor Kōki Ryūichi Dvořák").split()
_CJK = ("坂本龍一", "宇多田ヒカル", "椎名林檎", "YOASOBI", "방탄소년단", "Кино", "Ёлка", "Земфира", "Дельфин", "نانسی", "Ελένη")
_TITLE_WORDS = ("Love Time Home Alone Tonight Forever Again Away Down Up Tomorrow Yesterday Never Always Run "
                "Dance Fall Stay Go Hold Breathe Shine Burn Drive Fly Wait Remember Forget Believe Sleep Wake "
                "Dreams Lights Roads Stars Rain Sun Moon Sea Sky City Streets Bones Words Hands Eyes Tears").split()
_SUFFIXES = ("", "", "", "", " - Remastered 2011", " (Live)", " - Radio Edit", " (feat. {x})", " - Acoustic",
             " - 2019 Remaster", " (Extended Mix)", " - Single Version")
_PLATFORMS = ("android", "ios", "windows", "osx", "linux", "web_player", "Android OS 9 API 28 (samsung, SM-G960F)",
              "iOS 13.4 (iPhone11,8)", "Partner google cast_tv;Chromecast;;", "Windows 10 (10.0.19041; x64)")
_COUNTRIES = ("FR", "FR", "FR", "GB", "DE", "US", "ES", "IT", "NL", "BE")
_REASON_START = ("trackdone", "trackdone", "trackdone", "clickrow", "fwdbtn", "playbtn", "appload", "backbtn")
_REASON_END_FULL = ("trackdone", "trackdone", "trackdone", "trackdone", "endplay", "logout")
_REASON_END_PART = ("fwdbtn", "endplay", "backbtn", "unexpected-exit", "remote")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _j(value):
    return json.dumps(value, ensure_ascii=False)


def _uri(rng, kind):
    return f"spotify:{kind}:" + "".join(rng.choice(_B62) for _ in range(22))


def catalogue(seed):
    """Artists, albums and tracks (JSON-encoded fields ready to paste), and the tracks' play weights."""
    from modules.names import name_key  # the app's own keys: names must be distinct for it too

    rng = random.Random(seed)
    artists, seen = [], set()
    while len(artists) < ARTISTS:
        r = rng.random()
        if r < 0.04:
            name = rng.choice(_NON_ASCII) + " " + rng.choice(_NON_ASCII)
        elif r < 0.06:
            name = rng.choice(_CJK) + ("" if rng.random() < 0.5 else " " + rng.choice(_CJK))
        elif r < 0.45:
            name = f"The {rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
        elif r < 0.75:
            name = f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)}"
        else:
            name = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
        if len(seen) > 2000 and rng.random() < 0.3:
            name += f" {rng.randint(2, 99)}"
        if name_key(name) not in seen:
            seen.add(name_key(name))
            artists.append(name)
    # every artist has a track; the rest go to artists with a Zipf-like weight
    artist_weights = [1 / (i + 1) ** 0.8 for i in range(ARTISTS)]
    owners = list(range(ARTISTS)) + rng.choices(range(ARTISTS), weights=artist_weights, k=TRACKS - ARTISTS)
    per_artist = {}
    for a in owners:
        per_artist[a] = per_artist.get(a, 0) + 1
    tracks = []  # (artist json, album json, title json, duration ms)
    albums = 0
    for a, count in per_artist.items():
        n_albums = max(1, round(count / 8))
        album_names = []
        while len(album_names) < n_albums:
            title = " ".join(rng.choice(_TITLE_WORDS) for _ in range(rng.randint(1, 3)))
            if title not in album_names:
                album_names.append(title)
        albums += n_albums
        titles = set()
        while len(titles) < count:
            title = " ".join(rng.choice(_TITLE_WORDS) for _ in range(rng.randint(1, 4)))
            suffix = rng.choice(_SUFFIXES).replace("{x}", artists[rng.randrange(ARTISTS)])
            if name_key(title + suffix) not in {name_key(t) for t in titles}:
                titles.add(title + suffix)
        for title in sorted(titles):
            tracks.append((_j(artists[a]), _j(rng.choice(album_names)), _j(title),
                           int(rng.triangular(90_000, 400_000, 200_000)), _j(_uri(rng, "track"))))
    rng.shuffle(tracks)
    weights = [1 / (rank + 10) for rank in range(len(tracks))]
    shows = [(_j(f"{rng.choice(_WORDS)} {rng.choice(_NOUNS)} Podcast"), _j(_uri(rng, "episode"))) for _ in range(40)]
    books = [(_j(f"The {rng.choice(_WORDS)} {rng.choice(_TITLE_WORDS)}"), _j(_uri(rng, "show"))) for _ in range(10)]
    return {"tracks": tracks, "weights": weights, "shows": shows, "books": books, "albums": albums}


_ROW = """  {{
    "ts": "{ts}",
    "platform": {platform},
    "ms_played": {ms},
    "conn_country": "{country}",
    "ip_addr": "{ip}",
    "master_metadata_track_name": {title},
    "master_metadata_album_artist_name": {artist},
    "master_metadata_album_album_name": {album},
    "spotify_track_uri": {track_uri},
    "episode_name": {episode},
    "episode_show_name": {show},
    "spotify_episode_uri": {episode_uri},
    "audiobook_title": {book},
    "audiobook_uri": {book_uri},
    "audiobook_chapter_uri": {chapter_uri},
    "audiobook_chapter_title": {chapter},
    "reason_start": "{reason_start}",
    "reason_end": "{reason_end}",
    "shuffle": {shuffle},
    "skipped": {skipped},
    "offline": {offline},
    "offline_timestamp": {offline_ts},
    "incognito_mode": {incognito}
  }}"""
_JSON_BOOL = ("false", "true")


def generate_file(cat, seed, index, n_files_span, per_file):
    """The text of file `index` (its stretch of time is 1 / n_files_span of FIRST_TS..LAST_TS) and its
    expected counts."""
    rng = random.Random(seed * 100_003 + index)
    span = (LAST_TS - FIRST_TS) / n_files_span
    start, end_limit = FIRST_TS + index * span, FIRST_TS + (index + 1) * span
    tracks, shows, books = cat["tracks"], cat["shows"], cat["books"]
    picks = rng.choices(tracks, cum_weights=cat["cum_weights"], k=per_file)
    thresholds, acc = [], 0.0
    for reason, share in MIX:
        acc += share
        thresholds.append((acc, reason))
    counts = {"rows": per_file, "plays": 0, **{reason: 0 for reason, _ in MIX}}
    rows, played_s = [], 0.0
    null = "null"
    for artist, album, title, duration, track_uri in picks:
        r = rng.random()
        kind = next((reason for limit, reason in thresholds if r < limit), "play")
        counts["plays" if kind == "play" else kind] += 1
        f = {"platform": _j(rng.choice(_PLATFORMS)), "country": rng.choice(_COUNTRIES),
             "ip": f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.x",
             "title": title, "artist": artist, "album": album, "track_uri": track_uri,
             "episode": null, "show": null, "episode_uri": null, "book": null, "book_uri": null,
             "chapter_uri": null, "chapter": null, "reason_start": rng.choice(_REASON_START),
             "shuffle": _JSON_BOOL[rng.random() < 0.4], "skipped": "false", "offline": "false",
             "incognito": "false"}
        if kind == "short_play":
            ms = rng.randint(0, 29_999)
            f["reason_end"], f["skipped"] = "fwdbtn", "true"
        elif rng.random() < 0.75:
            ms = duration
            f["reason_end"] = rng.choice(_REASON_END_FULL)
        else:
            ms = rng.randint(30_000, duration)
            f["reason_end"] = rng.choice(_REASON_END_PART)
        if kind == "incognito":
            f["incognito"] = "true"
        elif kind == "podcast":
            show, episode_uri = rng.choice(shows)
            f.update(title=null, artist=null, album=null, track_uri=null, show=show, episode_uri=episode_uri,
                     episode=_j(f"Episode {rng.randint(1, 400)}"))
            ms = rng.randint(60_000, 2_400_000)
        elif kind == "audiobook":
            book, book_uri = rng.choice(books)
            f.update(title=null, artist=null, album=null, track_uri=null, book=book, book_uri=book_uri,
                     chapter_uri=_j(_uri(rng, "episode")), chapter=_j(f"Chapter {rng.randint(1, 40)}"))
            ms = rng.randint(60_000, 1_800_000)
        elif kind == "no_metadata":
            f.update(title=null, artist=null, album=null, track_uri=null)
        if rng.random() < 0.05:
            f["offline"] = "true"
        f["ms"] = ms
        played_s += ms / 1000
        rows.append(f)
    # the gaps between plays fill the file's stretch of time (to 95 %); starts at least 2 s apart, so
    # every play is a distinct listen
    mean_gap = (span * 0.95 - played_s) / per_file - 2
    if mean_gap <= 0:
        raise RuntimeError(f"{per_file:,} plays do not fit in file {index}'s stretch of time")
    out, t = [], start
    for f in rows:
        t += 2 + min(rng.expovariate(1 / mean_gap), 20 * mean_gap)
        f["offline_ts"] = int(t) if f["offline"] == "true" else "null"
        t += f["ms"] / 1000
        f["ts"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        out.append(_ROW.format(**f))
    if t >= end_limit:
        raise RuntimeError(f"file {index} ran past its stretch of time; lower --per-file")
    first_year = time.gmtime(start).tm_year
    last_year = time.gmtime(t).tm_year
    years = str(first_year) if first_year == last_year else f"{first_year}-{last_year}"
    name = f"Streaming_History_Audio_{years}_{index}.json"
    return name, "[\n" + ",\n".join(out) + "\n]", counts


def history(plays, per_file, seed):
    """The files for `plays` plays (generated once, cached): [{path, name, bytes, counts}]."""
    n_files = -(-plays // per_file)
    n_files_span = -(-FULL_PLAYS // per_file)  # the time split of the full history, whatever is generated
    if plays % per_file or n_files > n_files_span:
        raise SystemExit(f"--plays must be a multiple of --per-file and at most {FULL_PLAYS:,}")
    folder = CACHE / f"v{GENERATOR_VERSION}-seed{seed}-per{per_file}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    missing = [i for i in range(n_files)
               if str(i) not in manifest or not (folder / manifest[str(i)]["name"]).exists()
               or (folder / manifest[str(i)]["name"]).stat().st_size != manifest[str(i)]["bytes"]]
    if missing:
        started = time.perf_counter()
        print(f"  generating {len(missing)} file(s) of {per_file:,} plays into {folder} ...", flush=True)
        sys.path.insert(0, str(ROOT))
        cat = catalogue(seed)
        acc, cum = 0.0, []
        for w in cat["weights"]:
            acc += w
            cum.append(acc)
        cat["cum_weights"] = cum
        for i in missing:
            name, text, counts = generate_file(cat, seed, i, n_files_span, per_file)
            data = text.encode("utf-8")
            tmp = folder / (name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(folder / name)
            manifest[str(i)] = {"name": name, "bytes": len(data), "counts": counts}
            manifest_path.write_text(json.dumps(manifest, indent=1))
        print(f"  generated in {time.perf_counter() - started:.1f} s "
              f"({len(cat['tracks']):,} tracks on {cat['albums']:,} albums)", flush=True)
    return [{"path": str(folder / manifest[str(i)]["name"]), "name": manifest[str(i)]["name"],
             "bytes": manifest[str(i)]["bytes"], "counts": manifest[str(i)]["counts"]} for i in range(n_files)]


# ------------------------------------------------------------------------------ child processes
def _peak_kb():
    """This process's peak RSS (VmHWM); not ru_maxrss, which a child inherits from its parent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_s():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _environ(instance, extra=None):
    return {"SILLON_CONFIG": str(Path(instance) / "absent-config.json"), "INSTANCE_PATH": str(instance),
            "TRACKER_AUTOSTART": "false", **(extra or {})}


def child_migrate(args):
    sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade

    from app import create_app

    app = create_app({"ENVIRON": _environ(args["instance"])})
    with app.app_context():
        upgrade()
        from modules.db import db
        db.engine.dispose()
    return {}


def child_baseline(args):
    """A bare json.load of each file, one after another."""
    rss_before, cpu_before = _rss_kb(), _cpu_s()
    started = time.perf_counter()
    items = 0
    for f in args["files"]:
        with open(f["path"], encoding="utf-8") as fh:
            data = json.load(fh)
        items += len(data)
        del data
    return {"wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu_before, "items": items,
            "rss_before_kb": rss_before, "peak_rss_kb": _peak_kb()}


def child_parse(args):
    """detect_format + open_reader over each file, counting the items (as the job's read step does)."""
    sys.path.insert(0, str(ROOT))
    from modules.sources.exports import formats

    rss_before, cpu_before = _rss_kb(), _cpu_s()
    started = time.perf_counter()
    items = 0
    for f in args["files"]:
        info = formats.detect_format(f["path"], f["name"])
        for _ in formats.open_reader(f["path"], info, name=f["name"]):
            items += 1
    return {"wall_s": time.perf_counter() - started, "cpu_s": _cpu_s() - cpu_before, "items": items,
            "rss_before_kb": rss_before, "peak_rss_kb": _peak_kb()}


def child_import(args):
    """The real upload_import job on a fresh migrated database; a sampler thread notes RSS and steps."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from app import create_app

    instance = Path(args["instance"])
    app = create_app({"ENVIRON": _environ(instance, args.get("settings"))})
    client = app.test_client()
    client.get("/api/v1/jobs")  # first request's lazy set-up, outside the measure
    files = []
    if not args["via_post"]:
        upload_dir = instance / "uploads" / "bench"
        upload_dir.mkdir(parents=True)
        for i, f in enumerate(args["files"]):
            dest = upload_dir / f"{i:03d}-{f['name']}"
            try:
                os.link(f["path"], dest)  # the job only reads them; a copy would do the same
            except OSError:
                shutil.copy(f["path"], dest)
            files.append({"path": str(dest), "name": f["name"]})
    from modules.jobs import lifecycle

    samples, stop = [], threading.Event()
    rss_before, peak_before, cpu_before = _rss_kb(), _peak_kb(), _cpu_s()
    started = time.perf_counter()
    job = {}

    def sample():
        while not stop.wait(0.2):
            tracker = lifecycle.local_tracker(job.get("id"))
            step = tracker.current_step if tracker is not None else None
            samples.append((round(time.perf_counter() - started, 2), _rss_kb(), step))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    post_s = None
    if args["via_post"]:
        handles = [open(f["path"], "rb") for f in args["files"]]
        try:
            response = client.post("/api/v1/imports", content_type="multipart/form-data",
                                   data={"files": [(h, f["name"]) for h, f in zip(handles, args["files"], strict=True)]})
        finally:
            for h in handles:
                h.close()
        if response.status_code != 202:
            raise RuntimeError(f"POST /api/v1/imports: {response.status_code} {response.get_data(as_text=True)[:500]}")
        job["id"] = response.get_json()["job_id"]
        post_s = time.perf_counter() - started
    else:
        with app.app_context():
            job["id"] = lifecycle.start_job("upload_import", {"files": files, "upload_dir": None})
    app.extensions["sillon"]["runner"].join(job["id"], args["timeout"])
    wall = time.perf_counter() - started
    cpu, peak = _cpu_s() - cpu_before, _peak_kb()
    stop.set()
    sampler.join()
    with app.app_context():
        from modules.db import db
        from modules.models import Album, Artist, Listen, Track

        snap = app.extensions["sillon"]["progress_store"].get(job["id"]) or {}
        stored = {m.__tablename__: db.session.execute(sa.select(sa.func.count()).select_from(m)).scalar()
                  for m in (Listen, Artist, Album, Track)}
        db.session.remove()
        db.engine.dispose()
    result = snap.get("result") or {}
    read_s = next((t for t, _, step in samples if step not in (None, "read")), None)
    save_end = next((t for t, _, step in samples if step == "finish"), wall)  # finish takes milliseconds
    peak_step = max(samples, key=lambda s: s[1])[2] if samples else None
    return {"wall_s": wall, "cpu_s": cpu, "post_s": post_s, "status": snap.get("status"),
            "message": snap.get("message"), "imported": result.get("imported"), "skipped": result.get("skipped"),
            "errors": result.get("errors"), "skip_reasons": result.get("skip_reasons"), "stored": stored,
            "files": [{k: o.get(k) for k in ("name", "rows", "imported", "skipped", "errors", "status")}
                      for o in result.get("files", [])],
            "read_step_s": read_s, "save_step_s": (save_end - read_s) if read_s and save_end else None,
            "rss_before_kb": rss_before, "peak_before_kb": peak_before, "peak_rss_kb": peak,
            "growth_kb": peak - rss_before, "peak_sampled_during_step": peak_step,
            "rss_samples": samples[:: max(1, len(samples) // 60)]}


CHILDREN = {"migrate": child_migrate, "baseline": child_baseline, "parse": child_parse, "import": child_import}


def run_child(mode, args, pyspy=None):
    """Run this script as `--child mode` in a fresh interpreter; its last `{` line of stdout is JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, json.dumps(args)]
    if pyspy:
        PYSPY_DIR.mkdir(exist_ok=True)
        # --threads: one stack per thread (the read and save pools, the job thread); not --gil, so
        # waiting on the write lock or SQLite shows too (filter on "active" stacks by hand if needed).
        cmd = [pyspy, "record", "--threads", "-r", "100", "-f", "raw",
               "-o", str(PYSPY_DIR / f"{mode}.txt"), "--"] + cmd
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.get("timeout", 3600) + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


# ------------------------------------------------------------------------------ parent
def expected(files):
    total = {"rows": 0, "plays": 0, **{reason: 0 for reason, _ in MIX}}
    for f in files:
        for k, v in f["counts"].items():
            total[k] += v
    return total


def check_import(run, want):
    problems = []
    if run["status"] != "completed":
        problems.append(f"status {run['status']}: {run['message']}")
    if run["imported"] != want["plays"] or run["stored"]["listens"] != want["plays"]:
        problems.append(f"imported {run['imported']} / stored {run['stored']['listens']}, expected {want['plays']}")
    skips = {reason: want[reason] for reason, _ in MIX if want[reason]}
    if run["skip_reasons"] != skips:
        problems.append(f"skip reasons {run['skip_reasons']}, expected {skips}")
    if run["errors"]:
        problems.append(f"{run['errors']} unreadable rows")
    if problems:
        raise RuntimeError("the import did not do what the generated files call for: " + "; ".join(problems))


def table(results):
    rows = [("measure", "value", "target", "met")]
    rows_n = results["rows"]
    base, parse, imp = results.get("baseline"), results.get("parse"), results.get("import")
    if base:
        rows += [(f"(a) json.load, {rows_n:,} rows (s)", f"{base['wall_s']:.2f} (CPU {base['cpu_s']:.1f})", "", ""),
                 ("(a) rows/s", f"{base['rows_per_s']:,.0f}", "", ""),
                 ("(a) peak RSS (MB)", f"{base['peak_rss_kb'] / 1024:.1f}", "(context)", "")]
    if parse:
        rows += [("(b) open_reader (s)", f"{parse['wall_s']:.2f} (CPU {parse['cpu_s']:.1f})", "", ""),
                 ("(b) rows/s", f"{parse['rows_per_s']:,.0f}", "", "")]
        if "ratio_to_baseline" in parse:
            rows.append(("(b) rows/s / (a) rows/s (by CPU)",
                         f"{parse['ratio_to_baseline']:.3f} ({parse['cpu_ratio_to_baseline']:.3f})", "", ""))
        rows.append(("(b) peak RSS (MB)", f"{parse['peak_rss_kb'] / 1024:.1f}", "", ""))
    if imp:
        rows += [("(c) import job (s)", f"{imp['wall_s']:.2f} (CPU {imp['cpu_s']:.1f})", "", ""),
                 ("(c) read step / save step (s)",
                  f"{imp['read_step_s'] or 0:.1f} / {imp['save_step_s'] or 0:.1f}", "", ""),
                 ("(c) rows/s", f"{imp['rows_per_s']:,.0f}", "", "")]
        if "ratio_to_baseline" in imp:
            rows.append(("(c) rows/s / (a) rows/s (by CPU)",
                         f"{imp['ratio_to_baseline']:.4f} ({imp['cpu_ratio_to_baseline']:.4f})", "", ""))
        rows += [("(c) listens stored", f"{imp['stored']['listens']:,}", "", ""),
                 ("(c) peak RSS (MB)", f"{imp['peak_rss_kb'] / 1024:.1f}", f"<= {TARGET_PEAK_MB}",
                  "yes" if imp["target_met"] else "NO"),
                 ("(c) RSS before the job / growth (MB)",
                  f"{imp['rss_before_kb'] / 1024:.1f} / {imp['growth_kb'] / 1024:.1f}", "", "")]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--plays", type=int, default=FULL_PLAYS,
                        help=f"plays to generate and measure, a multiple of --per-file (default {FULL_PLAYS:,})")
    parser.add_argument("--per-file", type=int, default=PER_FILE, help="plays per file")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: baseline,parse,import")
    parser.add_argument("--via-post", action="store_true", help="POST the files to /api/v1/imports instead of start_job")
    parser.add_argument("--batch-size", type=int, help="the job's IMPORT_BATCH_SIZE (default: the app's, 500)")
    parser.add_argument("--workers", type=int, help="the job's UPLOAD_WORKERS (default: the app's, 4)")
    parser.add_argument("--pyspy", action="store_true", help=f"record (b) and (c) with py-spy into {PYSPY_DIR}")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds before the import is given up")
    opts = parser.parse_args()
    only = [s for s in opts.only.split(",") if s]
    if set(only) - set(SCENARIOS):
        parser.error(f"--only takes {', '.join(SCENARIOS)}")
    plays = opts.plays
    reduced = plays < FULL_PLAYS
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_before": os.getloadavg()}
    print(f"== Spotify Extended Streaming History, {plays:,} plays in files of {opts.per_file:,}"
          + (f" -- REDUCED: not the issue's {FULL_PLAYS:,}" if reduced else ""), flush=True)
    files = history(plays, opts.per_file, opts.seed)
    want = expected(files)
    total_bytes = sum(f["bytes"] for f in files)
    results.update({"plays": plays, "rows": want["rows"], "reduced": reduced, "full_plays": FULL_PLAYS,
                    "note": (f"REDUCED: measured on {plays:,} plays, not the issue's {FULL_PLAYS:,}"
                             if reduced else f"the issue's size, {FULL_PLAYS:,} plays"),
                    "files": [{"name": f["name"], "bytes": f["bytes"], **f["counts"]} for f in files],
                    "total_mb": total_bytes / 1e6, "expected": want,
                    "generator": {"version": GENERATOR_VERSION, "seed": opts.seed, "per_file": opts.per_file,
                                  "artists": ARTISTS, "tracks": TRACKS, "layout": "JSON array, indent 2, UTF-8"}})
    print(f"  {len(files)} files, {total_bytes / 1e6:,.0f} MB, {want['rows']:,} rows: {want['plays']:,} plays to "
          "import, skips " + ", ".join(f"{want[r]:,} {r}" for r, _ in MIX), flush=True)
    spy = None
    if opts.pyspy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    slim = [{"path": f["path"], "name": f["name"]} for f in files]
    work = Path(tempfile.mkdtemp(prefix="bench-uploads-"))
    try:
        if "baseline" in only:
            out = run_child("baseline", {"files": slim})
            out["rows_per_s"] = out["items"] / out["wall_s"]
            results["baseline"] = out
            print(f"  (a) json.load      {out['wall_s']:7.2f} s  {out['rows_per_s']:>10,.0f} rows/s  "
                  f"peak {out['peak_rss_kb'] / 1024:.0f} MB", flush=True)
        if "parse" in only:
            out = run_child("parse", {"files": slim}, pyspy=spy)
            out["rows_per_s"] = out["items"] / out["wall_s"]
            if out["items"] != want["rows"]:
                raise RuntimeError(f"the readers yielded {out['items']} items, expected {want['rows']}")
            results["parse"] = out
            print(f"  (b) open_reader    {out['wall_s']:7.2f} s  {out['rows_per_s']:>10,.0f} rows/s  "
                  f"peak {out['peak_rss_kb'] / 1024:.0f} MB", flush=True)
        if "import" in only:
            template = work / "template"
            template.mkdir()
            run_child("migrate", {"instance": str(template)})
            instance = work / "instance"
            instance.mkdir()
            shutil.copy(template / "sillon.db", instance / "sillon.db")
            settings = {}
            if opts.batch_size:
                settings["IMPORT_BATCH_SIZE"] = str(opts.batch_size)
            if opts.workers:
                settings["UPLOAD_WORKERS"] = str(opts.workers)
            out = run_child("import", {"files": slim, "instance": str(instance), "via_post": opts.via_post,
                                       "settings": settings, "timeout": opts.timeout}, pyspy=spy)
            check_import(out, want)
            out["rows_per_s"] = want["rows"] / out["wall_s"]
            out["listens_per_s"] = want["plays"] / out["wall_s"]
            out["via"] = "POST /api/v1/imports" if opts.via_post else "start_job"
            out["settings"] = settings or "app defaults"
            out["target_peak_mb"] = TARGET_PEAK_MB
            out["target_met"] = out["peak_rss_kb"] / 1024 <= TARGET_PEAK_MB
            results["import"] = out
            print(f"  (c) import job     {out['wall_s']:7.2f} s  {out['rows_per_s']:>10,.0f} rows/s  "
                  f"peak {out['peak_rss_kb'] / 1024:.0f} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = results.get("baseline")
    for key in ("parse", "import"):
        if base and key in results:
            results[key]["ratio_to_baseline"] = results[key]["rows_per_s"] / base["rows_per_s"]
            results[key]["times_slower_than_baseline"] = base["rows_per_s"] / results[key]["rows_per_s"]
            # CPU seconds move less than wall time when other work shares the machine
            results[key]["cpu_ratio_to_baseline"] = base["cpu_s"] / results[key]["cpu_s"]
    results["loadavg_after"] = os.getloadavg()  # other work on the machine skews wall times
    table(results)
    if reduced:
        print(f"\nNOTE: measured on {plays:,} plays, not the issue's {FULL_PLAYS:,} (the default without --plays).")
    print(f"load average before / after: {results['loadavg_before'][0]:.2f} / {results['loadavg_after'][0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    if spy:
        print(f"py-spy stacks in {PYSPY_DIR}")
    bench_results.write_results("uploads", results, result_tables(results), notes=[results["note"]] if reduced else [])
    return 0


def result_tables(results):
    """The table docs/performance.md shows for this run."""
    rows = []
    base, parse, job = results.get("baseline"), results.get("parse"), results.get("import")
    if base:
        rows.append(["bare `json.load` of the same files (baseline)",
                     f"{base['rows_per_s']:,.0f} rows/s ({base['wall_s']:.1f} s), peak {base['peak_rss_kb'] / 1024:.0f} MB", ""])
    if parse:
        ratio = f": {parse['ratio_to_baseline']:.2f}x the baseline" if base else ""
        rows.append(["the streaming parsers alone",
                     f"{parse['rows_per_s']:,.0f} rows/s{ratio}, peak {parse['peak_rss_kb'] / 1024:.0f} MB", ""])
    if job:
        ratio = f": {job['ratio_to_baseline']:.2f}x the baseline" if base else ""
        rows += [["the whole upload job (detect, parse, skip rules, same-play check, save)",
                  f"{job['rows_per_s']:,.0f} rows/s{ratio} ({job['wall_s']:.1f} s)", ""],
                 ["peak memory of the import process", f"{job['peak_rss_kb'] / 1024:.0f} MB",
                  f"at most {TARGET_PEAK_MB} MB"]]
    title = f"{results['plays']:,} plays in {len(results['files'])} files, {results['total_mb']:,.0f} MB"
    return [bench_results.table(["measure", "figure", "target"], rows, title=title)]


if __name__ == "__main__":
    sys.exit(main())
