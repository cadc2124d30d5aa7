"""The Flask extension: endpoints, access hook, cancel, jobs in a thread, configuration, static client."""
import json
import threading
import time

import pytest
from flask import Flask
from flask_jobprogress import Cancelled, DatabaseStore, JobProgress, MemoryStore


def make_app(**options):
    app = Flask(__name__)
    progress = JobProgress(app, **options)
    return app, progress


def wait_for(condition, timeout=10.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def events_of(response):
    """The SSE blocks of a streamed test-client response, decoded."""
    blocks = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if not block:
            continue
        fields = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        blocks.append(fields)
    return blocks


def test_snapshot_endpoint_serves_the_trackers_state_and_404s_unknown_jobs():
    app, progress = make_app()
    client = app.test_client()
    with app.app_context():
        tracker = progress.tracker("convert", [("read", "Read"), ("write", "Write", 3)])
    got = client.get(f"/jobs/{tracker.id}")
    assert got.status_code == 200 and got.json["status"] == "queued" and got.json["kind"] == "convert"
    assert [s["id"] for s in got.json["steps"]] == ["read", "write"]
    tracker.start()
    tracker.start_step("read")
    tracker.flush()
    assert client.get(f"/jobs/{tracker.id}").json["current_step"] == "read"
    missing = client.get("/jobs/nope")
    assert missing.status_code == 404 and missing.json == {"error": "no job nope"}
    assert client.get("/jobs/nope/events").status_code == 404
    assert client.post("/jobs/nope/cancel").status_code == 404


def test_event_stream_sends_the_snapshot_then_every_change_then_done():
    app, progress = make_app(heartbeat=1.0)
    client = app.test_client()
    with app.app_context():
        tracker = progress.tracker("convert", [("read", "Read")], min_interval=0.01)
    tracker.start()

    def work():
        wait_for(lambda: progress.open_streams(app) == 1, what="the stream to open")
        tracker.start_step("read")
        tracker.set_total(5)
        for _ in range(5):
            tracker.advance(converted=1)
            time.sleep(0.02)
        tracker.complete(result={"files": 5}, redirect_url="/result/1")

    worker = threading.Thread(target=work)
    worker.start()
    response = client.get(f"/jobs/{tracker.id}/events")
    worker.join()
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no" and "no-cache" in response.headers["Cache-Control"]
    blocks = [b for b in events_of(response) if "event" in b]  # not retry: nor heartbeats
    assert blocks[0]["event"] == "progress" and blocks[0]["data"]["status"] == "running"
    ids = [int(b["id"]) for b in blocks]
    assert ids == sorted(ids) and len(set(ids[:-1])) == len(ids) - 1  # `done` repeats the last version
    assert blocks[-2]["data"]["status"] == "completed" and blocks[-2]["data"]["counters"] == {"converted": 5}
    assert blocks[-1]["event"] == "done" and blocks[-1]["data"]["redirect_url"] == "/result/1"
    assert progress.open_streams(app) == 0


def test_last_event_id_of_the_current_version_gets_no_repeat():
    app, progress = make_app()
    client = app.test_client()
    with app.app_context():
        tracker = progress.tracker("convert", [("read", "Read")])
    tracker.start()
    tracker.complete(redirect_url="/r")
    version = client.get(f"/jobs/{tracker.id}").json["version"]
    again = events_of(client.get(f"/jobs/{tracker.id}/events", headers={"Last-Event-ID": str(version)}))
    assert [b.get("event") for b in again] == [None, "done"]  # retry:, then done only
    fresh = events_of(client.get(f"/jobs/{tracker.id}/events", headers={"Last-Event-ID": str(version - 1)}))
    assert [b.get("event") for b in fresh] == [None, "progress", "done"]


def test_authorize_hook_guards_every_endpoint():
    asked = []

    def authorize(job_id, action):
        asked.append((job_id, action))
        return job_id.startswith("mine-")

    app, progress = make_app(authorize=authorize)
    client = app.test_client()
    with app.app_context():
        theirs = progress.tracker("convert", job_id="theirs-1")
        mine = progress.tracker("convert", job_id="mine-1")
    for method, path in (("get", ""), ("get", "/events"), ("post", "/cancel")):
        denied = getattr(client, method)(f"/jobs/{theirs.id}{path}")
        assert denied.status_code == 403 and denied.json == {"error": "forbidden"}
    assert not theirs.cancel_requested
    assert asked == [("theirs-1", "snapshot"), ("theirs-1", "events"), ("theirs-1", "cancel")]
    assert client.get(f"/jobs/{mine.id}").status_code == 200


def test_cancel_reaches_a_job_running_in_a_thread():
    app, progress = make_app()
    client = app.test_client()
    steps_seen = []

    def work(tracker):
        tracker.start_step("loop")
        while True:
            steps_seen.append(1)
            if tracker.cancel_requested:
                raise Cancelled("Stopped at your request")
            time.sleep(0.01)

    with app.app_context():
        tracker = progress.tracker("loop", [("loop", "Loop")])
        progress.run_in_thread(tracker, work)
    wait_for(lambda: steps_seen, what="the job to start")
    answer = client.post(f"/jobs/{tracker.id}/cancel")
    assert answer.status_code == 202 and answer.json == {"id": tracker.id, "cancel_requested": True}
    wait_for(lambda: client.get(f"/jobs/{tracker.id}").json["status"] == "cancelled", what="the cancel")
    snap = client.get(f"/jobs/{tracker.id}").json
    assert snap["message"] == "Stopped at your request" and snap["cancel_requested"] is True
    assert client.post(f"/jobs/{tracker.id}/cancel").status_code == 404  # the job is over


def test_run_in_thread_completes_with_the_result_or_fails_with_the_message():
    app, progress = make_app()
    client = app.test_client()
    with app.app_context():
        good = progress.tracker("sum", [("add", "Add")])
        progress.run_in_thread(good, lambda tracker, a, b: {"sum": a + b}, 2, 3)
        bad = progress.tracker("sum", [("add", "Add")])
        progress.run_in_thread(bad, lambda tracker: int("twelve"))
    wait_for(lambda: client.get(f"/jobs/{good.id}").json["status"] == "completed", what="the good job")
    wait_for(lambda: client.get(f"/jobs/{bad.id}").json["status"] == "error", what="the bad job")
    assert client.get(f"/jobs/{good.id}").json["result"] == {"sum": 5}
    assert "invalid literal for int()" in client.get(f"/jobs/{bad.id}").json["message"]


def test_custom_snapshot_and_cancel_hooks_and_a_subset_of_routes():
    store = MemoryStore()
    cancelled = []
    app, progress = make_app(store=store, url_prefix="/api/jobs", routes=("events", "cancel"),
                             snapshot=lambda job_id: {"id": job_id, "version": 1, "status": "completed",
                                                      "redirect_url": "/x"} if job_id == "j" else None,
                             cancel=lambda job_id: cancelled.append(job_id) or job_id == "j")
    client = app.test_client()
    assert client.get("/api/jobs/j").status_code == 404  # no snapshot route
    assert [b.get("event") for b in events_of(client.get("/api/jobs/j/events"))] == [None]  # store is empty
    assert client.get("/api/jobs/k/events").status_code == 404
    assert client.post("/api/jobs/j/cancel").status_code == 202 and cancelled == ["j"]
    with pytest.raises(ValueError, match="unknown routes"):
        make_app(routes=("snapshots",))


def test_the_snapshot_hook_is_asked_every_refresh_seconds_and_its_notes_are_streamed():
    """The app's note on a snapshot (a late worker) reaches the stream without a new version, and
    the JSON route alike; its going away reaches the stream too."""
    store = MemoryStore()
    late = {}

    def snapshot(job_id):
        snap = store.get(job_id)
        return {**snap, "stalled_seconds": late[job_id]} if snap and job_id in late else snap

    app, progress = make_app(store=store, snapshot=snapshot, heartbeat=3600, refresh_seconds=0.01)
    client = app.test_client()
    with app.app_context():
        tracker = progress.tracker("convert", [("read", "Read")])
    tracker.start()
    tracker.flush()
    version = store.get(tracker.id)["version"]
    response = client.get(f"/jobs/{tracker.id}/events", buffered=False)
    chunks = iter(response.response)

    def next_progress():
        for chunk in chunks:
            blocks = [b for b in events_of_text(chunk.decode()) if b.get("event") == "progress"]
            if blocks:
                return blocks[0]
        raise AssertionError("the stream ended")

    first = next_progress()
    assert int(first["id"]) == version and "stalled_seconds" not in first["data"]
    late[tracker.id] = 12.5
    assert client.get(f"/jobs/{tracker.id}").json["stalled_seconds"] == 12.5
    noted = next_progress()  # an hour's heartbeat: only a refresh can send it
    assert int(noted["id"]) == version and noted["data"]["stalled_seconds"] == 12.5
    del late[tracker.id]
    cleared = next_progress()
    assert int(cleared["id"]) == version and cleared["data"] == store.get(tracker.id)
    tracker.complete()
    rest = [b.get("event") for chunk in chunks for b in events_of_text(chunk.decode())]
    assert rest == ["progress", "done"]
    response.close()
    assert progress.open_streams(app) == 0


def events_of_text(text):
    """The SSE blocks of a piece of a stream, decoded (comments and retry: kept as fields)."""
    blocks = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name:
                fields[name] = json.loads(value) if name == "data" else value
        if fields:
            blocks.append(fields)
    return blocks


def test_store_from_configuration(database_url):
    app = Flask(__name__)
    app.config.update(JOBPROGRESS_STORE="database", JOBPROGRESS_DATABASE_URL=database_url)
    progress = JobProgress()
    progress.init_app(app)
    with app.app_context():
        assert isinstance(progress.store, DatabaseStore)
        tracker = progress.tracker("convert", [("read", "Read")])
    # Another process on the same database reads it.
    other = Flask(__name__)
    other.config.update(JOBPROGRESS_STORE="database", JOBPROGRESS_DATABASE_URL=database_url)
    JobProgress(other)
    assert other.test_client().get(f"/jobs/{tracker.id}").json["status"] == "queued"
    progress.store_of(app).engine.dispose()
    other.extensions["jobprogress"].store.engine.dispose()

    bad = Flask(__name__)
    bad.config["JOBPROGRESS_STORE"] = "disk"
    with pytest.raises(ValueError, match="unknown progress store 'disk'"):
        JobProgress(bad)
    bad.config["JOBPROGRESS_STORE"] = "redis"
    with pytest.raises(ValueError, match="needs a Redis URL"):
        JobProgress(bad)


def test_the_browser_client_is_served_as_a_static_file():
    app, _ = make_app()
    with app.test_request_context():
        from flask import url_for

        url = url_for("jobprogress.static", filename="jobprogress.js")
    assert url == "/jobs/static/jobprogress.js"
    got = app.test_client().get(url)
    assert got.status_code == 200 and "window.JobProgress" in got.get_data(as_text=True)
    got.close()
    moved, _ = make_app(url_prefix="/api/jobs/", static_url_path="/assets/jobprogress")
    with moved.test_request_context():
        from flask import url_for

        assert url_for("jobprogress.static", filename="jobprogress.js") == "/assets/jobprogress/jobprogress.js"
        assert url_for("jobprogress.events", job_id="j") == "/api/jobs/j/events"
