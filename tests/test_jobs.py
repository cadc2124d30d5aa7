"""Jobs: one of a kind at a time, cancel within a batch, interrupted detection, resume."""
import os
import socket
import time

import pytest
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


def add_orphan(app, job_id, owner, beat, **values):
    """A running job whose runner is gone, as a killed process leaves it."""
    with app.app_context():
        db.session.add(Job(id=job_id, kind="progress_check", status="running", active_kind="progress_check",
                           params={"duration": 0.2, "rate": 10}, owner=owner, heartbeat_at=beat,
                           created_at=beat, **values))
        db.session.commit()
        app.extensions["sillon"]["progress_store"].publish(
            {"id": job_id, "kind": "progress_check", "status": "running", "version": 7, "message": "working"})


def job_row(app, job_id):
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def test_a_job_whose_process_died_is_continued_by_itself(app, client):
    job_id = "deadbeef" * 4
    dead = f"{socket.gethostname()}:999999999"
    add_orphan(app, job_id, dead, time.time())
    snap = client.get(f"/api/v1/jobs/{job_id}").get_json()  # the reaper notices the dead pid at once
    assert snap["status"] in ("queued", "running") and snap["version"] > 7
    final = wait_for_job(app, job_id)
    assert final["status"] == "completed" and final["counters"] == {"updates": 2}
    job = job_row(app, job_id)
    assert job.generation == 1 and job.takeover_streak == 1 and job.active_kind is None
    assert [t["from"] for t in job.takeovers] == [dead]
    assert job.takeovers[0]["to"].endswith(f":{os.getpid()}") and job.takeovers[0]["done"] is None


def test_stale_heartbeat_from_another_host_is_continued_here(app, client, caplog):
    job_id = "cafe" * 8
    add_orphan(app, job_id, "elsewhere:1", time.time() - 3600)
    with caplog.at_level("WARNING", logger="modules.jobs.reaper"):
        client.get(f"/api/v1/jobs/{job_id}")
    # the log names the process that stopped, not this one (which owns the job once it is taken)
    assert [r.getMessage() for r in caplog.records if r.name == "modules.jobs.reaper"] == [
        f"job {job_id} (progress_check): server process on elsewhere (pid 1) stopped; "
        "continuing it from its checkpoint (takeover 1 in a row)"]
    assert wait_for_job(app, job_id)["status"] == "completed"
    assert job_row(app, job_id).takeovers[0]["from"] == "elsewhere:1"
    page = client.get(f"/progress/{job_id}").get_data(as_text=True)
    assert "Server process on elsewhere (pid 1) stopped; continued by server process on" in page


def test_takeovers_read_in_the_pages_language(app, client):
    """The job page and the jobs history word each takeover in English or French, numbers and step too."""
    job_id = "feed" * 8
    now = time.time()
    takeovers = [{"from": "elsewhere:12", "to": "celery@there:14", "done": 5200, "total": 20000, "step": "save"},
                 {"from": "celery@there:14", "to": None, "done": None}]
    with app.app_context():
        db.session.add(Job(id=job_id, kind="upload_import", status="interrupted", params={}, owner=None,
                           created_at=now, started_at=now, finished_at=now + 1, takeovers=takeovers))
        db.session.commit()
    english = ("Server process on elsewhere (pid 12) stopped at 5,200 of 20,000 (Save); "
               "continued by Celery worker on there (pid 14)")
    for path in (f"/progress/{job_id}", "/jobs"):
        page = client.get(path).get_data(as_text=True)
        assert english in page and "Celery worker on there (pid 14) stopped<" in page, path
    client.set_cookie("lang", "fr")
    french = ("Le processus serveur sur elsewhere (pid 12) s’est arrêté à 5\u202f200 sur 20\u202f000 (Enregistrer) ; "
              "repris par le worker Celery sur there (pid 14)")
    for path in (f"/progress/{job_id}", "/jobs"):
        page = client.get(path).get_data(as_text=True)
        assert french.replace("\u202f", "\xa0") in page.replace("\u202f", "\xa0"), path
        assert "continued by" not in page and "Le worker Celery sur there (pid 14) s’est arrêté<" in page, path


def test_a_beat_from_a_live_host_is_left_alone(app, client):
    job_id = "beef" * 8
    add_orphan(app, job_id, "elsewhere:1", time.time())
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "running"
    assert job_row(app, job_id).generation == 0


def test_a_late_beat_shows_as_stalled_before_the_job_is_taken_over(app, client):
    job_id = "feed" * 8
    add_orphan(app, job_id, "elsewhere:1", time.time() - 12)  # two beats (5 s) missed, not yet stale (30 s)
    snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert snap["status"] == "running" and snap["stalled_seconds"] >= 12
    assert job_row(app, job_id).generation == 0


def test_with_auto_resume_off_a_dead_process_leaves_an_interrupted_job(tmp_path, migrated_template):
    app = make_app(tmp_path / "off", migrated_template, environ={"JOB_AUTO_RESUME": "false"})
    client = app.test_client()
    job_id = "deadbeef" * 4
    add_orphan(app, job_id, f"{socket.gethostname()}:999999999", time.time())
    snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert snap["status"] == "interrupted" and snap["version"] == 8
    assert "resume" in snap["message"]
    assert job_row(app, job_id).generation == 1  # its runner, were it alive, writes nothing more
    assert start_check(client, duration=0.1).status_code == 202  # the kind is free


def test_a_job_that_keeps_killing_its_runner_stops_with_a_message(app, client):
    job_id = "dead" * 8
    add_orphan(app, job_id, "elsewhere:1", time.time() - 3600, takeover_streak=3, generation=5)
    snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert snap["status"] == "error"
    assert "died 4 times in a row" in snap["message"] and "Resume it" in snap["message"]
    job = job_row(app, job_id)
    assert job.status == "error" and job.active_kind is None and job.generation == 6
    assert client.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202  # a person may try again
    assert wait_for_job(app, job_id)["status"] == "completed"
    assert job_row(app, job_id).takeover_streak == 0


