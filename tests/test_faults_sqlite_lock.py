"""SQLite busy or locked: an import's batches are retried, never lost.

Another connection really holds the database's write lock (BEGIN IMMEDIATE on the same file) for
longer than the app's busy timeout while a Last.fm import writes. The import's batch (one
transaction) is rolled back and tried again whole after a doubling wait, and the progress says so;
once the lock is released everything is saved. A lock held past every try ends the job with a
message saying what happened and what was kept; the job resumes to the full data.

The lock is taken from the emulator's thread the moment a chosen page is asked for, so it always
falls mid-import. The timers are tuned short here (a statement waits 0.05 s for the lock, so the
transaction-level retries show); test_faults_db_lock_server.py is the companion with the shipped
settings on a real gunicorn gevent server.
"""
from __future__ import annotations

import re
import sqlite3
import threading

import pytest

from tests.conftest import wait_for_job
from tests.test_lastfm_import import (
    Emulator,
    app_factory,
    job_rows,
    keys,
    oldest,
    record_messages,
    start,
    stored,
    wait_until,
    with_ties,
)

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def fm():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def new_app(tmp_path, migrated_template, fm):
    yield from app_factory(tmp_path, migrated_template, fm)

FAST = {"PROGRESS_STORE": "memory", "SQLITE_BUSY_TIMEOUT_SECONDS": 0.05, "DB_RETRY_BASE_SECONDS": 0.05,
        "JOB_HEARTBEAT_SECONDS": 0.2}


class Locker:
    """Holds the write lock of the app's SQLite file from another connection (another program)."""

    def __init__(self, path):
        self.conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self.held = threading.Event()

    def take(self):
        self.conn.execute("BEGIN IMMEDIATE")
        self.held.set()

    def release(self):
        self.conn.execute("ROLLBACK")
        self.conn.close()


def lock_at_page(fm, locker, page):
    """Take the lock as Last.fm is asked for `page` (pages come oldest first: 10, 9, ...)."""

    def arrival(params):
        if params.get("method") == "user.getRecentTracks" and params.get("page") == str(page) \
                and not locker.held.is_set():
            locker.take()

    fm.on_arrival = arrival


def snapshot(client, job_id):
    return client.get(f"/api/v1/jobs/{job_id}").get_json()


def test_a_locked_database_is_waited_out_and_every_batch_is_saved(new_app, fm):
    history = with_ties(2000)  # 10 pages of 200
    fm.add_listens("rj", history)
    app = new_app(DB_WRITE_ATTEMPTS=60, LASTFM_CONCURRENCY=1, **FAST)
    messages = record_messages(app)
    locker = Locker(app.instance_path + "/sillon.db")
    lock_at_page(fm, locker, 6)
    client = app.test_client()
    job_id = start(client)

    # The writer meets the lock and retries: two tries seen, with the wait shown each time.
    waiting = wait_until(lambda: [m for m in messages if "locked" in m and "(try 3 of 60)" in m], timeout=30)
    assert re.fullmatch(r"The database is locked by another writer, waiting \d+(\.\d)? s \(try 3 of 60\)",
                        waiting[0]), waiting
    during = snapshot(client, job_id)
    assert during["status"] == "running" and during["counters"]["db_retries"] >= 3
    kept_while_locked = stored(app)
    assert 0 < len(kept_while_locked) < len(history)
    assert kept_while_locked == oldest(fm, len(kept_while_locked))  # whole pages, oldest first

    locker.release()
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)  # nothing lost, nothing doubled
    assert snap["result"]["imported"] == len(history)
    # The waits doubled: 0.05, 0.1, 0.2, ... (shown rounded to tenths below a second).
    shown = [float(re.search(r"waiting ([\d.]+) s", m).group(1)) for m in messages if "locked" in m]
    assert shown == sorted(shown) and shown[-1] > shown[0]


def test_a_lock_held_past_every_try_ends_the_job_keeping_what_was_saved(new_app, fm):
    history = with_ties(2000)
    fm.add_listens("rj", history)
    app = new_app(DB_WRITE_ATTEMPTS=3, LASTFM_CONCURRENCY=1, **FAST)
    locker = Locker(app.instance_path + "/sillon.db")
    lock_at_page(fm, locker, 6)
    client = app.test_client()
    job_id = start(client)

    ended = wait_until(lambda: (s := snapshot(client, job_id))["status"] in ("error", "completed") and s,
                       timeout=30)
    assert ended["status"] == "error"
    message = ended["message"]
    assert "database is locked" in message and "after 3 tries" in message, message
    assert "saved before is kept" in message and "resume" in message, message
    locker.release()
    snap = wait_for_job(app, job_id, timeout=60)  # its end is recorded once the lock is gone
    assert snap["status"] == "error"
    assert [r.status for r in job_rows(app) if r.id == job_id] == ["error"]

    kept = stored(app)
    assert 0 < len(kept) < len(history) and len(kept) % 200 == 0
    assert kept == oldest(fm, len(kept))
    checkpoint = next(r.checkpoint for r in job_rows(app) if r.id == job_id)
    assert checkpoint["imported"] == len(kept)  # the checkpoint is exactly what was committed

    fm.on_arrival = None
    r = client.post(f"/api/v1/jobs/{job_id}/resume")
    assert r.status_code == 202, r.get_json()
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["result"]["imported"] == len(history)


