"""Rows of `stored_settings` and the `settings_version` counter, read and written with SQL Core
(outside the request's session, so a refresh never disturbs what a request or a job has open)."""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from ..models import SettingsVersion, StoredSetting

VERSION_ID = 1
_settings = StoredSetting.__table__
_version = SettingsVersion.__table__


# Plain SQL: every request reads it (LiveSettings.refresh), and SQLAlchemy's building of the
# statement cost several times the primary-key read itself.
_READ_VERSION_SQL = f"SELECT version FROM settings_version WHERE id = {VERSION_ID}"


def read_version(conn):
    return conn.exec_driver_sql(_READ_VERSION_SQL).scalar()


def read_rows(conn):
    """(version, {name: (value text, encrypted)}) read in one transaction."""
    version = read_version(conn)
    rows = conn.execute(sa.select(_settings.c.name, _settings.c.value, _settings.c.encrypted)).all()
    return version, {name: (value, bool(encrypted)) for name, value, encrypted in rows}


def write(conn, changes):
    """Apply {name: (stored text, encrypted) or None to remove} and move the version, in one transaction."""
    now = time.time()
    for name, stored in changes.items():
        conn.execute(_settings.delete().where(_settings.c.name == name))
        if stored is not None:
            conn.execute(_settings.insert().values(name=name, value=stored[0], encrypted=stored[1], updated_at=now))
    bumped = conn.execute(_version.update().where(_version.c.id == VERSION_ID)
                          .values(version=_version.c.version + 1))
    if not bumped.rowcount:
        conn.execute(_version.insert().values(id=VERSION_ID, version=1))


def encode(value):
    return json.dumps(value)


def decode(text):
    return json.loads(text)