def test_a_message_of_an_old_generation_does_nothing(app, client):
    from modules.jobs import lifecycle

    job_id = start_check(client, duration=30, rate=5).get_json()["job_id"]
    client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert wait_for_job(app, job_id)["status"] == "cancelled"
    # A broker delivering the job's first message again, late: the job stays cancelled.
    assert lifecycle.execute(app, job_id, 0) == "not queued"
    assert lifecycle.execute(app, job_id, None) == "not queued"
    job = job_row(app, job_id)
    assert job.status == "cancelled" and job.active_kind is None
    with app.app_context():
        assert app.extensions["sillon"]["progress_store"].get(job_id)["status"] == "cancelled"


def saved_listens(app):
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(Listen)).scalar()


def test_a_runner_whose_job_was_taken_over_stops_at_its_next_batch_and_writes_nothing(tmp_path, migrated_template):
    app = make_app(tmp_path / "t", migrated_template, environ={"IMPORT_BATCH_SIZE": 100})
    job_id = upload(app.test_client(), ("big.csv", simple_csv(30000))).get_json()["job_id"]
    store = app.extensions["sillon"]["progress_store"]
    with app.app_context():
        wait_until(lambda: (store.get(job_id) or {}).get("counters", {}).get("imported", 0) > 0)
        # What another process's reaper does when this one's beats could not commit.
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(
            generation=Job.generation + 1, status="interrupted", active_kind=None))
        db.session.commit()
    app.extensions["sillon"]["runner"].join(job_id, 60)
    job = job_row(app, job_id)
    assert job.status == "interrupted" and job.generation == 1 and job.finished_at is None
    stored = saved_listens(app)
    assert 0 < stored < 30000
    assert stored == sum(f["imported"] for f in job.checkpoint["files"].values())  # no batch past the takeover


def test_a_cancel_asked_in_another_process_is_heard_within_a_batch(tmp_path, migrated_template):
    # No heartbeat before the job ends: only check() reading the job's record can hear the cancel.
    app = make_app(tmp_path / "c", migrated_template,
                   environ={"IMPORT_BATCH_SIZE": 100, "JOB_HEARTBEAT_SECONDS": 600, "JOB_STALE_SECONDS": 1800})
    job_id = upload(app.test_client(), ("big.csv", simple_csv(30000))).get_json()["job_id"]
    store = app.extensions["sillon"]["progress_store"]
    with app.app_context():
        wait_until(lambda: (store.get(job_id) or {}).get("counters", {}).get("imported", 0) > 0)
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(cancel_requested=True))
        db.session.commit()
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "cancelled"
    stored = saved_listens(app)
    assert 0 < stored < 30000 and stored == snap["counters"]["imported"]


def test_resume_of_an_unknown_or_running_job(app, client):
    assert client.post("/api/v1/jobs/nope/resume").status_code == 404
    running = start_check(client, duration=5).get_json()["job_id"]
    assert client.post(f"/api/v1/jobs/{running}/resume").status_code == 409
    client.post(f"/api/v1/jobs/{running}/cancel")
    wait_for_job(app, running)


def test_startup_continues_jobs_of_dead_processes(tmp_path, migrated_template):
    app = make_app(tmp_path / "x", migrated_template)
    with app.app_context():
        db.session.add(Job(id="a" * 32, kind="progress_check", status="running", active_kind="progress_check",
                           params={"duration": 0.2, "rate": 10}, owner=f"{socket.gethostname()}:999999998",
                           heartbeat_at=time.time(), created_at=time.time()))
        db.session.add(Job(id="b" * 32, kind="upload_import", status="interrupted", active_kind=None,
                           params={"files": []}, owner="elsewhere:3", heartbeat_at=time.time() - 99,
                           created_at=time.time() - 99, message="The process running this job stopped"))
        db.session.commit()
        db.engine.dispose()
    restarted = make_app(tmp_path / "x", migrated_template)
    assert wait_for_job(restarted, "a" * 32)["status"] == "completed"
    wait_for_job(restarted, "b" * 32)  # interrupted by a death: run again (its empty upload then fails on its own)
    again = job_row(restarted, "b" * 32)
    assert again.generation == 1 and again.takeovers[0]["from"] == "elsewhere:3" and again.takeovers[0]["to"]


def test_settings_that_would_break_recovery_are_refused_at_start(tmp_path, migrated_template):
    with pytest.raises(RuntimeError, match="JOB_STALE_SECONDS .10. must be at least three JOB_HEARTBEAT_SECONDS .5."):
        make_app(tmp_path / "s", migrated_template, environ={"JOB_STALE_SECONDS": 10})
    with pytest.raises(RuntimeError, match="JOB_HEARTBEAT_SECONDS must be above 0"):
        make_app(tmp_path / "s", migrated_template, environ={"JOB_HEARTBEAT_SECONDS": 0})


def test_jobs_history_lists_finished_jobs(app, client):
    job_id = upload(client, ("a.csv", simple_csv(5))).get_json()["job_id"]
    wait_for_job(app, job_id)
    items = client.get("/api/v1/jobs").get_json()["items"]
    assert items[0]["id"] == job_id and items[0]["status"] == "completed"
    assert items[0]["result"]["imported"] == 5 and items[0]["duration_seconds"] >= 0
    page = client.get("/jobs").get_data(as_text=True)
    assert f"/progress/{job_id}" in page and '<td class="num" data-count="imported">5</td>' in page
