"""GET /api/v1/jobs/<id>/events over a real gunicorn server (one gevent worker), read by a real SSE client.

One server serves the whole module; every test ends the jobs it started (the `api` fixture cancels
whatever a failing test left running), so the next test can start its own job of the same kind.
"""
from __future__ import annotations

import calendar
import json
import shutil
import time

import pytest
import requests

from tests.conftest import Server

HEARTBEAT = 0.5  # SSE_HEARTBEAT_SECONDS of the module's server
# Every request asks the server to close its connection afterwards: no idle keep-alive socket
# (say, one a failed test's traceback still holds) makes gunicorn wait at shutdown.
http = requests.Session()
http.headers["Connection"] = "close"
FINAL = {"completed", "error", "cancelled", "interrupted"}
SNAPSHOT_KEYS = {"id", "kind", "status", "overall_progress", "elapsed_time", "eta_seconds", "rate",
                 "current_step", "steps", "done", "total", "counters", "errors_sample", "errors_total",
                 "message", "result", "redirect_url", "version", "created_at", "started_at", "finished_at"}


# --------------------------------------------------------------------------- SSE client
class EventStream:
    """A small Server-Sent Events client over a streaming `requests` response.

    Iterating yields one dict per block the server sends, with `at` (time.monotonic() on arrival):
    {"retry": 2000}, {"comment": "heartbeat"} or {"id": 12, "event": "progress", "data": {...}}
    (data decoded from JSON). Iteration ends when the server closes the stream.
    """

    def __init__(self, url, last_event_id=None, read_timeout=5.0):
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = http.get(url, headers=headers, stream=True, timeout=(5, read_timeout))
        self.trailing = b""  # bytes after the last complete block when the stream closed
        self._blocks = self._parse(self.response.iter_content(chunk_size=None))

    def _parse(self, chunks):
        buffer, block = b"", {}
        for chunk in chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.rstrip(b"\r").decode("utf-8")
                if not line:  # a blank line ends the block
                    if block:
                        if "data" in block:
                            block["data"] = json.loads(block["data"])
                        block["at"] = time.monotonic()
                        yield block
                        block = {}
                    continue
                if line.startswith(":"):
                    block["comment"] = line[1:].strip()
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    block["data"] = block["data"] + "\n" + value if "data" in block else value
                elif name in ("id", "retry"):
                    block[name] = int(value)
                else:
                    block[name] = value
        self.trailing = buffer + (json.dumps(block).encode() if block else b"")

    def __iter__(self):
        return self._blocks

    def next_event(self, timeout=5.0):
        """The next block that is an event (skipping retry and heartbeat blocks)."""
        deadline = time.monotonic() + timeout
        for block in self._blocks:
            if "event" in block:
                return block
            assert time.monotonic() < deadline, "no event in time"
        raise AssertionError("the stream closed before the next event")

    def read_to_end(self, timeout=10.0):
        """Every remaining block; fails unless the server closes the stream within `timeout`."""
        deadline, blocks = time.monotonic() + timeout, []
        for block in self._blocks:
            blocks.append(block)
            assert time.monotonic() < deadline, f"the stream did not close in {timeout}s: {blocks[-3:]}"
        assert self.trailing == b"", f"the stream closed in the middle of a block: {self.trailing!r}"
        return blocks

    def close(self):
        self.response.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def events_of(blocks):
    return [b for b in blocks if "event" in b]


def assert_ordered(events):
    """Progress events carry increasing ids equal to their snapshot's version; `done` comes last, once.

    An id comes twice only for Sillon's stalled note on a snapshot (a late beat) or its end."""
    progress = [e for e in events if e["event"] == "progress"]
    ids = [e["id"] for e in progress]
    assert ids == sorted(ids), f"event ids not increasing: {ids}"
    for one, two in zip(progress, progress[1:], strict=False):
        if one["id"] == two["id"]:
            assert "stalled_seconds" in one["data"] or "stalled_seconds" in two["data"], \
                f"version {one['id']} sent twice without a stalled note: {ids}"
    assert all(e["data"]["version"] == e["id"] for e in progress), "an event id differs from its version"
    assert [e["event"] for e in events].count("done") == 1 and events[-1]["event"] == "done"
    done = events[-1]
    assert done["id"] == done["data"]["version"]
    if progress:
        assert done["id"] == progress[-1]["id"], "done does not carry the last version"
    return progress, done


