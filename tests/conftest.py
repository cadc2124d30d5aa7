"""Shared fixtures: an app per test on its own migrated database, and real gunicorn servers.

The suite runs on SQLite by default. With SILLON_TEST_DATABASE=postgresql (or TEST_DATABASE_URL set to
a PostgreSQL server URL such as postgresql+psycopg://postgres@127.0.0.1:5432) it runs on PostgreSQL:
a template database is migrated once per session, and every instance folder gets its own database
created from it (CREATE DATABASE ... TEMPLATE ...), dropped when its test ends. Apps and servers built
on the same instance folder (a restart) share that folder's database, as they share its SQLite file.
Tests marked `sqlite_only` are about SQLite itself; the PostgreSQL pass deselects them.
"""
from __future__ import annotations

import itertools
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
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from modules.jobs import owner as owners  # noqa: E402 - after sys.path

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _postgres_server_url():
    """The PostgreSQL server the suite runs on, or None for SQLite."""
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    choice = os.environ.get("SILLON_TEST_DATABASE", "").strip().lower()
    if url:
        return url if url.startswith("postgresql") else None
    if choice in ("postgresql", "postgres", "pg"):
        return DEFAULT_POSTGRES_URL
    if choice not in ("", "sqlite"):
        raise pytest.UsageError(f"SILLON_TEST_DATABASE must be sqlite or postgresql, not {choice!r}")
    return None


POSTGRES_URL = _postgres_server_url()
DATABASE = "postgresql" if POSTGRES_URL else "sqlite"


class PostgresDatabases:
    """Databases of one test session on a PostgreSQL server: a migrated template and copies of it."""

    def __init__(self, server_url):
        import sqlalchemy as sa

        self.sa = sa
        self.server_url = sa.make_url(server_url)
        self.prefix = f"sillon_t{os.getpid()}_"
        self.template = None
        self.by_instance = {}  # resolved instance folder -> database name
        self._names = itertools.count(1)
        self._admin = None

    def url(self, name):
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    @property
    def admin(self):
        """An autocommit engine on the `postgres` maintenance database (CREATE/DROP DATABASE)."""
        if self._admin is None:
            self._admin = self.sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT",
                                                poolclass=self.sa.pool.NullPool)
        return self._admin

    def check_reachable(self):
        try:
            with self.admin.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means the PostgreSQL pass cannot run
            raise pytest.UsageError(
                f"SILLON_TEST_DATABASE=postgresql but PostgreSQL at {self.server_url.render_as_string()} "
                f"is not reachable: {exc}") from exc
        self.drop_leftovers()

    def drop_leftovers(self):
        """Drop databases left by sessions whose process is gone (a killed run)."""
        with self.admin.connect() as conn:
            names = conn.exec_driver_sql(
                r"SELECT datname FROM pg_database WHERE datname LIKE 'sillon\_t%%\_%%'").scalars().all()
        for name in names:
            pid = name[len("sillon_t"):].split("_", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not owners.pid_alive(int(pid)):
                self.drop(name)

    def create_template(self):
        from flask_migrate import upgrade

        name = self.prefix + "tmpl"
        self.drop(name)
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        instance = Path(os.environ.get("TMPDIR", "/tmp")) / f"{name}-instance"
        app = create_app({"ENVIRON": {**base_environ(instance), "DATABASE_URL": self.url(name)}})
        with app.app_context():
            upgrade()
            from modules.db import db
            db.engine.dispose()
        shutil.rmtree(instance, ignore_errors=True)
        self.template = name
        return name

    def create(self):
        """A fresh database copied from the migrated template; returns its name."""
        name = f"{self.prefix}{next(self._names)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def for_instance(self, instance):
        """The database of an instance folder, created on first use."""
        key = Path(instance).resolve()
        if key not in self.by_instance:
            self.by_instance[key] = self.create()
            _owned.append(self.by_instance[key])
        return self.url(self.by_instance[key])

    def drop(self, name):
        with self.admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,))
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for key, value in list(self.by_instance.items()):
            if value == name:
                del self.by_instance[key]

    def close(self):
        for name in list(self.by_instance.values()):
            self.drop(name)
        if self.template:
            self.drop(self.template)
        if self._admin is not None:
            self._admin.dispose()


POSTGRES = PostgresDatabases(POSTGRES_URL) if POSTGRES_URL else None
# Databases created while the current test runs (dropped at its end). Module- and session-scoped
# fixtures are set up before a test's own fixtures: theirs live until the session ends.
_owned = []
_apps = []  # apps made by make_app during the current test


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself; not run by the PostgreSQL pass")
    config.addinivalue_line("markers", "postgresql_only: about PostgreSQL itself; not run by the SQLite pass")
    if POSTGRES is not None:
        POSTGRES.check_reachable()


def pytest_report_header(config):
    return f"database: {DATABASE}" + (f" ({POSTGRES.server_url.render_as_string()})" if POSTGRES else "")


# A test reaches the suite's database through one of these fixtures (the app's and the package's
# conftest both name theirs database_url); every app, server and engine of a test is built on them.
DATABASE_FIXTURES = {"migrated_template", "database_url"}


