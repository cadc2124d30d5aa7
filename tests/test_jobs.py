"""Jobs: one of a kind at a time, cancel within a batch, interrupted detection, resume."""
import socket
import time

import sqlalchemy as sa

from modules.db import db
from modules.models import Job, Listen
from tests.conftest import make_app, upload, wait_for_job
from tests.test_uploads import simple_csv


def start_check(client, duration=5, rate=20):
    return client.post(f"/api/v1/diagnostics/progress-check?duration={duration}&rate={rate}")


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_second_start_of_a_kind_answers_409_with_the_running_job(app, client):
    first = start_check(client, duration=10)
    assert first.status_code == 202
    second = start_check(client)
    assert second.status_code == 409
    assert second.get_json()["job_id"] == first.get_json()["job_id"]
    # another kind may run meanwhile
    other = upload(client, ("a.csv", simple_csv(10)))
    assert other.status_code == 202
    wait_for_job(app, other.get_json()["job_id"])
    client.post(f"/api/v1/jobs/{first.get_json()['job_id']}/cancel")
    snap = wait_for_job(app, first.get_json()["job_id"])
    assert snap["status"] == "cancelled"
    assert start_check(client, duration=0.1).status_code == 202


def test_cancel_stops_an_import_within_one_batch_and_keeps_what_was_saved(tmp_path, migrated_template):
    app = make_app(tmp_path / "i", migrated_template, environ={"IMPORT_BATCH_SIZE": 100})
    client = app.test_client()
    job_id = upload(client, ("big.csv", simple_csv(30000))).get_json()["job_id"]
    store = app.extensions["sillon"]["progress_store"]
    with app.app_context():
        wait_until(lambda: (store.get(job_id) or {}).get("counters", {}).get("imported", 0) > 0)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    snap = wait_for_job(app, job_id, timeout=180)
    assert snap["status"] == "cancelled"
    with app.app_context():
        stored = db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar()
        checkpoint = db.session.get(Job, job_id).checkpoint
    assert stored == snap["counters"]["imported"] == sum(f["imported"] for f in checkpoint["files"].values())
    assert 0 < stored < 30000
    # resume finishes the rest: the same data as an uninterrupted import
    r = client.post(f"/api/v1/jobs/{job_id}/resume")
    assert r.status_code == 202
    final = wait_for_job(app, job_id, timeout=180)
    assert final["status"] == "completed"
    assert final["version"] > snap["version"]  # stream ids keep growing across the resume
    assert final["counters"]["imported"] == 30000 and final["counters"]["skipped"] == 0
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar() == 30000


def test_job_whose_process_died_is_marked_interrupted_and_frees_its_kind(app, client):
    job_id = "deadbeef" * 4
    store = app.extensions["sillon"]["progress_store"]
    with app.app_context():
        db.session.add(Job(id=job_id, kind="progress_check", status="running", active_kind="progress_check",
                           params={"duration": 0.2, "rate": 10}, owner=f"{socket.gethostname()}:999999999",
                           heartbeat_at=time.time(), created_at=time.time()))
        db.session.commit()
        store.publish({"id": job_id, "kind": "progress_check", "status": "running", "version": 7,
                       "message": "working"})
    snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert snap["status"] == "interrupted" and snap["version"] == 8
    assert "resume" in snap["message"]
    assert start_check(client, duration=0.1).status_code == 202  # the kind is free


def test_stale_heartbeat_from_another_host_is_interrupted(app, client):
    job_id = "cafe" * 8
    with app.app_context():
        db.session.add(Job(id=job_id, kind="progress_check", status="running", active_kind="progress_check",
                           params={}, owner="elsewhere:1", heartbeat_at=time.time() - 3600,
                           created_at=time.time() - 3600))
        db.session.commit()
        app.extensions["sillon"]["progress_store"].publish(
            {"id": job_id, "kind": "progress_check", "status": "running", "version": 1})
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "interrupted"
    with app.app_context():
        assert db.session.get(Job, job_id).active_kind is None


def test_resume_of_an_unknown_or_running_job(app, client):
    assert client.post("/api/v1/jobs/nope/resume").status_code == 404
    running = start_check(client, duration=5).get_json()["job_id"]
    assert client.post(f"/api/v1/jobs/{running}/resume").status_code == 409
    client.post(f"/api/v1/jobs/{running}/cancel")
    wait_for_job(app, running)


def test_startup_marks_jobs_of_dead_processes_interrupted(tmp_path, migrated_template):
    app = make_app(tmp_path / "x", migrated_template)
    with app.app_context():
        db.session.add(Job(id="a" * 32, kind="upload_import", status="running", active_kind="upload_import",
                           params={}, owner=f"{socket.gethostname()}:999999998", heartbeat_at=time.time(),
                           created_at=time.time()))
        db.session.commit()
        db.engine.dispose()
    restarted = make_app(tmp_path / "x", migrated_template)
    with restarted.app_context():
        assert db.session.get(Job, "a" * 32).status == "interrupted"


def test_jobs_history_lists_finished_jobs(app, client):
    job_id = upload(client, ("a.csv", simple_csv(5))).get_json()["job_id"]
    wait_for_job(app, job_id)
    items = client.get("/api/v1/jobs").get_json()["items"]
    assert items[0]["id"] == job_id and items[0]["status"] == "completed"
    assert items[0]["result"]["imported"] == 5 and items[0]["duration_seconds"] >= 0
    page = client.get("/jobs").get_data(as_text=True)
    assert f"/progress/{job_id}" in page and '<td class="num" data-count="imported">5</td>' in page
