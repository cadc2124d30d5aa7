"""Multi-file uploads as a Celery group (JOB_RUNNER=celery), on real Redis and the suite's database.

These tests run the upload job's parent task in this process (lifecycle.execute, as a Celery
worker does) with no worker consuming the test's queue: the group's messages stay in Redis, where
the test reads them, and the parent saves every part itself (what it does with parts nobody has
taken). The scale-out tests (tests/test_scale_out.py) run the same group across two real workers.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from modules.db import db
from modules.jobs import lifecycle, upload_group
from modules.jobs import owner as owners
from modules.models import Job, Listen
from tests.conftest import make_app, upload
from tests.test_streams_server import generated_csv

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(scope="module")
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        message = f"Redis on 127.0.0.1:6379 is not reachable ({exc}); the upload group tests need it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: not skipping)", pytrace=False)
        pytest.skip(message)
    return client


@pytest.fixture
def queue(redis_client):
    name = f"sillon-group-test-{uuid.uuid4().hex[:8]}"
    yield name
    redis_client.delete(name)


def group_app(tmp_path, migrated_template, queue, name="group", **environ):
    return make_app(tmp_path / name, migrated_template, environ={
        "JOB_RUNNER": "celery", "PROGRESS_STORE": "redis", "REDIS_URL": REDIS_URL, "CELERY_QUEUE": queue,
        "IMPORT_BATCH_SIZE": 100, "JOB_HEARTBEAT_SECONDS": 0.5, "JOB_STALE_SECONDS": 3, "TRACKER_AUTOSTART": "false", **environ})


def spotify_cut_short(n):
    items = [{"ts": f"2021-02-{1 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", "ms_played": 200000,
              "master_metadata_track_name": f"Song {i}", "master_metadata_album_artist_name": "Cut Artist",
              "master_metadata_album_album_name": "Cut Album", "spotify_track_uri": f"spotify:track:{i}"}
             for i in range(n)]
    text = json.dumps(items)
    return text[: text.index(f'"Song {n - 10}"')].encode()  # ends inside an item


def files():
    return [("one.csv", generated_csv(700, "Group One")),
            ("two.csv", generated_csv(500, "Group Two", start=(2012, 5, 1)) + b"Broken,Row,Here,not a date\n"),
            ("cut.json", spotify_cut_short(400))]


def listens_of(app):
    with app.app_context():
        rows = db.session.execute(sa.select(Listen.played_at, Listen.artist_key, Listen.title_key, Listen.source))
        return sorted(tuple(r) for r in rows)


def queued_tasks(redis_client, queue):
    return [json.loads(m)["headers"]["task"] for m in redis_client.lrange(queue, 0, -1)]


def run_here(app, job_id):
    """Run the job as a Celery worker would (the message the server sent stays in the queue)."""
    lifecycle.execute(app, job_id)
    with app.app_context():
        return app.extensions["sillon"]["progress_store"].get(job_id), db.session.get(Job, job_id).checkpoint


def test_a_group_upload_equals_the_same_upload_in_one_process(tmp_path, migrated_template, redis_client, queue):
    threads_app = make_app(tmp_path / "threads", migrated_template, environ={"IMPORT_BATCH_SIZE": 100})
    with threads_app.test_client() as client:
        job = upload(client, *files()).get_json()["job_id"]
    threads_app.extensions["sillon"]["runner"].join(job, 60)
    with threads_app.app_context():
        expected = threads_app.extensions["sillon"]["progress_store"].get(job)
    assert expected["status"] == "completed"

    app = group_app(tmp_path, migrated_template, queue)
    job_id = upload(app.test_client(), *files()).get_json()["job_id"]
    snap, checkpoint = run_here(app, job_id)

    assert snap["status"] == "completed", snap["message"]
    assert queued_tasks(redis_client, queue).count("sillon.upload_part") == 3  # the group was sent
    assert listens_of(app) == listens_of(threads_app)
    assert snap["counters"] == expected["counters"]
    assert snap["result"]["files"] == expected["result"]["files"]
    assert [f["status"] for f in snap["result"]["files"]] == ["completed", "completed", "error"]
    assert "The 390 rows before it were kept" in snap["result"]["files"][2]["error"]
    assert snap["result"]["outcome"] == "completed_with_errors"
    save = next(s for s in snap["steps"] if s["id"] == "save")
    assert [s["status"] for s in save["substeps"]] == ["completed", "completed", "error"]
    assert {e["file"] for e in snap["errors_sample"]} == {"two.csv", "cut.json"}
    me = owners.current()
    assert [checkpoint["files"][str(i)]["ran_by"] for i in range(3)] == [[me]] * 3
    errors_csv = app.test_client().get(f"/api/v1/jobs/{job_id}/errors.csv").get_data(as_text=True)
    assert errors_csv.splitlines()[0] == "file,line,error" and "two.csv,501," in errors_csv
    assert "cut.json," in errors_csv and len(errors_csv.splitlines()) == 3


def test_parts_held_by_a_dead_or_silent_process_are_taken_over(tmp_path, migrated_template, redis_client, queue):
    app = group_app(tmp_path, migrated_template, queue)
    job_id = upload(app.test_client(), *files()[:2]).get_json()["job_id"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # Part 0: claimed by a process of this host that is gone (taken over at once).
    redis_client.set(upload_group.CLAIM_KEY.format(job_id, 0), f"celery@{socket.gethostname()}:{dead.pid}|x", ex=600)
    # Part 1: claimed by a live holder elsewhere that stops refreshing (taken over when it expires).
    redis_client.set(upload_group.CLAIM_KEY.format(job_id, 1), "celery@elsewhere:1|y", ex=2)
    snap, checkpoint = run_here(app, job_id)
    assert snap["status"] == "completed", snap["message"]
    assert snap["counters"]["imported"] == 1200
    assert len(listens_of(app)) == 1200
    assert all(checkpoint["files"][str(i)]["status"] == "done" for i in (0, 1))


def test_a_cancelled_group_resumes_to_the_same_data(tmp_path, migrated_template, redis_client, queue):
    clean = group_app(tmp_path, migrated_template, queue, name="clean")
    clean_job = upload(clean.test_client(), *files()).get_json()["job_id"]
    assert run_here(clean, clean_job)[0]["status"] == "completed"

    app = group_app(tmp_path, migrated_template, queue, IMPORT_BATCH_SIZE=20)
    client = app.test_client()
    job_id = upload(client, *files()).get_json()["job_id"]
    runner = threading.Thread(target=run_here, args=(app, job_id))
    runner.start()
    deadline = time.monotonic() + 30
    while len(listens_of(app)) < 100:
        assert time.monotonic() < deadline and runner.is_alive(), "the group never started saving"
        time.sleep(0.01)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    runner.join(30)
    with app.app_context():
        assert db.session.get(Job, job_id).status == "cancelled"
    kept = len(listens_of(app))
    assert 100 <= kept < 1600

    assert client.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
    snap, _ = run_here(app, job_id)
    assert snap["status"] == "completed", snap["message"]
    assert listens_of(app) == listens_of(clean)
    assert snap["counters"]["imported"] == 1590  # 700 + 500 + 390: each counted once over both runs


def test_a_second_runner_of_a_part_cannot_write_over_the_first(app):
    with app.app_context():
        db.session.add(Job(id="g" * 32, kind="upload_import", status="running", params={},
                           checkpoint={"files": {"0": {"rows_done": 300}}}))
        db.session.commit()
        with db.engine.begin() as conn:
            checkpoint, part = upload_group._check(conn, "g" * 32, 0, {"rows_done": 300})
            assert part["rows_done"] == 300
        with pytest.raises(upload_group.PartStopped, match="another runner"):
            with db.engine.begin() as conn:
                upload_group._check(conn, "g" * 32, 0, {"rows_done": 200})
        db.session.execute(sa.update(Job).values(cancel_requested=True))
        db.session.commit()
        with pytest.raises(upload_group.PartStopped, match="cancelled"):
            with db.engine.begin() as conn:
                upload_group._check(conn, "g" * 32, 0, {"rows_done": 300})
