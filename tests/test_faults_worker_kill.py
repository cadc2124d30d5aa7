"""One gunicorn worker killed with SIGKILL in the middle of an import, its master left running.

tests/test_two_processes.py kills a whole server (master and worker) and lets a second server take
over. Here one real `gunicorn` (gevent workers) keeps serving: the worker that runs the job (the
job record's owner names its host and pid) is killed outright, gunicorn starts a new worker, and
the other or the new worker (its reaper, on its own timer or at its start, notices the dead pid)
continues the job from its checkpoint without anyone pressing Resume, and it ends with a listens
table equal to a clean run's, row for row. Shipped JOB_STALE_SECONDS and JOB_AUTO_RESUME.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import requests
import sqlalchemy as sa

from tests.conftest import database_environ, make_app, upload, wait_for_job
from tests.emulators.lastfm import LastfmEmulator, generate_listens
from tests.test_streams_server import end_active_jobs, generated_csv, http, snapshot

ENV = {"SSE_HEARTBEAT_SECONDS": "0.5", "JOB_HEARTBEAT_SECONDS": "0.5", "JOB_STALE_SECONDS": "30",
       "IMPORT_BATCH_SIZE": "200"}


def database_url(instance):
    return database_environ(instance).get("DATABASE_URL") or f"sqlite:///{instance / 'sillon.db'}"


def listens_table(url):
    """Every listen as stored, with its names, sorted: what two runs must agree on."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT l.played_at, l.artist_key, l.title_key, l.source, a.name, t.title, al.title "
                "FROM listens l JOIN artists a ON a.id = l.artist_id JOIN tracks t ON t.id = l.track_id "
                "LEFT JOIN albums al ON al.id = l.album_id")).all()
            counts = {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                      for table in ("artists", "albums", "tracks")}
    finally:
        engine.dispose()
    return sorted(tuple(r) for r in rows), counts


