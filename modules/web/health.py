"""GET /api/v1/health: is the app up, and what this process holds open (streams, greenlets, threads).

The counts let an operator (and the soak bench) see leaks: after streams close, open streams,
store subscriptions, greenlets and threads go back to where they were. No setting, URL or
secret is shown; the pid only says which worker answered.
"""
from __future__ import annotations

import gc
import os
import threading

import sqlalchemy as sa
from flask import current_app
from marshmallow import fields, validate

from ..db import db
from . import streams
from .api_schemas import Answer
from .openapi import Blueprint

bp = Blueprint("health", __name__, url_prefix="/api/v1", description="Health")


class Process(Answer):
    pid = fields.Integer()
    open_streams = fields.Integer()
    store_subscriptions = fields.Integer()
    greenlets = fields.Integer()
    threads = fields.Integer()
    os_threads = fields.Integer(allow_none=True)
    open_fds = fields.Integer(allow_none=True)
    db_connections_checked_out = fields.Integer(allow_none=True)


class Health(Answer):
    status = fields.String(required=True, validate=validate.OneOf(("ok", "degraded")))
    version = fields.String()
    database = fields.String(required=True, validate=validate.OneOf(("ok", "unreachable")))
    process = fields.Nested(Process, required=True)


def _greenlets():
    """Greenlets alive in this process (0 without gevent). A full scan of the heap: cheap enough
    for a health check, too slow for a hot path."""
    try:
        from greenlet import greenlet
    except ImportError:  # pragma: no cover - greenlet comes with gevent
        return 0
    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet) and not obj.dead)


def _os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return None


def _open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@bp.get("/health")
@bp.response(200, Health, description="Up")
@bp.alt_response(503, schema=Health, description="The database does not answer")
def health():
    """Is the app up; what the answering process holds open (no secrets)"""
    sillon = current_app.extensions["sillon"]
    try:
        db.session.execute(sa.text("SELECT 1"))
        database = "ok"
    except sa.exc.SQLAlchemyError:
        database = "unreachable"
    finally:
        db.session.remove()
    pool = db.engine.pool
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "version": current_app.config["SILLON_VERSION"],
        "database": database,
        "process": {
            "pid": os.getpid(),
            "open_streams": streams.open_streams(),
            "store_subscriptions": sillon["progress_store"].fanout.count(),
            "greenlets": _greenlets(),
            "threads": threading.active_count(),  # under gevent: greenlet-backed threads included
            "os_threads": _os_threads(),
            "open_fds": _open_fds(),
            "db_connections_checked_out": pool.checkedout() if hasattr(pool, "checkedout") else None,
        },
    }
    return body, 200 if database == "ok" else 503
