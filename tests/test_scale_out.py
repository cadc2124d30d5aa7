"""Scaled out for real: two gunicorn workers, two Celery workers, Redis and PostgreSQL.

JOB_RUNNER=celery, PROGRESS_STORE=redis, a fresh PostgreSQL database migrated for this module and
dropped after it, and a Celery queue of its own (no stale task in Redis reaches these workers).
Under CI=true a service that is down fails the module; elsewhere it skips it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.conftest import ROOT, Server, base_environ
from tests.test_streams_server import (
    EventStream,
    assert_ordered,
    end_active_jobs,
    events_of,
    generated_csv,
    http,
    listens_total,
    snapshot,
)

# Uses PostgreSQL, Redis and Celery itself, whichever database the suite runs on: run once, in
# the PostgreSQL pass.
pytestmark = pytest.mark.postgresql_only

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/13"
RABBITMQ_HOST = "127.0.0.1:5672"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
ROWS = 20000


def _unavailable(what, exc):
    message = f"{what} is not reachable ({exc}); the scale-out tests need it running"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: not skipping)", pytrace=False)
    pytest.skip(message)


def _check_services():
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis on 127.0.0.1:6379", exc)
    try:
        import psycopg

        psycopg.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except Exception as exc:  # noqa: BLE001
        _unavailable("PostgreSQL on 127.0.0.1:5432", exc)


def _admin(sql):
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql)


class CeleryWorker:
    """`celery -A app.celery worker -P solo` (one process, one job at a time) or `-P prefork`."""

    def __init__(self, name, env, log_dir, pool="solo"):
        self.log_path = log_dir / f"celery-{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "app.celery", "worker", "-P", pool, "--concurrency=1",
             "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while b" ready." not in self.log_path.read_bytes():
            assert self.proc.poll() is None, f"celery worker exited: {self.log()}"
            assert time.monotonic() < deadline, f"celery worker not ready in 30 s: {self.log()}"
            time.sleep(0.1)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class Cluster:
    def __init__(self, tmp, env, pool="solo"):
        self.tmp, self.env, self.pool = tmp, env, pool
        self.server = Server(tmp, workers=2, env=env)
        self.workers = [self.start_worker() for _ in range(2)]

    def start_worker(self):
        env = {**os.environ, **base_environ(self.tmp), "PYTHONPATH": str(ROOT), **self.env}
        return CeleryWorker(f"w{uuid.uuid4().hex[:6]}", env, self.tmp, pool=self.pool)

    def owner_of(self, pid):
        """The worker whose process (itself, or a prefork child) is `pid`."""
        import psutil

        for w in self.alive():
            try:
                children = {c.pid for c in psutil.Process(w.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                continue
            if pid == w.pid or pid in children:
                return w
        raise AssertionError(f"no worker runs pid {pid}")

    def alive(self):
        return [w for w in self.workers if w.proc.poll() is None]

    def use_pool(self, pool, count=2):
        """`count` live workers of `pool` (the server, its database and broker stay as they are)."""
        if pool != self.pool:
            for w in self.workers:
                w.stop()
            self.pool, self.workers = pool, []
        self.workers = self.alive()
        while len(self.workers) < count:
            self.workers.append(self.start_worker())

    def job_row(self, job_id):
        import psycopg

        with psycopg.connect(dbname=self.env["_DB"], **PG) as conn:
            return conn.execute("SELECT status, owner FROM jobs WHERE id = %s", (job_id,)).fetchone()

    def logs(self):
        return "\n".join([self.server.log()] + [w.log() for w in self.workers])

    def stop(self):
        self.server.stop()
        for w in self.workers:
            w.stop()


@contextlib.contextmanager
def running_cluster(tmp_path_factory, broker=None, pool="solo"):
    """A database of its own, migrated; a server (two gunicorn workers) and two Celery workers."""
    _check_services()
    tag = uuid.uuid4().hex[:10]
    name = f"sillon_scale_{tag}"
    tmp = tmp_path_factory.mktemp("scale")
    _admin(f'CREATE DATABASE "{name}"')
    env = {"DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", "_DB": name,
           "PROGRESS_STORE": "redis", "REDIS_URL": REDIS_URL, "JOB_RUNNER": "celery",
           # Shipped JOB_STALE_SECONDS and CELERY_VISIBILITY_TIMEOUT: recovery must not need them tuned.
           "CELERY_QUEUE": f"sillon-test-{tag}",
           "JOB_HEARTBEAT_SECONDS": "0.5", "SSE_HEARTBEAT_SECONDS": "0.5",
           "IMPORT_BATCH_SIZE": "200", "TRACKER_AUTOSTART": "false", **({"CELERY_BROKER_URL": broker} if broker else {})}
    made = None
    try:
        migrate_env = {**os.environ, **base_environ(tmp), "DATABASE_URL": env["DATABASE_URL"]}
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", "db", "upgrade"],
                              cwd=ROOT, env=migrate_env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"migrations failed on PostgreSQL: {done.stderr[-3000:]}"
        made = Cluster(tmp, env, pool=pool)
        yield made
    finally:
        if made is not None:
            try:
                end_active_jobs(made.server.url)
            finally:
                made.stop()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, migrated_template):  # noqa: ARG001 - the PostgreSQL template Server needs
    with running_cluster(tmp_path_factory) as made:
        yield made


def upload(url, name, data):
    r = http.post(f"{url}/api/v1/imports", files=[("files", (name, data))], timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def test_two_starts_at_once_give_one_job_and_one_409(cluster):
    url = cluster.server.url
    barrier, answers = threading.Barrier(2), []

    def start():
        barrier.wait()
        # Connection: close on each request, so gunicorn hands them to its two workers as they come.
        r = http.post(f"{url}/api/v1/diagnostics/progress-check", params={"duration": 30, "rate": 5}, timeout=10)
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(code for code, _ in answers) == [202, 409], answers
    assert answers[0][1]["job_id"] == answers[1][1]["job_id"]
    job_id = answers[0][1]["job_id"]
    deadline = time.monotonic() + 15
    while snapshot(url, job_id)["status"] != "running":
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.05)
    status, owner = cluster.job_row(job_id)
    assert status == "running" and owner.startswith("celery@"), owner  # run by a Celery worker
    end_active_jobs(url)


def test_an_import_is_streamed_in_order_with_the_right_data(cluster):
    url = cluster.server.url
    before = listens_total(url)
    job = upload(url, "big.csv", generated_csv(ROWS, "Streamed Artist"))
    with EventStream(url + job["events_url"], read_timeout=10) as stream:
        events = events_of(stream.read_to_end(timeout=60))
    progress, done = assert_ordered(events)
    assert done["data"]["status"] == "completed", cluster.logs()
    assert done["data"]["redirect_url"] == "/journal"
    saving = [e["data"]["done"] for e in progress if e["data"]["current_step"] == "save"]
    assert len(saving) >= 5 and saving == sorted(saving) and saving[-1] <= ROWS
    last = progress[-1]["data"]
    assert last["result"]["imported"] == ROWS and last["result"]["skipped"] == 0 and last["result"]["errors"] == 0
    assert last["counters"]["imported"] == ROWS
    assert listens_total(url) == before + ROWS
    assert cluster.job_row(job["job_id"])[1].startswith("celery@")


def kill_mid_import_and_see_it_finished_by_the_other(cluster, artist="Killed Artist"):
    """`artist` names listens not yet in the cluster's database (each run imports new ones)."""
    url = cluster.server.url
    assert len(cluster.alive()) == 2
    before = listens_total(url)
    job = upload(url, "killed.csv", generated_csv(ROWS, artist, start=(2015, 1, 1)))
    job_id = job["job_id"]
    deadline = time.monotonic() + 30
    while True:
        snap = snapshot(url, job_id)
        # A batch committed, not only counted: a loaded machine leaves a gap between the two.
        if snap["current_step"] == "save" and snap["done"] > 0 and listens_total(url) > before:
            break
        assert snap["status"] in ("queued", "running"), (snap, cluster.logs())
        assert time.monotonic() < deadline, "the import never reached its save step"
        time.sleep(0.02)
    status, owner = cluster.job_row(job_id)
    victim = cluster.owner_of(int(owner.rpartition(":")[2]))
    victim.kill()  # its whole process group: SIGKILL
    seen = snapshot(url, job_id)
    saved = listens_total(url) - before
    assert 0 < saved < ROWS, f"not killed mid-way: {saved} of {ROWS} listens saved"

    # The other worker's reaper sees the owner's pid is dead, takes the job over (a new message with
    # the next generation) and goes on from its checkpoint: no interruption, nobody presses Resume.
    with EventStream(url + job["events_url"], last_event_id=seen["version"], read_timeout=15) as stream:
        events = events_of(stream.read_to_end(timeout=120))
    progress, done = assert_ordered(events)
    assert done["data"]["status"] == "completed", cluster.logs()
    assert all(e["data"]["status"] in ("queued", "running", "completed") for e in progress)
    result = progress[-1]["data"]["result"]
    assert result["imported"] == ROWS and result["skipped"] == 0 and result["errors"] == 0
    assert listens_total(url) == before + ROWS
    deadline = time.monotonic() + 15  # the end is published a moment before the job's row is written
    while (row := cluster.job_row(job_id))[0] != "completed":
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    status, new_owner = row
    assert new_owner != owner and new_owner.startswith("celery@")
    assert cluster.owner_of(int(new_owner.rpartition(":")[2])) is not victim  # the survivor


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory, migrated_template):  # noqa: ARG001 - as `cluster`
    """The same cluster with RabbitMQ as its broker (Redis stays the progress store)."""
    try:
        import amqp

        amqp.Connection(RABBITMQ_HOST, userid="guest", password="guest", connect_timeout=3).connect()
    except Exception as exc:  # noqa: BLE001
        _unavailable("RabbitMQ on 127.0.0.1:5672", exc)
    with running_cluster(tmp_path_factory, broker=RABBITMQ_URL) as made:
        yield made


