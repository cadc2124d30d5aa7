"""The database handle, connection settings, and bulk-write helpers shared by importers."""
from __future__ import annotations

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
            sa.event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_conn, _record):
    # WAL lets streams read while a job writes; busy_timeout makes a writer wait for a lock
    # held by another process instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


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
