"""Who runs a job: the owner string kept in `jobs.owner`, made and read here only.

`host:pid` for a server process, `celery@host:pid` for a Celery worker process, BROKER_OWNER for a
job waiting in the broker (no process runs it yet). The pid is recomputed per call: gunicorn forks
its workers after import, so the pid at import is the master's.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

BROKER_OWNER = "celery:queued"
WORKER_PREFIX = "celery@"
# WORKER_PREFIX in Celery worker processes (celery_app.flask_app sets it).
prefix = ""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int | None
    celery: bool

    @property
    def label(self):
        """How a page names it: "celery worker on host (pid 12)", "server process on host (pid 12)"."""
        what = "celery worker" if self.celery else "server process"
        return f"{what} on {self.host} (pid {self.pid})" if self.pid else f"{what} on {self.host}"


def current():
    """This process's owner string."""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}"


def parse(owner):
    """An Owner from an owner string; None for BROKER_OWNER or nothing."""
    if not owner or owner == BROKER_OWNER:
        return None
    host, _, pid = owner.rpartition(":")
    celery = host.startswith(WORKER_PREFIX)
    return Owner(host.removeprefix(WORKER_PREFIX), int(pid) if pid.isdigit() else None, celery)


def label(owner):
    parsed = parse(owner)
    return parsed.label if parsed else "the broker"


def dead_here(owner):
    """True when `owner` is a process of this host that no longer runs (a dead or zombie pid)."""
    parsed = parse(owner)
    if parsed is None or parsed.pid is None or parsed.host != socket.gethostname():
        return False
    return not pid_alive(parsed.pid)


def pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie runs nothing
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
