"""Another program holding a Sillon server's SQLite write lock, and watching the server meanwhile.

Run as `python -m tests.db_lock_holder DB_PATH URL HOLD_SECONDS [TRACKER_JOB_ID] [--watch]`. It opens the
tracker job's event stream (an idle stream: its heartbeats), prints "ready", then waits for a line
"take IMPORT_JOB_ID" on its standard input. It then takes the write lock (BEGIN IMMEDIATE, as a
backup or a second program would), prints "taken", and for HOLD_SECONDS asks the server for pages
and reads the import's event stream, one request after another. A timer thread writes "releasing"
into the same ordered log before it gives the lock back, so whatever the log holds before
"releasing" was answered while the lock was held. At the end it prints the log, one JSON object a
line, then "end". With --watch it takes no lock (a baseline: "watching" instead of "taken").
Used by tests/test_faults_db_lock_server.py and bench/bench_db_lock.py.
"""
from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time

import requests

PAGES = ("/api/v1/jobs/{job}", "/journal", "/jobs", "/api/v1/jobs")


class Log:
    """Everything seen, in the order it was seen, from every thread of this process."""

    def __init__(self):
        self.entries = []
        self.lock = threading.Lock()

    def add(self, what, **fields):
        with self.lock:
            self.entries.append({"seq": len(self.entries), "what": what, "at": time.monotonic(), **fields})


def read_stream(log, url, name):
    """Log each event and heartbeat of an event stream until it ends or the process does."""
    try:
        with requests.get(url, stream=True, timeout=(5, 120), headers={"Accept": "text/event-stream"}) as resp:
            event, data = None, None
            for line in resp.iter_lines(decode_unicode=True):
                if line.startswith(":"):
                    log.add("heartbeat", stream=name)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                elif line == "" and event is not None:
                    log.add("event", stream=name, event=event, message=(data or {}).get("message"),
                            status=(data or {}).get("status"))
                    event, data = None, None
    except requests.RequestException as exc:
        log.add("stream-error", stream=name, error=str(exc))


def main(db_path, url, hold, tracker_job=None, lock=True):
    log = Log()
    if tracker_job:
        threading.Thread(target=read_stream, args=(log, f"{url}/api/v1/jobs/{tracker_job}/events", "tracker"),
                         daemon=True).start()
    print("ready", flush=True)
    command = sys.stdin.readline().split()
    assert command and command[0] == "take", command
    import_job = command[1]
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
    if lock:
        conn.execute("BEGIN IMMEDIATE")
    log.add("taken" if lock else "watching")
    print("taken", flush=True)
    released = threading.Event()

    def release():
        time.sleep(hold)
        log.add("releasing")
        if lock:
            conn.execute("ROLLBACK")
        conn.close()
        released.set()

    threading.Thread(target=release, daemon=True).start()
    threading.Thread(target=read_stream, args=(log, f"{url}/api/v1/jobs/{import_job}/events", "import"),
                     daemon=True).start()

    def write_during_lock():  # a change made from a page while the lock is held
        started = time.monotonic()
        resp = requests.post(f"{url}/api/v1/services/tracker/interval", params={"seconds": 300}, timeout=120)
        log.add("write", path="/api/v1/services/tracker/interval", status=resp.status_code,
                seconds=time.monotonic() - started)

    if lock:
        threading.Thread(target=write_during_lock, daemon=True).start()
    i = 0
    while not released.is_set():
        path = PAGES[i % len(PAGES)].format(job=import_job)
        i += 1
        started = time.monotonic()
        try:
            resp = requests.get(url + path, timeout=120)
            body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else None
            log.add("page", path=path, status=resp.status_code, seconds=time.monotonic() - started,
                    message=(body or {}).get("message") if path.startswith("/api/v1/jobs/") else None)
        except requests.RequestException as exc:
            log.add("page-error", path=path, error=str(exc), seconds=time.monotonic() - started)
        time.sleep(0.2)
    time.sleep(1.0)  # the streams' first events after the release, and the page write's answer
    deadline = time.monotonic() + 30
    while lock and not any(e["what"] == "write" for e in log.entries) and time.monotonic() < deadline:
        time.sleep(0.1)
    with log.lock:
        for entry in log.entries:
            print(json.dumps(entry), flush=True)
    print("end", flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--watch"]
    main(args[0], args[1], float(args[2]), args[3] if len(args) > 3 else None, lock="--watch" not in sys.argv)
