"""Two gunicorn servers (one gevent worker each) on one database: every process sees every job.

Jobs started on server A are listed, read and streamed on server B; one job of a kind runs at a
time across both; when A is killed outright, B marks its job interrupted, frees its kind, and can
resume it from its last checkpoint with nothing lost and nothing doubled.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.conftest import FIXTURES, make_app, upload, wait_for_job
from tests.test_streams_server import (
    EventStream,
    assert_ordered,
    end_active_jobs,
    events_of,
    generated_csv,
    http,
    listens_total,
    snapshot,
    start_check,
    wait_status,
)

# Fast liveness beats, so a cancel asked on one server reaches the other's job quickly; a job
# whose process vanished is seen at once by its dead pid, or after JOB_STALE_SECONDS at worst.
ENV = {"SSE_HEARTBEAT_SECONDS": "0.5", "JOB_HEARTBEAT_SECONDS": "0.5", "JOB_STALE_SECONDS": "6",
       "IMPORT_BATCH_SIZE": "200"}
SIMPLE_ROWS = 5  # tests/fixtures/lastfm_simple.csv: five readable listens


@pytest.fixture
def two(server_factory):
    """Servers A and B on the same database; jobs left running are ended at teardown."""
    a, b = server_factory(env=ENV), server_factory(env=ENV)
    yield a, b
    for server in (a, b):
        if server.proc.poll() is None:
            end_active_jobs(server.url)


def upload_to(url, *files):
    r = http.post(f"{url}/api/v1/imports", files=[("files", f) for f in files], timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def kill(server):
    """SIGKILL the gunicorn master and its worker: no clean-up code runs anywhere."""
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(5)


def test_a_job_started_on_a_is_listed_read_and_streamed_on_b(two):
    a, b = two
    job = start_check(a.url, duration=1.5, rate=40)
    job_id = job["job_id"]

    listed = http.get(f"{b.url}/api/v1/jobs", timeout=5).json()["items"]
    mine = [j for j in listed if j["id"] == job_id]
    assert mine and mine[0]["kind"] == "progress_check" and mine[0]["status"] in ("queued", "running")
    assert mine[0]["events_url"] == job["events_url"]
    snap = snapshot(b.url, job_id)
    assert snap["id"] == job_id and snap["kind"] == "progress_check"

    with EventStream(b.url + job["events_url"]) as stream:
        events = events_of(stream.read_to_end(timeout=10))
    progress, done = assert_ordered(events)
    assert len(progress) >= 5, "B did not stream A's changes as they happened"
    last = progress[-1]["data"]
    assert last["status"] == "completed" and last["counters"] == {"updates": 60}
    assert last["result"]["updates"] == 60
    assert done["data"]["status"] == "completed" and done["data"]["version"] == last["version"]
    assert snapshot(a.url, job_id) == snapshot(b.url, job_id) == last


def test_an_upload_imported_by_a_is_streamed_and_counted_on_b(two, tmp_path):
    a, b = two
    generated_rows = 3000
    job = upload_to(a.url, ("lastfm_simple.csv", (FIXTURES / "lastfm_simple.csv").read_bytes()),
                    ("generated.csv", generated_csv(generated_rows)))

    with EventStream(b.url + job["events_url"]) as stream:
        events = events_of(stream.read_to_end(timeout=30))
    progress, done = assert_ordered(events)
    assert done["data"]["status"] == "completed" and done["data"]["redirect_url"] == "/journal"
    last = progress[-1]["data"]
    expected = SIMPLE_ROWS + generated_rows
    assert last["counters"]["imported"] == expected and last["counters"].get("errors", 0) == 0
    assert last["result"]["imported"] == expected and last["result"]["skipped"] == 0
    assert [f["rows"] for f in last["result"]["files"]] == [SIMPLE_ROWS, generated_rows]
    saving = [e["data"]["done"] for e in progress if e["data"]["current_step"] == "save"]
    assert saving == sorted(saving) and all(d <= expected for d in saving)

    assert listens_total(b.url) == expected
    assert listens_total(a.url) == expected
    assert [j["status"] for j in http.get(f"{b.url}/api/v1/jobs", timeout=5).json()["items"]
            if j["id"] == job["job_id"]] == ["completed"]


def test_one_job_of_a_kind_across_processes(two):
    a, b = two
    running = start_check(a.url, duration=30, rate=2)
    r = http.post(f"{b.url}/api/v1/diagnostics/progress-check", params={"duration": 1, "rate": 5}, timeout=5)
    assert r.status_code == 409
    assert r.json()["job_id"] == running["job_id"] and r.json()["events_url"] == running["events_url"]
    # Another kind is not held back.
    other = upload_to(b.url, ("lastfm_simple.csv", (FIXTURES / "lastfm_simple.csv").read_bytes()))
    assert wait_status(b.url, other["job_id"])["status"] == "completed"

    # A cancel asked on B reaches A's job through the shared jobs table.
    with EventStream(b.url + running["events_url"]) as stream:
        before = (stream.next_event()["data"].get("counters") or {}).get("updates", 0)
        assert http.post(f"{b.url}/api/v1/jobs/{running['job_id']}/cancel", timeout=5).status_code == 202
        events = events_of(stream.read_to_end(timeout=10))
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "cancelled"
    # Heard at A's next check (one update at 2 a second), not at its next heartbeat.
    assert (events[-1]["data"].get("counters") or {}).get("updates", 0) <= before + 2
    assert snapshot(a.url, running["job_id"])["status"] == "cancelled"

    again = start_check(b.url, duration=30, rate=2)  # the kind is free again
    assert http.post(f"{a.url}/api/v1/diagnostics/progress-check", timeout=5).json()["job_id"] == again["job_id"]


def test_a_killed_process_leaves_its_job_to_the_other_which_continues_it_by_itself(two):
    a, b = two
    lost = start_check(a.url, duration=60, rate=5)
    lost_id = lost["job_id"]
    wait_status(b.url, lost_id, ("running",))

    with EventStream(b.url + lost["events_url"], read_timeout=5) as watcher:
        first = watcher.next_event()
        assert first["data"]["status"] == "running"
        kill(a)
        # B's reaper, on its own timer, sees A's dead pid and continues the job: queued, then running again.
        seen = []
        while not (seen and seen[-1]["data"]["status"] == "running" and len(seen) > 1):
            seen.append(watcher.next_event())
    statuses = [e["data"]["status"] for e in seen]
    assert "queued" in statuses and "interrupted" not in statuses, statuses
    assert all(later["id"] > earlier["id"] for earlier, later in zip(seen, seen[1:], strict=False))
    listed = http.get(f"{b.url}/api/v1/jobs", params={"status": "running"}, timeout=5).json()["items"]
    assert [j["id"] for j in listed] == [lost_id]
    page = requests.get(f"{b.url}/progress/{lost_id}", timeout=5).text  # not `http`: a page visit sets a session (CSRF)
    assert "stopped" in page and "continued by server process on" in page
    assert http.post(f"{b.url}/api/v1/jobs/{lost_id}/cancel", timeout=5).status_code == 202
    assert wait_status(b.url, lost_id, timeout=10)["status"] == "cancelled"


def test_resume_waits_for_the_running_job_of_its_kind(two):
    a, b = two
    old = start_check(a.url, duration=30, rate=5)
    assert http.post(f"{a.url}/api/v1/jobs/{old['job_id']}/cancel", timeout=5).status_code == 202
    assert wait_status(b.url, old["job_id"], timeout=5)["status"] == "cancelled"  # resumable now
    running = start_check(b.url, duration=30, rate=5)

    for server in (a, b):  # the job of its kind runs on B: neither process resumes the old one
        r = http.post(f"{server.url}/api/v1/jobs/{old['job_id']}/resume", timeout=5)
        assert r.status_code == 409, f"{r.status_code} {r.text[:200]}"
        assert r.json()["job_id"] == running["job_id"]
    assert snapshot(b.url, old["job_id"])["status"] == "cancelled"  # left as it was
    assert wait_status(b.url, running["job_id"], statuses={"running"})["status"] == "running"


def test_a_killed_import_resumes_on_the_other_process_with_nothing_lost_or_doubled(two, tmp_path, migrated_template):
    rows = 20000
    data = generated_csv(rows, "Resumed Artist")

    # What a clean, uninterrupted import of the same file gives (in-process, its own database).
    clean_app = make_app(tmp_path / "clean", migrated_template)
    try:
        r = upload(clean_app.test_client(), ("big.csv", data))
        assert r.status_code == 202, r.get_data(as_text=True)
        clean = wait_for_job(clean_app, r.get_json()["job_id"], timeout=60)
        assert clean["status"] == "completed"
    finally:
        with clean_app.app_context():
            from modules.db import db
            db.engine.dispose()
    clean_imported = clean["result"]["imported"]
    assert clean_imported == rows

    a, b = two
    job = upload_to(a.url, ("big.csv", data))
    job_id = job["job_id"]
    deadline = time.monotonic() + 20
    while True:  # watched from B, which the import does not slow down
        snap = snapshot(b.url, job_id)
        if snap["current_step"] == "save" and snap["done"] > 0:
            break
        assert snap["status"] in ("queued", "running"), snap["status"]
        assert time.monotonic() < deadline, "the import never reached its save step"
        time.sleep(0.02)
    kill(a)
    killed_at = snapshot(b.url, job_id)

    # Nobody presses Resume: B continues the import from its checkpoint by itself.
    with EventStream(b.url + job["events_url"], last_event_id=killed_at["version"]) as stream:
        events = events_of(stream.read_to_end(timeout=120))
    progress, done = assert_ordered(events)
    assert all(e["data"]["status"] in ("running", "queued", "completed") for e in progress)
    assert done["data"]["status"] == "completed" and done["data"]["redirect_url"] == "/journal"
    result = progress[-1]["data"]["result"]
    assert result["imported"] == clean_imported and result["skipped"] == 0 and result["errors"] == 0
    assert listens_total(b.url) == clean_imported
