"""Settings a person changes from the pages, kept in the database so every process sees them."""
from __future__ import annotations

import time

from .db import db, insert_ignoring_conflicts
from .models import Preference


def get(key, default=None):
    row = db.session.get(Preference, key)
    return default if row is None else row.value


def put(key, value):
    """Store `value` under `key` (insert or update) and commit."""
    table = Preference.__table__
    conn = db.session.connection()
    updated = conn.execute(table.update().where(table.c.key == key).values(value=value, updated_at=time.time()))
    if not updated.rowcount:
        insert_ignoring_conflicts(conn, table, [{"key": key, "value": value, "updated_at": time.time()}])
    db.session.commit()
    db.session.expire_all()