def job_owner_pid(url, job_id):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            owner = conn.execute(sa.text("SELECT owner FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    finally:
        engine.dispose()
    _host, _, pid = owner.rpartition(":")
    return int(pid)


def kill_job_worker(server, url, job_id):
    """SIGKILL the worker that runs the job (a child of the master, which keeps running)."""
    pid = job_owner_pid(url, job_id)
    master = psutil.Process(server.proc.pid)
    workers = {p.pid for p in master.children()}
    assert pid in workers, f"job owner {pid} is not a worker of {master.pid}: {workers}"
    os.kill(pid, signal.SIGKILL)
    return pid, workers


def wait_new_worker(server, killed, count, timeout=30):
    """Until gunicorn has replaced the killed worker and every worker answers."""
    deadline = time.monotonic() + timeout
    while True:
        children = {p.pid for p in psutil.Process(server.proc.pid).children()}
        if killed not in children and len(children) == count:
            return children
        assert time.monotonic() < deadline, f"gunicorn did not replace worker {killed}: {children}"
        time.sleep(0.1)


def wait_final(url, job_id, timeout=60):
    """The job's snapshot once it has ended, asking until a worker answers (a new one boots first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            snap = http.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
            if snap["status"] not in ("queued", "running"):
                return snap
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"job {job_id} never ended"
        time.sleep(0.1)


def wait_mid_way(url, job_id, step, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot(url, job_id)
        if snap["current_step"] == step and snap["done"] > 0 and snap["counters"].get("imported", 0) > 0:
            return snap
        assert snap["status"] in ("queued", "running"), snap["status"]
        assert time.monotonic() < deadline, "the job never got part-way"
        time.sleep(0.02)


@pytest.fixture
def clean_app(tmp_path, migrated_template):
    """Builds an in-process app on its own database for the clean, uninterrupted run."""
    apps = []

    def build(**environ):
        application = make_app(tmp_path / "clean", migrated_template, environ=environ)
        apps.append(application)
        return application

    yield build
    for application in apps:
        with application.app_context():
            from modules.db import db
            db.engine.dispose()


def takeovers(url, job_id):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.text("SELECT takeovers FROM jobs WHERE id = :id"), {"id": job_id}).scalar()
    finally:
        engine.dispose()
    return json.loads(value) if isinstance(value, str) else value  # SQLite gives the JSON text


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_killed_mid_upload_is_continued_by_itself_to_a_clean_runs_data(
        server_factory, clean_app, workers):
    rows = 12000
    data = generated_csv(rows, "Killed Worker")
    clean = clean_app()
    r = upload(clean.test_client(), ("big.csv", data))
    assert r.status_code == 202
    assert wait_for_job(clean, r.get_json()["job_id"], timeout=120)["status"] == "completed"
    expected = listens_table(database_url(Path(clean.instance_path)))

    server = server_factory(workers=workers, env=ENV)
    url = database_url(server_factory.instance)
    try:
        r = http.post(f"{server.url}/api/v1/imports", files=[("files", ("big.csv", data))], timeout=30)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        wait_mid_way(server.url, job_id, "save")
        killed, _ = kill_job_worker(server, url, job_id)

        saved, _ = listens_table(url)
        assert 0 < len(saved) < rows, f"not killed mid-way: {len(saved)} of {rows}"

        wait_new_worker(server, killed, workers)
        done = wait_final(server.url, job_id, timeout=180)  # nobody presses Resume
        assert done["status"] == "completed", done
        assert done["result"]["imported"] == rows and done["result"]["errors"] == 0
        assert listens_table(url) == expected
        (taken,) = takeovers(url, job_id)
        assert taken["from"].endswith(f":{killed}") and taken["to"] and not taken["to"].endswith(f":{killed}")
    finally:
        end_active_jobs(server.url)


def test_a_worker_killed_mid_lastfm_import_is_continued_by_itself_to_a_clean_runs_data(
        server_factory, clean_app):
    history = generate_listens(3000, start_uts=1_600_000_000, same_second_every=7)
    with LastfmEmulator() as fm:
        fm.add_listens("rj", history)
        lastfm = {"LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s",
                  "LASTFM_USERNAME": "rj", "LASTFM_RETRY_BASE_SECONDS": "0.05", "LASTFM_REQUESTS_PER_SECOND": "100",
                  "LASTFM_CONCURRENCY": "1"}
        clean = clean_app(**lastfm)
        r = clean.test_client().post("/api/v1/services/lastfm/import-history")
        assert r.status_code == 202, r.get_json()
        assert wait_for_job(clean, r.get_json()["job_id"], timeout=120)["status"] == "completed"
        expected = listens_table(database_url(Path(clean.instance_path)))
        assert len(expected[0]) == len(history)

        fm.latency = 0.15  # a page every ~0.15 s: the kill lands part-way
        server = server_factory(workers=2, env={**ENV, **lastfm})
        url = database_url(server_factory.instance)
        try:
            r = http.post(f"{server.url}/api/v1/services/lastfm/import-history", timeout=30)
            assert r.status_code == 202, r.text
            job_id = r.json()["job_id"]
            wait_mid_way(server.url, job_id, "fetch")
            killed, _ = kill_job_worker(server, url, job_id)

            saved, _ = listens_table(url)
            assert 0 < len(saved) < len(history), f"not killed mid-way: {len(saved)} of {len(history)}"
            fm.latency = 0

            wait_new_worker(server, killed, 2)
            done = wait_final(server.url, job_id, timeout=180)  # nobody presses Resume
            assert done["status"] == "completed", done
            assert done["result"]["imported"] == len(history)
            assert listens_table(url) == expected
            assert len(takeovers(url, job_id)) == 1
        finally:
            end_active_jobs(server.url)


def test_a_job_killed_four_times_in_a_row_stops_with_its_message(server_factory):
    """A job that kills its runner must not loop: JOB_MAX_TAKEOVERS (3) takeovers, then it stops."""
    server = server_factory(workers=1, env=ENV)
    url = database_url(server_factory.instance)
    try:  # the live progress check saves no batch, so every death counts in a row
        r = http.post(f"{server.url}/api/v1/diagnostics/progress-check", params={"duration": 600, "rate": 2},
                      timeout=30)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        killed = []
        for _kill in range(4):
            deadline = time.monotonic() + 60
            while True:  # running, in a worker not killed yet
                try:
                    snap = http.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10).json()
                except requests.RequestException:
                    snap = {"status": "booting"}
                if snap["status"] == "running" and job_owner_pid(url, job_id) not in killed:
                    break
                assert snap["status"] in ("queued", "running", "booting"), snap
                assert time.monotonic() < deadline, f"the job was not continued after kill {len(killed)}"
                time.sleep(0.1)
            pid, _ = kill_job_worker(server, url, job_id)
            killed.append(pid)
            wait_new_worker(server, pid, 1)
        stopped = wait_final(server.url, job_id)
        assert stopped["status"] == "error", stopped
        assert "died 4 times in a row" in stopped["message"] and "Resume it" in stopped["message"]
        assert [t["from"].rpartition(":")[2] for t in takeovers(url, job_id)] == [str(p) for p in killed]
        page = requests.get(f"{server.url}/jobs", timeout=10).text  # not `http`: a page visit sets a session (CSRF)
        assert f"(pid {killed[0]}) stopped" in page and "continued by server process" in page
    finally:
        end_active_jobs(server.url)
