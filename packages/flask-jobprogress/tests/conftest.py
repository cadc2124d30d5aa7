"""Fixtures of the package's own tests (no conftest of any app is used).

Database tests run on a fresh SQLite file, or on PostgreSQL when JOBPROGRESS_TEST_DATABASE_URL
names a server (postgresql+psycopg://user@host:port): each test gets its own database there,
dropped at its end. Redis tests use the server of JOBPROGRESS_TEST_REDIS_URL
(redis://127.0.0.1:6379/15 by default) with keys and channels of their own.
"""
import os
import uuid

import pytest

POSTGRES_SERVER = os.environ.get("JOBPROGRESS_TEST_DATABASE_URL", "").strip().rstrip("/")
REDIS_URL = os.environ.get("JOBPROGRESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def database_url(tmp_path):
    if not POSTGRES_SERVER:
        yield f"sqlite:///{tmp_path / 'progress.db'}"
        return
    import sqlalchemy as sa

    name = f"jobprogress_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_SERVER} cannot be reached: {exc}")
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not running at {REDIS_URL} ({exc})")
    return REDIS_URL


@pytest.fixture
def prefix():
    """A Redis key prefix (and channel) of this test's own, so test runs can share one server."""
    return f"jobprogress-test:{uuid.uuid4().hex}"