# --------------------------------------------------------------------------- API helpers
def start_check(url, duration, rate):
    r = http.post(f"{url}/api/v1/diagnostics/progress-check", params={"duration": duration, "rate": rate},
                      timeout=5)
    assert r.status_code == 202, r.text
    return r.json()


def snapshot(url, job_id, timeout=5):
    r = http.get(f"{url}/api/v1/jobs/{job_id}", timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(url, job_id, statuses=FINAL, timeout=10.0, interval=0.05):
    """Poll the snapshot until its status is one of `statuses`; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot(url, job_id)
        if snap["status"] in statuses:
            return snap
        assert time.monotonic() < deadline, f"job {job_id} still {snap['status']} after {timeout}s"
        time.sleep(interval)


def end_active_jobs(url, timeout=15.0):
    """Cancel every queued or running job and wait for each to end."""
    for status in ("queued", "running"):
        for job in http.get(f"{url}/api/v1/jobs", params={"status": status}, timeout=timeout).json()["items"]:
            http.post(f"{url}/api/v1/jobs/{job['id']}/cancel", timeout=timeout)
            wait_status(url, job["id"], timeout=timeout)


def listens_total(url):
    r = http.get(f"{url}/api/v1/listens", params={"page_size": 1}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def generated_csv(rows, artist="Generated Artist", start=(2010, 1, 1)):
    """A header-less Last.fm export (artist,album,track,date), one distinct listen a minute."""
    base = calendar.timegm((*start, 0, 0, 0))
    lines = []
    for i in range(rows):
        played = time.strftime("%d %b %Y %H:%M", time.gmtime(base + 60 * i))
        lines.append(f"{artist} {i % 97},Album {i % 13},Track {i},{played}")
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server(tmp_path_factory, migrated_template):
    instance = tmp_path_factory.mktemp("streams-server")
    shutil.copy(migrated_template, instance / "sillon.db")
    srv = Server(instance, workers=1, env={"SSE_HEARTBEAT_SECONDS": str(HEARTBEAT)})
    yield srv
    srv.stop()


@pytest.fixture
def api(server):
    """The module's server URL; whatever job a test leaves running is ended afterwards."""
    yield server.url
    end_active_jobs(server.url)


# --------------------------------------------------------------------------- tests
def test_events_arrive_in_order_and_end_with_done(api):
    job = start_check(api, duration=1.5, rate=50)
    with EventStream(api + job["events_url"]) as stream:
        blocks = stream.read_to_end(timeout=10)  # it closes by itself once the job ends

    assert blocks[0]["retry"] > 0
    events = events_of(blocks)
    progress, done = assert_ordered(events)
    first = progress[0]
    assert first["event"] == "progress" and SNAPSHOT_KEYS <= set(first["data"]), "first event is not a full snapshot"
    assert first["data"]["id"] == job["job_id"] and first["data"]["kind"] == "progress_check"
    assert len(progress) >= 5, "changes were not streamed while the job ran"

    # While the count runs, done grows up to its total.
    counting = [e["data"] for e in progress if e["data"]["current_step"] == "updates" and e["data"]["total"]]
    assert counting, "no event showed the running count"
    assert all(s["total"] == 75 and 0 <= s["done"] <= 75 for s in counting)
    dones = [s["done"] for s in counting]
    assert dones == sorted(dones)

    last = progress[-1]["data"]
    assert last["status"] == "completed" and last["overall_progress"] == 100.0
    assert last["counters"] == {"updates": 75} and last["result"]["updates"] == 75
    assert all(step["status"] == "completed" for step in last["steps"])
    counted = {step["id"]: (step.get("done"), step.get("total")) for step in last["steps"]}
    assert counted["updates"] == (75, 75), "the finished step does not keep its final count"
    assert done["data"] == {"status": "completed", "redirect_url": None, "message": last["message"],
                            "version": last["version"]}
    assert snapshot(api, job["job_id"]) == last  # the polling view agrees with the stream


def test_reconnect_with_last_event_id_does_not_replay(api):
    job = start_check(api, duration=1.5, rate=50)
    url = api + job["events_url"]
    with EventStream(url) as stream:
        seen = [stream.next_event(), stream.next_event()]
    assert seen[0]["id"] < seen[1]["id"]
    last_id = seen[1]["id"]

    # The job moves on while the client is away.
    deadline = time.monotonic() + 10
    while snapshot(api, job["job_id"])["version"] <= last_id + 2:
        assert time.monotonic() < deadline, "the job did not move on"
        time.sleep(0.02)
    with EventStream(url, last_event_id=last_id) as stream:
        blocks = stream.read_to_end()
    events = events_of(blocks)
    progress, done = assert_ordered(events)
    assert events[0]["id"] > last_id, f"replayed version {events[0]['id']} <= {last_id}"
    assert events[0]["event"] == "progress" and SNAPSHOT_KEYS <= set(events[0]["data"])
    assert done["data"]["status"] == "completed"
    final_version = done["id"]

    # After the end, a client that already saw the final version gets `done` alone, then the close.
    with EventStream(url, last_event_id=final_version) as stream:
        blocks = stream.read_to_end(timeout=3)
    events = events_of(blocks)
    assert [(e["event"], e["id"]) for e in events] == [("done", final_version)]
    assert events[0]["data"]["status"] == "completed"
    assert "retry" in blocks[0]


def test_a_finished_job_gets_its_snapshot_then_done(api):
    job = start_check(api, duration=0.2, rate=50)
    final = wait_status(api, job["job_id"])
    assert final["status"] == "completed"
    with EventStream(api + job["events_url"]) as stream:
        blocks = stream.read_to_end(timeout=3)
    assert [next(k for k in ("retry", "event", "comment") if k in b) for b in blocks] == ["retry", "event", "event"]
    snap, done = blocks[1], blocks[2]
    assert snap["event"] == "progress" and snap["id"] == final["version"] and snap["data"] == final
    assert done["event"] == "done" and done["id"] == final["version"]
    assert done["data"]["status"] == "completed" and done["data"]["version"] == final["version"]


def test_unknown_job_is_a_json_404(api):
    r = http.get(f"{api}/api/v1/jobs/no-such-job/events", headers={"Accept": "text/event-stream"}, timeout=5)
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert "error" in r.json()
    assert http.get(f"{api}/api/v1/jobs/no-such-job", timeout=5).status_code == 404


def test_stream_headers_and_retry_line(api):
    job = start_check(api, duration=0.3, rate=20)
    r = http.get(api + job["events_url"], stream=True, timeout=5)
    try:
        assert r.status_code == 200
        assert r.headers["Content-Type"].split(";")[0].strip() == "text/event-stream"
        assert "no-cache" in r.headers["Cache-Control"]
        assert r.headers["X-Accel-Buffering"] == "no"
        assert "Content-Length" not in r.headers
        first_line = next(r.iter_lines(decode_unicode=True))
        assert first_line.startswith("retry: ") and int(first_line.split(": ", 1)[1]) > 0
    finally:
        r.close()
    wait_status(api, job["job_id"])


def test_heartbeat_comments_while_idle(api):
    job = start_check(api, duration=2, rate=1)  # one change a second; heartbeats every 0.5 s
    with EventStream(api + job["events_url"]) as stream:
        blocks = stream.read_to_end(timeout=10)
    heartbeats = [b for b in blocks if b.get("comment") == "heartbeat"]
    assert len(heartbeats) >= 2, blocks
    assert all(set(b) == {"comment", "at"} for b in heartbeats)  # a bare comment, no event fields
    progress = [b for b in blocks if b.get("event") == "progress"]
    between = [h for h in heartbeats if progress[0]["at"] < h["at"] < progress[-1]["at"]]
    assert between, "no heartbeat between two progress events"
    assert_ordered(events_of(blocks))


def test_waiting_streams_hold_no_database_connection(api, app):
    # The server builds its engine like this app: SQLAlchemy's QueuePool of 5 + 10 overflow, 30 s
    # timeout. 30 streams holding a connection each would exhaust it, and every request after them
    # would wait 30 s for one.
    from modules.db import db
    with app.app_context():
        pool = db.engine.pool
        assert pool.size() + pool._max_overflow < 30 and pool._timeout >= 10

    job = start_check(api, duration=30, rate=2)
    streams = []
    try:
        for i in range(30):
            try:
                streams.append(EventStream(api + job["events_url"], read_timeout=5))
            except requests.Timeout:
                pytest.fail(f"stream {i + 1} did not open in 5 s: the open streams hold the pool's connections")
        first_ids = [stream.next_event()["id"] for stream in streams]  # each is past its connect phase
        for _ in range(3):
            for path in ("/api/v1/listens", "/api/v1/jobs", f"/api/v1/jobs/{job['job_id']}"):
                # Answered while the 30 streams are open (a pool held by them would make it wait
                # 30 s for a connection: the 5 s timeout fails the test first).
                r = http.get(api + path, timeout=5)
                assert r.status_code == 200, r.text
        for stream, first_id in zip(streams, first_ids, strict=True):  # every stream still follows the job
            assert stream.next_event()["id"] > first_id

        assert http.post(f"{api}/api/v1/jobs/{job['job_id']}/cancel", timeout=5).status_code == 202
        for stream in streams:
            events = events_of(stream.read_to_end(timeout=5))
            assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "cancelled"
    finally:
        for stream in streams:
            stream.close()


def test_cancel_ends_the_stream_with_cancelled(api):
    job = start_check(api, duration=30, rate=10)
    with EventStream(api + job["events_url"]) as stream:
        assert stream.next_event()["data"]["status"] in ("queued", "running")
        stream.next_event()
        r = http.post(f"{api}/api/v1/jobs/{job['job_id']}/cancel", timeout=5)
        assert r.status_code == 202 and r.json()["status"] == "cancelling"
        at_cancel = snapshot(api, job["job_id"])["counters"].get("updates", 0)
        blocks = stream.read_to_end(timeout=5)
    events = events_of(blocks)
    assert events[-1]["event"] == "done" and events[-1]["data"]["status"] == "cancelled"
    final = snapshot(api, job["job_id"])
    assert final["status"] == "cancelled" and final["version"] == events[-1]["id"]
    # Heard at the job's next check: a few updates after the cancel, not the 300 it had left.
    assert at_cancel <= final["counters"]["updates"] <= at_cancel + 5 < 300, (at_cancel, final["counters"])
    # The kind is free again, and cancelling an ended job changes nothing.
    again = http.post(f"{api}/api/v1/jobs/{job['job_id']}/cancel", timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    start_check(api, duration=0.1, rate=10)


def test_streams_and_requests_stay_live_during_a_big_import(api):
    # The import is a greenlet of the same worker: unless ctx.check() lets the event loop poll
    # sockets (gevent.sleep(0) does not), the stream and the request wait for the whole job.
    r = http.post(f"{api}/api/v1/imports", files={"files": ("big.csv", generated_csv(20000, "Busy Artist"))},
                  timeout=30)
    assert r.status_code == 202, r.text
    job = r.json()
    stream = None
    try:
        stream = EventStream(api + job["events_url"], read_timeout=2)
        first = stream.next_event(timeout=2)
        assert first["data"]["status"] in ("queued", "running")
        # While the import runs: several progress events, and a snapshot request answered in
        # between, all before the job's end. A worker held by the import would send nothing
        # until the end (or time out a read: 2 s).
        running = []
        for block in stream:
            data = block.get("data") or {}
            if block.get("event") != "progress" or data.get("status") != "running":
                continue
            running.append(data["version"])
            if len(running) == 2:
                polled = snapshot(api, job["job_id"], timeout=2)
                assert polled["status"] == "running", polled["status"]
            if len(running) == 4:
                break
        assert len(running) == 4 and running == sorted(set(running)), running  # two after the request
    except requests.RequestException as exc:  # a read timed out: the worker did not answer for 2 s
        pytest.fail(f"the server did not answer for 2 s while the import ran: {exc!r}")
    finally:
        if stream is not None:
            stream.close()


def test_a_stopping_server_ends_its_open_streams_at_once_without_done(server_factory):
    """SIGTERM (a stop, a restart): a job's stream and the journal's stream end without a `done`
    event, so their pages reconnect to the server that answers next, and gunicorn does not wait out
    its graceful timeout for them (before, each stop with an open stream took graceful_timeout)."""
    import os
    import signal

    # The shipped heartbeat (15 s): a waiting stream would not write before the graceful timeout.
    server = server_factory()
    job = start_check(server.url, duration=60, rate=2)
    job_stream = EventStream(server.url + job["events_url"], read_timeout=60)
    journal_stream = EventStream(server.url + "/journal/events", read_timeout=60)
    try:
        assert job_stream.next_event()["data"]["status"] in ("queued", "running")
        assert next(iter(journal_stream)) == {"retry": 2000, "at": pytest.approx(time.monotonic(), abs=60)}
        os.killpg(server.proc.pid, signal.SIGTERM)
        job_events = events_of(job_stream.read_to_end(timeout=60))
        journal_blocks = journal_stream.read_to_end(timeout=60)
        assert server.proc.wait(60) == 0
    finally:
        job_stream.close()
        journal_stream.close()
    assert "done" not in [e["event"] for e in job_events]
    assert [b for b in journal_blocks if "event" in b] == []
    log = server.log()
    assert "Worker graceful timeout" not in log, log
