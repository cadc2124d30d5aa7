"""Shared fixtures: an app per test on its own migrated SQLite database, and real gunicorn servers."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402


def base_environ(instance):
    """Settings for a test app: no developer config.json, no outside environment."""
    return {"SILLON_CONFIG": str(instance / "absent-config.json"), "INSTANCE_PATH": str(instance)}


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """A SQLite file with every migration applied once; each test gets a copy."""
    from flask_migrate import upgrade

    instance = tmp_path_factory.mktemp("template")
    app = create_app({"ENVIRON": base_environ(instance)})
    with app.app_context():
        upgrade()
        from modules.db import db
        db.engine.dispose()
    return instance / "sillon.db"


def make_app(instance, migrated_template, **overrides):
    instance.mkdir(parents=True, exist_ok=True)
    if not (instance / "sillon.db").exists():
        shutil.copy(migrated_template, instance / "sillon.db")
    environ = {**base_environ(instance), **{k: str(v) for k, v in overrides.pop("environ", {}).items()}}
    return create_app({"ENVIRON": environ, **overrides})


@pytest.fixture
def app(tmp_path, migrated_template):
    application = make_app(tmp_path / "instance", migrated_template)
    yield application
    with application.app_context():
        from modules.db import db
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def wait_for_job(app, job_id, timeout=30):
    """Join the job's thread and return its final snapshot."""
    app.extensions["sillon"]["runner"].join(job_id, timeout)
    with app.app_context():
        return app.extensions["sillon"]["progress_store"].get(job_id)


def upload(client, *files):
    """POST files (name, bytes) to /api/v1/imports; returns the response."""
    import io

    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    return client.post("/api/v1/imports", data=data, content_type="multipart/form-data")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `gunicorn -c gunicorn.conf.py app:app` process (gevent workers) on a free port."""

    def __init__(self, instance, workers=1, env=None):
        self.instance = Path(instance)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.instance / f"gunicorn-{self.port}.log"
        environ = {**os.environ, **base_environ(self.instance), "BIND": f"127.0.0.1:{self.port}",
                   "WEB_CONCURRENCY": str(workers), "ACCESS_LOG": "", "PYTHONPATH": str(ROOT),
                   **(env or {})}
        environ.pop("ACCESS_LOG")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log()}")
            try:
                requests.get(self.url + "/api/v1/jobs", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer in {timeout}s: {self.log()}")

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def server_factory(tmp_path, migrated_template):
    """Start gunicorn servers sharing one migrated SQLite database in a fresh instance folder."""
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    shutil.copy(migrated_template, instance / "sillon.db")
    servers = []

    def start(workers=1, env=None):
        server = Server(instance, workers=workers, env=env)
        servers.append(server)
        return server

    start.instance = instance
    yield start
    for server in servers:
        server.stop()
