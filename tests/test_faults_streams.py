"""1,000 event-stream connects and disconnects against a real gunicorn gevent worker leave nothing behind.

GET /api/v1/health reports what the answering process holds: open streams, progress-store
subscriptions, greenlets and threads. A long progress check runs while clients connect, read
the first event (or nothing at all) and hang up; afterwards, once the worker has noticed every
hang-up (it does at its next write: a progress event or a heartbeat, both within half a second
here), the numbers are back where they started. Counts are compared, nothing is timed.
"""
from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.test_streams_server import end_active_jobs, start_check

ENV = {"SSE_HEARTBEAT_SECONDS": "0.5", "JOB_HEARTBEAT_SECONDS": "0.5"}
CYCLES = 1000
CLIENTS = 10


def health(url):
    r = requests.get(f"{url}/api/v1/health", timeout=10, headers={"Connection": "close"})
    assert r.status_code == 200, r.text
    return r.json()["process"]


def read_first_event(url, path):
    """Connect, read up to the first progress event, hang up."""
    with requests.get(url + path, stream=True, timeout=10, headers={"Connection": "close"}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(b"data:"):
                return


def hang_up_at_once(url, path):
    """Send the request and close the socket before reading anything."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode())


@pytest.fixture
def server(server_factory):
    server = server_factory(workers=1, env=ENV)
    yield server
    end_active_jobs(server.url)


COUNTS = ("greenlets", "threads", "os_threads")


def at_rest(url, timeout=30):
    """The worker's counts at rest: no stream open, and the same counts twice in a row half a
    second apart. Fails the test if it does not come to rest within `timeout` s."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        now = health(url)
        quiet = now["open_streams"] == 0 and now["store_subscriptions"] == 0
        if quiet and previous is not None and all(now[k] == previous[k] for k in COUNTS):
            return now
        previous = now if quiet else None
        assert time.monotonic() < deadline, f"the worker did not come to rest within {timeout} s: {now}"
        time.sleep(0.5)


def settled(url, before, timeout=30):
    """Poll health until the counts are back to `before`; fails the test if they are not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        now = health(url)
        if (now["open_streams"] == 0 and now["store_subscriptions"] == 0
                and all(now[k] <= before[k] for k in COUNTS)):
            return now
        assert time.monotonic() < deadline, f"not back to {before} within {timeout} s: {now}"
        time.sleep(0.25)


def test_a_thousand_stream_cycles_leave_no_stream_greenlet_or_thread_behind(server):
    job = start_check(server.url, duration=600, rate=4)
    path = job["events_url"]
    for _ in range(5):  # warm up: the store's watcher, the worker's first streams
        read_first_event(server.url, path)
    before = at_rest(server.url)

    # The count is real: 20 streams held open are 20 open streams and 20 subscriptions.
    held = [requests.get(server.url + path, stream=True, timeout=10, headers={"Connection": "close"})
            for _ in range(20)]
    for r in held:
        next(r.iter_lines())
    during = health(server.url)
    assert during["open_streams"] == 20 and during["store_subscriptions"] == 20, during
    assert during["greenlets"] >= before["greenlets"] + 20, during
    for r in held:
        r.close()

    failures = []

    def client(n):
        try:
            for i in range(CYCLES // CLIENTS):
                if i % 4 == 3:
                    hang_up_at_once(server.url, path)
                else:
                    read_first_event(server.url, path)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures[:3]

    after = settled(server.url, before)
    assert after["open_streams"] == 0, after
    assert after["store_subscriptions"] == 0, after
    assert after["greenlets"] <= before["greenlets"], (before, after)
    assert after["threads"] <= before["threads"], (before, after)
    assert after["os_threads"] <= before["os_threads"], (before, after)
    assert after["pid"] == before["pid"]  # the same worker all along
    assert requests.get(f"{server.url}/api/v1/jobs/{job['job_id']}", timeout=10).json()["status"] == "running"


def test_health_shows_no_secret(server_factory):
    server = server_factory(workers=1, env={"SECRET_KEY": "s3cret-key-value", "LASTFM_API_KEY": "lfm-key-value",
                                            "LASTFM_API_SECRET": "lfm-secret-value"})
    r = requests.get(f"{server.url}/api/v1/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["database"] == "ok"
    for secret in ("s3cret-key-value", "lfm-key-value", "lfm-secret-value", "sqlite:", "postgresql"):
        assert secret not in r.text
