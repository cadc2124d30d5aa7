"""The database handle, connection settings, and bulk-write helpers shared by importers."""
from __future__ import annotations

import functools

import sqlalchemy as sa
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import postgresql, sqlite

db = SQLAlchemy()
migrate = Migrate()


def init_app(app):
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.config["MIGRATIONS_DIR"]), render_as_batch=True)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            busy_ms = int(app.config.get("SQLITE_BUSY_TIMEOUT_MS", 30000))
            sa.event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=busy_ms))


def _sqlite_pragmas(dbapi_conn, _record, busy_ms=30000):
    # WAL lets streams read while a job writes; busy_timeout makes a writer wait for a lock
    # held by another process instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


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
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    # An executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues") from a
    # cached statement, instead of compiling a new one for every batch of rows.
    if returning is not None:
        return conn.execute(stmt.returning(*returning), rows).all()
    conn.execute(stmt, rows)
    return []
