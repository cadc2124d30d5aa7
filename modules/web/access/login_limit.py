"""At most MAX_FAILURES wrong passwords per WINDOW seconds from one address, then 429.

Kept in the preferences table rather than Flask-Limiter's memory store: every gunicorn worker (and
every machine sharing the database) counts the same failures, with no Redis needed and no migration.
Two workers racing may each let one extra try through; the bound stays a handful, not thousands.
"""
from __future__ import annotations

import time

from ... import preferences

MAX_FAILURES = 5
WINDOW = 300.0
PREFIX = "login_failures:"


def _recent(address, now):
    stamps = preferences.get(PREFIX + address) or []
    return [t for t in stamps if isinstance(t, (int, float)) and now - WINDOW < t <= now]


def seconds_blocked(address, now=None):
    """How long `address` must wait before trying again (0: it may try now)."""
    now = time.time() if now is None else now
    recent = _recent(address, now)
    if len(recent) < MAX_FAILURES:
        return 0
    return max(0.0, sorted(recent)[-MAX_FAILURES] + WINDOW - now)


def record_failure(address, now=None):
    now = time.time() if now is None else now
    preferences.put(PREFIX + address, (_recent(address, now) + [now])[-MAX_FAILURES:])


def forget(address):
    if preferences.get(PREFIX + address):
        preferences.put(PREFIX + address, None)