@pytest.mark.parametrize("pool", ["solo", "prefork"])
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_killed_worker_leaves_the_import_to_the_other_with_nothing_lost_or_doubled(request, broker, pool):
    """Each broker with each pool, at the shipped JOB_STALE_SECONDS and CELERY_VISIBILITY_TIMEOUT.

    One cluster per broker (server, database, queue), its two workers restarted with the pool
    asked; in the PostgreSQL pass only, like the whole module (Celery needs PostgreSQL anyway).
    Under CI=true a broker that is down fails the test."""
    made = request.getfixturevalue("cluster" if broker == "redis" else "rabbit_cluster")
    made.use_pool(pool)
    kill_mid_import_and_see_it_finished_by_the_other(made, artist=f"Killed Artist {pool}")


def _checkpoint(cluster, job_id):
    import psycopg

    with psycopg.connect(dbname=cluster.env["_DB"], **PG) as conn:
        return conn.execute("SELECT checkpoint FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]


def _two_workers(cluster):
    cluster.use_pool("solo")  # the README's workers (the kill tests may have left prefork ones)


def upload_many(url, named):
    r = http.post(f"{url}/api/v1/imports", files=[("files", (n, d)) for n, d in named], timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


GROUP_FILES = 4
GROUP_ROWS = 5000  # per file


def test_a_multi_file_upload_is_saved_by_both_workers_as_one_job(cluster):
    _two_workers(cluster)
    url = cluster.server.url
    before = listens_total(url)
    job = upload_many(url, [(f"g{i}.csv", generated_csv(GROUP_ROWS, f"Group {i}", start=(2001 + i, 1, 1)))
                            for i in range(GROUP_FILES)])
    with EventStream(url + job["events_url"], read_timeout=10) as stream:
        events = events_of(stream.read_to_end(timeout=120))
    progress, done = assert_ordered(events)
    assert done["data"]["status"] == "completed", cluster.logs()
    saving = [e["data"]["counters"].get("imported", 0) for e in progress if e["data"]["current_step"] == "save"]
    assert len(saving) >= 5 and saving == sorted(saving)  # one tracker, counters only grow
    last = progress[-1]["data"]
    assert last["result"]["imported"] == GROUP_FILES * GROUP_ROWS and last["counters"]["imported"] == GROUP_FILES * GROUP_ROWS
    assert listens_total(url) == before + GROUP_FILES * GROUP_ROWS
    parts = _checkpoint(cluster, job["job_id"])["files"]
    runners = {owner for p in parts.values() for owner in p["ran_by"]}
    assert runners == {f"celery@{socket.gethostname()}:{w.pid}" for w in cluster.workers}, runners


def test_a_worker_killed_mid_part_leaves_its_file_to_the_other(cluster):
    _two_workers(cluster)
    url = cluster.server.url
    before = listens_total(url)
    job = upload_many(url, [(f"k{i}.csv", generated_csv(GROUP_ROWS, f"Killed Group {i}", start=(1990 + i, 1, 1)))
                            for i in range(GROUP_FILES)])
    job_id = job["job_id"]
    parent_pid = None
    deadline = time.monotonic() + 60
    while True:  # wait until the worker that is not the parent is part-way through a file
        status, owner = cluster.job_row(job_id)
        if status == "running" and owner:
            parent_pid = int(owner.rpartition(":")[2])
            parts = (_checkpoint(cluster, job_id) or {}).get("files", {})
            busy = [p for p in parts.values() if p.get("status") is None and p.get("rows_done", 0) > 0
                    and any(not o.endswith(f":{parent_pid}") for o in p.get("ran_by", []))]
            if busy:
                break
        assert time.monotonic() < deadline, ("no part reached the other worker", cluster.logs())
        time.sleep(0.01)
    victim = next(w for w in cluster.workers if w.pid != parent_pid)
    victim.kill()
    snap = snapshot(url, job_id)
    with EventStream(url + job["events_url"], last_event_id=snap["version"], read_timeout=15) as stream:
        events = events_of(stream.read_to_end(timeout=120))
    progress, done = assert_ordered(events)
    assert done["data"]["status"] == "completed", cluster.logs()
    result = progress[-1]["data"]["result"]
    assert result["imported"] == GROUP_FILES * GROUP_ROWS and result["errors"] == 0, result
    assert listens_total(url) == before + GROUP_FILES * GROUP_ROWS  # nothing lost, nothing doubled
    parts = _checkpoint(cluster, job_id)["files"]
    assert all(p["status"] == "done" and p["rows_done"] == GROUP_ROWS for p in parts.values()), parts
    taken_over = [p for p in parts.values() if len(p["ran_by"]) == 2]
    assert taken_over, parts  # the killed worker's file was finished by the parent
