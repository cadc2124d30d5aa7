"""The database handle, connection settings, and bulk-write helpers shared by importers."""
from __future__ import annotations

import dataclasses
import functools
import sqlite3
import time

import sqlalchemy as sa
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import postgresql, sqlite

from .waiting import GaveUp, Patience, call_with_retries

db = SQLAlchemy()
migrate = Migrate()


# Execution options (engine, connection or statement) read by the SQLite lock wait below.
BUSY_SECONDS = "sillon_busy_seconds"  # most seconds one statement waits for another's lock
BUSY_LISTENER = "sillon_busy_listener"  # called with the seconds waited so far; may raise to stop
BEFORE_STATEMENT = "sillon_before_statement"  # called with no argument before each statement is sent
# Inside SQLite a statement waits at most this long: that wait blocks the whole process (every
# greenlet of a gevent worker). Past it the wait goes on in Python, between short tries.
SQLITE_C_BUSY_SECONDS = 0.01
_LOCK_POLL = Patience(first_wait=0.005, longest_wait=0.1, tries=10 ** 9)


def init_app(app):
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.config["MIGRATIONS_DIR"]), render_as_batch=True)
    with app.app_context():
        engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", _before_statement)
        if engine.dialect.name == "sqlite":
            busy = float(app.config.get("SQLITE_BUSY_TIMEOUT_SECONDS", 30.0))
            c_busy_ms = int(min(busy, SQLITE_C_BUSY_SECONDS) * 1000)
            sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=c_busy_ms))
            for name, runs in (("do_execute", _run_execute), ("do_executemany", _run_executemany),
                               ("do_execute_no_params", _run_execute_no_params)):
                sa.event.listen(engine, name, functools.partial(_wait_out_locks, runs=runs, busy_seconds=busy))


def _before_statement(_conn, _cursor, _statement, _parameters, context, _executemany):
    """A connection's BEFORE_STATEMENT option, if any (a job gives way to pages there: jobs/pacing.py)."""
    hook = context.execution_options.get(BEFORE_STATEMENT) if context is not None else None
    if hook is not None:
        hook()


def _sqlite_pragmas(dbapi_conn, _record, busy_ms=10):
    # WAL lets pages and streams read while a job writes; the short busy_timeout keeps SQLite's own
    # wait (which holds the whole process) brief: longer waits happen in _wait_out_locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _run_execute(cursor, statement, parameters, context):
    cursor.execute(statement, parameters)


def _run_executemany(cursor, statement, parameters, context):
    cursor.executemany(statement, parameters)


def _run_execute_no_params(cursor, statement, context):
    cursor.execute(statement)


def _lock_busy(exc):
    """Why trying the same statement again may pass: another connection holds the lock it needs.

    Only plain SQLITE_BUSY: SQLITE_BUSY_SNAPSHOT (a write after another connection's commit in the
    same transaction) needs the whole transaction again, which JobContext.write does.
    """
    if isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
        return "the database is locked by another writer"
    return None


def _wait_out_locks(*args, runs, busy_seconds):
    """Run a statement; while another connection holds the lock it needs, try it again every
    0.1 s at most, up to `busy_seconds` (SQLITE_BUSY_TIMEOUT_SECONDS, or the BUSY_SECONDS option).

    This is SQLite's busy wait moved into Python: it sleeps through `time.sleep`, so under gevent
    the other greenlets (pages, event streams) run meanwhile, which SQLite's own wait forbids.
    Retrying the statement is what SQLite's busy handler does itself: a failed lock changes nothing.
    """
    context = args[-1]
    try:
        runs(*args)
        return True
    except sqlite3.OperationalError as exc:
        if _lock_busy(exc) is None:
            raise
    options = context.execution_options
    patience = dataclasses.replace(_LOCK_POLL, seconds=float(options.get(BUSY_SECONDS, busy_seconds)))
    listener = options.get(BUSY_LISTENER)
    started = time.monotonic()
    try:
        call_with_retries(lambda: runs(*args), patience, reason=_lock_busy,
                          on_wait=(lambda delay, _why, _n: listener(time.monotonic() - started)) if listener else None)
    except GaveUp as exc:
        raise exc.last from None  # the sqlite3 error itself: SQLAlchemy wraps it as usual
    return True


# PostgreSQL: serialization failure, deadlock, lock not available, too many connections.
_TRANSIENT_PG_CODES = {"40001", "40P01", "55P03", "53300"}


def transient_reason(exc):
    """Why a failed transaction may succeed if tried again (locked, busy, deadlock, connection
    lost), or None when trying again would fail the same way."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    if exc.connection_invalidated:
        return "the connection to the database was lost"
    orig = exc.orig
    text = str(orig).lower()
    if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
        return "the database is locked by another writer"
    code = getattr(getattr(orig, "diag", None), "sqlstate", None) or getattr(orig, "sqlstate", None)
    if code in _TRANSIENT_PG_CODES:
        return f"the database is busy ({code})"
    return None


def insert_ignoring_conflicts(conn, table, rows, returning=None):
    """INSERT rows, skipping those that violate a unique constraint; returns RETURNING rows if asked.

    One statement per call (callers pass a batch), on SQLite and PostgreSQL alike.
    """
    if not rows:
        return []
    own = returning is None or all(isinstance(c, sa.Column) and c.table is table for c in returning)
    if own:  # built once per table and RETURNING list: building it again cost more than a one-row insert
        names = tuple(c.key for c in returning) if returning is not None else None
        stmt = _insert_ignoring(conn.dialect.name, table, names)
    else:
        stmt = _insert_ignoring.__wrapped__(conn.dialect.name, table, None).returning(*returning)
    # An executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues") from a
    # cached statement, instead of compiling a new one for every batch of rows.
    if returning is not None:
        return conn.execute(stmt, rows).all()
    conn.execute(stmt, rows)
    return []


@functools.lru_cache(maxsize=256)
def _insert_ignoring(dialect, table, returning):
    if dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return stmt.returning(*(table.c[name] for name in returning)) if returning is not None else stmt
