"""A key saved once reaches every process with no restart: both gunicorn workers answer with it at
once, and a Celery worker started before the change runs the Last.fm import with it.

Two gunicorn workers, two Celery workers, Redis and PostgreSQL, as tests/test_scale_out.py runs them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT, base_environ
from tests.emulators.lastfm import LastfmEmulator
from tests.test_scale_out import Cluster, _admin, _check_services
from tests.test_streams_server import end_active_jobs, http

pytestmark = pytest.mark.postgresql_only
KEY, SECRET = "scaled-key-0d9e7c", "scaled-secret-61af"
LISTENS = 450


@pytest.fixture(scope="module")
def fm():
    with LastfmEmulator(api_key=KEY) as emulator:
        emulator.add_listens("rj", [{"uts": 1_500_000_000 + i * 60, "artist": f"Artist {i % 7}",
                                     "title": f"Song {i}", "album": "Album"} for i in range(LISTENS)])
        yield emulator


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, migrated_template, fm):  # noqa: ARG001 - the PostgreSQL template Server needs
    _check_services()
    tag = uuid.uuid4().hex[:10]
    name = f"sillon_settings_{tag}"
    tmp = tmp_path_factory.mktemp("settings-scale")
    _admin(f'CREATE DATABASE "{name}"')
    env = {"DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", "_DB": name,
           "PROGRESS_STORE": "redis", "REDIS_URL": "redis://127.0.0.1:6379/13", "JOB_RUNNER": "celery",
           "CELERY_QUEUE": f"sillon-test-{tag}", "TRACKER_AUTOSTART": "false", "LASTFM_API_URL": fm.url,
           "LASTFM_REQUESTS_PER_SECOND": "100", "LASTFM_RETRY_BASE_SECONDS": "0.05"}
    made = None
    try:
        migrate_env = {**os.environ, **base_environ(tmp), "DATABASE_URL": env["DATABASE_URL"]}
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", "db", "upgrade"],
                              cwd=ROOT, env=migrate_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"migrations failed on PostgreSQL: {done.stderr[-3000:]}"
        made = Cluster(tmp, env)
        yield made
    finally:
        if made is not None:
            try:
                end_active_jobs(made.server.url)
            finally:
                made.stop()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_saved_key_reaches_both_server_workers_and_a_running_celery_worker(cluster):
    url = cluster.server.url
    workers_before = {w.pid for w in cluster.alive()}
    # Every process has loaded the settings once already (the servers answered, the workers are ready).
    assert http.post(f"{url}/api/v1/services/lastfm/check", timeout=30).status_code == 400
    saved = http.patch(f"{url}/api/v1/settings", json={"LASTFM_API_KEY": KEY, "LASTFM_API_SECRET": SECRET,
                                                       "LASTFM_USERNAME": "rj"}, timeout=30)
    assert saved.status_code == 200, saved.text
    pids, answers = set(), []
    deadline = time.monotonic() + 60
    while len(pids) < 2 or len(answers) < 20:  # new connections land on either worker
        assert time.monotonic() < deadline, f"only worker(s) {pids} answered"
        answers.append(http.post(f"{url}/api/v1/services/lastfm/check", timeout=30).status_code)
        pids.add(http.get(f"{url}/api/v1/health", timeout=30).json()["process"]["pid"])
    assert set(answers) == {200}, answers  # no worker answered with the old (missing) key
    job = http.post(f"{url}/api/v1/services/lastfm/import-history", timeout=30)
    assert job.status_code == 202, job.text
    job_id = job.json()["job_id"]
    deadline = time.monotonic() + 120
    while (snap := http.get(f"{url}/api/v1/jobs/{job_id}", timeout=30).json())["status"] not in (
            "completed", "error", "cancelled", "interrupted"):
        assert time.monotonic() < deadline, snap
        time.sleep(0.2)
    assert snap["status"] == "completed", snap.get("message")
    assert snap["counters"]["imported"] == LISTENS
    status, owner = cluster.job_row(job_id)
    assert owner.startswith("celery@") and int(owner.rsplit(":", 1)[1]) in workers_before, owner
    assert KEY not in cluster.logs() and SECRET not in cluster.logs()