def test_an_error_that_waiting_cannot_fix_is_not_retried(app):
    """A constraint or syntax error is not "busy": transient_reason says so, and it is raised at once."""
    import sqlalchemy as sa

    from modules.db import db, transient_reason

    with app.app_context():
        with pytest.raises(sa.exc.DBAPIError) as caught:
            with db.engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))
        assert transient_reason(caught.value) is None


def test_an_upload_waits_out_a_lock_taken_while_it_saves(tmp_path, migrated_template):
    """The same for an upload: its files' batches (under the job's write lock) wait, then all is saved."""
    import time

    from tests.conftest import make_app, upload
    from tests.test_streams_server import generated_csv

    rows = 30000
    app = make_app(tmp_path / "upload", migrated_template,
                   environ={**FAST, "DB_WRITE_ATTEMPTS": 60, "IMPORT_BATCH_SIZE": 200})
    try:
        messages = record_messages(app)
        client = app.test_client()
        r = upload(client, ("a.csv", generated_csv(rows // 2, "Locked A")),
                   ("b.csv", generated_csv(rows // 2, "Locked B", start=(2012, 1, 1))))
        assert r.status_code == 202
        job_id = r.get_json()["job_id"]
        deadline = time.monotonic() + 60
        while True:  # lock once the save step has committed something
            snap = snapshot(client, job_id)
            if snap["current_step"] == "save" and snap["counters"].get("imported", 0) > 0:
                break
            assert snap["status"] in ("queued", "running") and time.monotonic() < deadline, snap["status"]
            time.sleep(0.002)
        locker = Locker(app.instance_path + "/sillon.db")
        locker.take()
        try:
            wait_until(lambda: [m for m in messages if "locked" in m and "(try 3 of 60)" in m], timeout=30)
            assert snapshot(client, job_id)["status"] == "running"
        finally:
            locker.release()
        snap = wait_for_job(app, job_id, timeout=120)
        assert snap["status"] == "completed", snap["message"]
        assert snap["result"]["imported"] == rows and snap["result"]["errors"] == 0
        assert len(stored(app)) == rows
    finally:
        with app.app_context():
            from modules.db import db
            db.engine.dispose()


def test_a_cancel_is_heard_while_a_statement_waits_for_the_lock(new_app, fm):
    """With the shipped 30 s lock wait, the batch waits in Python; a cancel ends the job while the
    lock is still held, and what was committed before stays."""
    history = with_ties(2000)
    fm.add_listens("rj", history)
    app = new_app(LASTFM_CONCURRENCY=1, PROGRESS_STORE="memory", JOB_HEARTBEAT_SECONDS=0.2)
    messages = record_messages(app)
    locker = Locker(app.instance_path + "/sillon.db")
    lock_at_page(fm, locker, 6)
    client = app.test_client()
    job_id = start(client)
    try:
        wait_until(lambda: [m for m in messages if m.startswith("Database busy, waiting ")], timeout=30)
        # The cancel's own record waits for the lock too: asked from another thread (another page).
        answers = []
        asking = threading.Thread(target=lambda: answers.append(app.test_client().post(f"/api/v1/jobs/{job_id}/cancel")))
        asking.start()
        snap = wait_until(lambda: (s := snapshot(client, job_id))["status"] in ("cancelled", "error", "completed")
                          and s, timeout=20)
        assert snap["status"] == "cancelled", snap["message"]  # ended while the lock is still held
        assert not answers  # the cancel's record is still waiting for the lock
    finally:
        locker.release()
    asking.join(60)
    assert answers and answers[0].status_code == 202, answers
    kept = stored(app)
    assert 0 < len(kept) < len(history) and len(kept) % 200 == 0 and kept == oldest(fm, len(kept))


def test_a_change_from_a_page_past_the_lock_wait_answers_503(new_app, fm):
    app = new_app(**FAST)
    locker = Locker(app.instance_path + "/sillon.db")
    locker.take()
    client = app.test_client()
    try:
        r = client.post("/api/v1/services/tracker/interval", query_string={"seconds": 300})
        assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.get_data(as_text=True)
        assert "The database is busy" in r.get_json()["error"] and "Nothing was changed" in r.get_json()["error"]
    finally:
        locker.release()
    r = client.post("/api/v1/services/tracker/interval", query_string={"seconds": 300})
    assert r.status_code == 200 and r.get_json()["interval_seconds"] == 300, r.get_json()