def _runs_in_this_pass(item):
    other = "sqlite_only" if POSTGRES is not None else "postgresql_only"
    if item.get_closest_marker(other) is not None:
        return False
    if POSTGRES is None or item.get_closest_marker("postgresql_only") is not None:
        return True
    # The PostgreSQL pass runs what depends on the database: a test without a database fixture runs
    # the same code on the same SQLite file (or none) in both passes, so once, in the SQLite pass.
    return bool(DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    # Tests about the other engine, and in the PostgreSQL pass the tests that use no database, are
    # deselected, not skipped: they run in the other pass, and a skip would look like a missing service.
    dropped = [item for item in items if not _runs_in_this_pass(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if _runs_in_this_pass(item)]


def pytest_unconfigure(config):
    if POSTGRES is not None:
        POSTGRES.close()


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """Drop the PostgreSQL databases a test created, once its apps and servers are gone."""
    global _owned, _apps
    if POSTGRES is None:
        yield
        return
    outer, _owned = _owned, []
    outer_apps, _apps = _apps, []
    try:
        yield
    finally:
        mine, _owned = _owned, outer
        apps, _apps = _apps, outer_apps
        _settle(apps)
        for name in mine:
            POSTGRES.drop(name)


def _settle(apps, timeout=10):
    """Let jobs a test left running end (or give up waiting), then close the apps' connections."""
    deadline = time.monotonic() + timeout
    for application in apps:
        runner = application.extensions.get("sillon", {}).get("runner")
        for thread in list(getattr(runner, "threads", {}).values()):
            thread.join(max(0.0, deadline - time.monotonic()))
    for application in apps:
        try:
            with application.app_context():
                from modules.db import db
                db.engine.dispose()
        except Exception:  # noqa: BLE001 - best effort before the database is dropped anyway
            pass


def database_environ(instance):
    """DATABASE_URL for an instance folder: its own PostgreSQL database, or nothing (its SQLite file)."""
    if POSTGRES is None:
        return {}
    return {"DATABASE_URL": POSTGRES.for_instance(instance)}


def base_environ(instance):
    """Settings for a test app: no developer config.json, no outside environment."""
    return {"SILLON_CONFIG": str(instance / "absent-config.json"), "INSTANCE_PATH": str(instance)}


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """A SQLite file with every migration applied once; each test gets a copy.

    On PostgreSQL the session's template database is migrated too, and apps get copies of it instead
    (the SQLite file is still returned, so fixtures that copy it into an instance folder keep working).
    """
    from flask_migrate import upgrade

    instance = tmp_path_factory.mktemp("template")
    app = create_app({"ENVIRON": base_environ(instance)})
    with app.app_context():
        upgrade()
        from modules.db import db
        db.engine.dispose()
    if POSTGRES is not None:
        POSTGRES.create_template()
    return instance / "sillon.db"


@pytest.fixture
def database_url(tmp_path, migrated_template):
    """The URL of a fresh migrated database of the suite's engine (for tests that build engines)."""
    if POSTGRES is not None:
        return POSTGRES.for_instance(tmp_path / "database-url")
    path = tmp_path / "database-url.db"
    shutil.copy(migrated_template, path)
    return f"sqlite:///{path}"


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token(client):
    """A valid CSRF token for `client`'s session (made by Flask-WTF itself, stored in the client's cookie)."""
    from flask import session
    from flask_wtf.csrf import generate_csrf

    application = client.application
    field = application.config["WTF_CSRF_FIELD_NAME"]
    with client.session_transaction() as sess:
        raw = sess.get(field)
    with application.test_request_context():
        if raw:
            session[field] = raw
        token = generate_csrf()
        raw = session[field]
    with client.session_transaction() as sess:
        sess[field] = raw
    return token


class CsrfClient(FlaskClient):
    """The test client, sending the X-CSRFToken header a page's scripts send on every request that
    changes something. CSRF stays on in tests: `csrf=False` sends a request without it."""

    def open(self, *args, csrf=True, **kwargs):
        method = str(kwargs.get("method", "GET")).upper()
        if csrf and method in UNSAFE_METHODS and (not args or isinstance(args[0], str)):
            from werkzeug.datastructures import Headers

            headers = Headers(kwargs.get("headers") or {})
            if "X-CSRFToken" not in headers:
                headers["X-CSRFToken"] = csrf_token(self)
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


def make_app(instance, migrated_template, **overrides):
    instance.mkdir(parents=True, exist_ok=True)
    if not (instance / "sillon.db").exists():
        shutil.copy(migrated_template, instance / "sillon.db")
    environ = {**base_environ(instance), **database_environ(instance),
               **{k: str(v) for k, v in overrides.pop("environ", {}).items()}}
    application = create_app({"ENVIRON": environ, **overrides})
    application.test_client_class = CsrfClient
    if POSTGRES is not None:
        _apps.append(application)
    return application


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
    """The job's final snapshot, once it has ended; fails the test if it has not within `timeout` s."""
    from flask_jobprogress import FINAL_STATUSES

    deadline = time.monotonic() + timeout
    app.extensions["sillon"]["runner"].join(job_id, timeout)
    while True:
        with app.app_context():
            snap = app.extensions["sillon"]["progress_store"].get(job_id)
        if snap is not None and snap["status"] in FINAL_STATUSES:
            return snap
        assert time.monotonic() < deadline, (
            f"job {job_id} has not ended within {timeout} s: "
            f"{(snap['status'], snap['message']) if snap else 'no snapshot'}")
        time.sleep(0.02)


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
        environ = {**os.environ, **base_environ(self.instance), **database_environ(self.instance), "BIND": f"127.0.0.1:{self.port}",
                   "WEB_CONCURRENCY": str(workers), "ACCESS_LOG": "", "PYTHONPATH": str(ROOT),
                   **(env or {})}
        environ.pop("ACCESS_LOG")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "app:app"],
            cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=90):  # two gevent workers can take 30 s to boot on a loaded 2-core machine
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
    """Start gunicorn servers sharing one migrated database (SQLite file or PostgreSQL) in a fresh instance folder."""
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


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright, one per test module (see tests/browsing.py)."""
    from playwright import sync_api

    from tests.browsing import launch

    with sync_api.sync_playwright() as pw:
        chromium = launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()
