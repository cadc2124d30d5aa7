"""Pages during a 20 s SQLite write lock held by another program, on one real gunicorn gevent worker.

A Last.fm import of 20,000 listens runs with the shipped settings (SQLite, database progress store,
5 Last.fm requests a second; Last.fm is the local emulator). tests/db_lock_holder.py, in its own
process, asks the server for pages one after another (a job snapshot, /journal, /jobs, the jobs
list) and reads the import's event stream: first for 5 s without a lock (the baseline), then for
20 s while it holds the write lock (BEGIN IMMEDIATE). Reports per phase the seconds pages took
(p50, p95, max), the ratio to the baseline, how many progress events the stream got, the seconds
from the release to the import's first message that no longer waits, and whether every page
during the lock answered within 1 s. Writes bench/results/db_lock.json; never fails on timings.

    .venv/bin/python bench/bench_db_lock.py        # about a minute
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results import table, write_results  # noqa: E402 - bench/results.py

HOLD_SECONDS = 20
BASELINE_SECONDS = 5
LISTENS = 20_000
BUSY = re.compile(r"Database busy, waiting \d+ s")
MIGRATE = """
import sys
sys.path.insert(0, sys.argv[1])
from flask_migrate import upgrade
from app import create_app
app = create_app({"ENVIRON": {"SILLON_CONFIG": sys.argv[2] + "/absent-config.json", "INSTANCE_PATH": sys.argv[2]}})
with app.app_context():
    upgrade()
"""


def start_server(instance, env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    environ = {**os.environ, "SILLON_CONFIG": str(instance / "absent-config.json"), "INSTANCE_PATH": str(instance),
               "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "PYTHONPATH": str(ROOT), **env}
    environ.pop("ACCESS_LOG", None)
    log = open(instance / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
                            cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/api/v1/jobs", timeout=1)
            return proc, url
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((instance / "gunicorn.log").read_text(errors="replace")[-3000:]) from None
            time.sleep(0.1)


def stop_server(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def watch(db_path, url, job_id, seconds, lock):
    """One run of the holder: its ordered log."""
    args = [sys.executable, "-m", "tests.db_lock_holder", str(db_path), url, str(seconds)]
    proc = subprocess.Popen(args + ([] if lock else ["", "--watch"]), cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    out, _ = proc.communicate(f"take {job_id}\n", timeout=seconds + 90)
    lines = out.splitlines()
    assert lines[0] == "taken" and lines[-1] == "end", out[-2000:]
    return [json.loads(line) for line in lines[1:-1]]


def phase(log):
    whats = [e["what"] for e in log]
    start = whats.index("taken") if "taken" in whats else whats.index("watching")
    held = log[start + 1:whats.index("releasing")]
    seconds = sorted(e["seconds"] for e in held if e["what"] == "page")
    t0 = log[start]["at"]
    slowest = sorted((e for e in held if e["what"] == "page"), key=lambda e: -e["seconds"])[:3]
    events = [e for e in held if e["what"] == "event" and e["stream"] == "import"]
    return {"pages": len(seconds), "p50_s": round(statistics.median(seconds), 4) if seconds else None,
            "p95_s": round(seconds[int(0.95 * (len(seconds) - 1))], 4) if seconds else None,
            "max_s": round(seconds[-1], 4) if seconds else None,
            "page_errors": sum(1 for e in held if e["what"] == "page-error"),
            "stream_events": len(events), "busy_events": sum(1 for e in events if BUSY.match(e["message"] or "")),
            "slowest": [{"path": e["path"], "seconds": round(e["seconds"], 3),
                         "answered_after_s": round(e["at"] - t0, 2)} for e in slowest]}


def main():
    from tests.emulators.lastfm import LastfmEmulator, generate_listens

    workdir = Path(tempfile.mkdtemp(prefix="bench-db-lock-"))
    template = workdir / "template"
    template.mkdir()
    subprocess.run([sys.executable, "-c", MIGRATE, str(ROOT), str(template)], check=True, capture_output=True)
    instance = workdir / "instance"
    instance.mkdir()
    shutil.copy(template / "sillon.db", instance / "sillon.db")
    fm = LastfmEmulator().start()
    fm.add_listens("rj", generate_listens(LISTENS, start_uts=1_500_000_000))
    proc, url = start_server(instance, {"LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key",
                                        "LASTFM_API_SECRET": "s", "LASTFM_USERNAME": "rj"})
    try:
        r = requests.post(f"{url}/api/v1/services/lastfm/import-history", timeout=30)
        r.raise_for_status()
        job_id = r.json()["job_id"]
        while (requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=30).json().get("done") or 0) < 400:
            time.sleep(0.2)
        print(f"  import {job_id} running; {BASELINE_SECONDS} s of pages without a lock", flush=True)
        baseline = phase(watch(instance / "sillon.db", url, job_id, BASELINE_SECONDS, lock=False))
        print(f"  then {HOLD_SECONDS} s with another process holding the write lock", flush=True)
        lock_log = watch(instance / "sillon.db", url, job_id, HOLD_SECONDS, lock=True)
        locked = phase(lock_log)
        release_at = next(e["at"] for e in lock_log if e["what"] == "releasing")
        after = [e for e in lock_log if e["what"] == "event" and e["stream"] == "import" and e["at"] > release_at
                 and not BUSY.match(e["message"] or "")]
        going_on = round(after[0]["at"] - release_at, 3) if after else None
        deadline = time.monotonic() + 300
        while (snap := requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=30).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the import did not end"
            time.sleep(0.5)
    finally:
        stop_server(proc)
        fm.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "listens": LISTENS, "hold_seconds": HOLD_SECONDS,
        "baseline": baseline, "during_lock": locked,
        "p50_ratio_to_baseline": round(locked["p50_s"] / baseline["p50_s"], 2) if baseline["p50_s"] else None,
        "seconds_from_release_to_progress": going_on,
        "import_status": snap["status"], "imported": (snap.get("result") or {}).get("imported"),
        "pages_within_1s_ok": bool(locked["pages"]) and locked["max_s"] < 1.0 and not locked["page_errors"],
        "import_completed_ok": snap["status"] == "completed" and (snap.get("result") or {}).get("imported") == LISTENS,
    }
    print(f"\n  {'phase':<12} {'pages':>6} {'p50 s':>8} {'p95 s':>8} {'max s':>8} {'events':>7}")
    for name, p in (("baseline", baseline), ("during lock", locked)):
        print(f"  {name:<12} {p['pages']:>6} {p['p50_s'] or 0:>8.3f} {p['p95_s'] or 0:>8.3f} {p['max_s'] or 0:>8.3f} "
              f"{p['stream_events']:>7}")
    print(f"  p50 ratio {result['p50_ratio_to_baseline']}; progress {going_on} s after the release; "
          f"import {snap['status']} with {result['imported']} listens")
    rows = [[name, p["pages"], f"{p['p50_s'] or 0:.3f} s", f"{p['p95_s'] or 0:.3f} s", f"{p['max_s'] or 0:.3f} s",
             p["stream_events"]] for name, p in (("import, no lock", baseline), (f"{HOLD_SECONDS} s lock", locked))]
    write_results("db_lock", result, [table(["phase", "pages answered", "p50", "p95", "max", "stream events"], rows)],
                  [f"The import went on {going_on} s after the release and ended {snap['status']} with "
                   f"{result['imported']} listens; every page during the lock answered within 1 s: "
                   f"{'yes' if result['pages_within_1s_ok'] else 'no'}."])
    return 0


if __name__ == "__main__":
    sys.exit(main())
