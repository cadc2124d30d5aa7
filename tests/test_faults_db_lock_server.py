"""Another program holds SQLite's write lock for 20 s in the middle of an import, on a real server.

One gunicorn gevent worker with the settings Sillon ships (SQLite, database progress store,
SQLITE_BUSY_TIMEOUT_SECONDS 30, SSE heartbeat 15 s, Last.fm pacing 5 a second); only the Last.fm
address and credentials point at the local emulator. The holder (tests/db_lock_holder.py, its own
process) takes the lock as Last.fm is asked for a page in the middle of the import and gives it back
20 s later; meanwhile it asks the server for pages and reads two event streams. Its log is in the
order things happened, and "releasing" is written before the lock is given back: so whatever the
log holds before it was answered while the lock was held. SQLite's own busy wait would hold the
worker's only thread until the lock went away; here the wait is in Python, between short tries.

Compare tests/test_faults_sqlite_lock.py: the same lock, with timers tuned short, in one process.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.conftest import ROOT
from tests.test_lastfm_import import Emulator, keys, with_ties

pytestmark = pytest.mark.sqlite_only  # the lock is SQLite's own

HOLD_SECONDS = 20
BUSY = re.compile(r"Database busy, waiting \d+ s: another program holds its write lock")
FINAL = {"completed", "error", "cancelled", "interrupted"}


def wait_for(predicate, what, timeout):
    """The first truthy value of `predicate()`; fails the test once `timeout` passes without one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def snapshot(url, job_id):
    r = requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


class Holder:
    """tests/db_lock_holder.py in its own process; `take(job_id)` returns once the lock is held."""

    def __init__(self, db_path, url, tracker_job):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.db_lock_holder", str(db_path), url,
                                      str(HOLD_SECONDS), tracker_job], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        self.taken = False
        self.lock = threading.Lock()

    def take(self, job_id):
        with self.lock:
            if self.taken:
                return
            self.proc.stdin.write(f"take {job_id}\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "taken"
            self.taken = True

    def log(self, timeout=HOLD_SECONDS + 60):
        out, _ = self.proc.communicate(timeout=timeout)
        lines = out.splitlines()
        assert lines and lines[-1] == "end", out[-2000:]
        return [json.loads(line) for line in lines[:-1]]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def fm():
    with Emulator() as emulator:
        yield emulator


def test_pages_and_streams_stay_live_while_another_program_holds_the_lock(server_factory, fm):
    server = server_factory(workers=1, env={"LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key",
                                            "LASTFM_API_SECRET": "s", "LASTFM_USERNAME": "rj"})
    url = server.url
    # The live tracker, started while Last.fm has nothing: it polls once, then idles, so its event
    # stream only sends heartbeats.
    r = requests.post(f"{url}/api/v1/services/tracker/start", timeout=30)
    assert r.status_code in (200, 202), r.text
    tracker_job = r.json()["job_id"]
    wait_for(lambda: "Last poll at" in (snapshot(url, tracker_job)["message"] or ""), "the tracker's first poll", 30)

    history = with_ties(2000)  # 10 pages, fetched oldest first: 10, 9, ...
    fm.add_listens("rj", history)
    holder = Holder(server.instance / "sillon.db", url, tracker_job)
    try:
        job = {}

        def lock_at_page_6(params):
            if params.get("method") == "user.getRecentTracks" and params.get("page") == "6":
                holder.take(job["id"])  # the page is answered once the lock is held

        fm.on_arrival = lock_at_page_6
        r = requests.post(f"{url}/api/v1/services/lastfm/import-history", timeout=30)
        assert r.status_code == 202, r.text
        job["id"] = r.json()["job_id"]
        wait_for(lambda: holder.taken, "Last.fm asked for page 6", 60)
        log = holder.log()
    finally:
        fm.on_arrival = None
        holder.close()

    whats = [e["what"] for e in log]
    assert "taken" in whats and "releasing" in whats, whats
    held = log[whats.index("taken") + 1:whats.index("releasing")]  # all of it answered under the lock
    errors = [e for e in log if e["what"] in ("page-error", "stream-error")]
    assert not errors, errors

    pages = [e for e in held if e["what"] == "page"]
    assert {e["path"] for e in pages} >= {"/journal", "/jobs", "/api/v1/jobs", f"/api/v1/jobs/{job['id']}"}, pages
    assert all(e["status"] == 200 for e in pages), pages
    # The job's own snapshot, asked while the lock is held, says what the import waits for.
    assert any(BUSY.fullmatch(e["message"] or "") for e in pages if e["path"] == f"/api/v1/jobs/{job['id']}"), pages
    # Both streams go on: the import's events say it waits.
    busy_events = [e for e in held if e["what"] == "event" and e["stream"] == "import" and BUSY.fullmatch(e["message"] or "")]
    assert busy_events, [e for e in held if e["what"] == "event"]
    # The idle tracker's stream is served too: heartbeats, or its snapshot sent again once its beat is
    # late (the tracker cannot write its beat under the lock either: the page says it is stalled).
    tracker = [e for e in held if e.get("stream") == "tracker" and e["what"] in ("heartbeat", "event")]
    assert tracker and all(e["what"] == "heartbeat" or e["status"] == "running" for e in tracker), held
    # A change asked for from a page meanwhile waits for the lock (it is not refused), then is made.
    write = next(e for e in log if e["what"] == "write")
    assert write["status"] == 200 and write["seq"] > whats.index("releasing"), write

    # Afterwards the import goes on by itself and ends with every listen, once.
    snap = wait_for(lambda: (s := snapshot(url, job["id"]))["status"] in FINAL and s, "the import's end", 120)
    assert snap["status"] == "completed", snap["message"]
    assert snap["result"]["imported"] == len(history) and snap["result"]["skipped"] == 0, snap["result"]
    listens = requests.get(f"{url}/api/v1/listens/export", params={"format": "json"}, timeout=60)
    assert listens.status_code == 200, listens.text
    requests.post(f"{url}/api/v1/services/tracker/stop", timeout=30)
    got = _exported_keys(listens)
    assert got == keys(history)


def _exported_keys(resp):
    """(played_at, artist, title) of every exported listen, sorted."""
    from datetime import datetime

    body = resp.json()
    items = body["items"] if isinstance(body, dict) else body
    return sorted((int(datetime.fromisoformat(i["played_at"].replace("Z", "+00:00")).timestamp()),
                   i["artist"], i["title"]) for i in items)
