"""sse.event_stream: snapshot on connect, ordered events, heartbeats, a final `done` event."""
import json
import threading
import time

import pytest
import sqlalchemy as sa
from flask_jobprogress import DatabaseStore, MemoryStore, ProgressTracker, event_stream
from flask_jobprogress import database_store as store_module
from flask_jobprogress.sse import format_event, parse_last_event_id

STEPS = [("fetch", "Fetch", 1), ("import", "Import", 3)]


def parse(chunk):
    """One SSE block as a dict: id (int), event, data (decoded), retry, comment."""
    assert chunk.endswith("\n\n"), repr(chunk)
    fields = {}
    for line in chunk[:-2].split("\n"):
        if line.startswith(":"):
            fields["comment"] = line[1:].strip()
            continue
        name, _, value = line.partition(": ")
        if name == "data":
            fields["data"] = json.loads(value)
        elif name in ("id", "retry"):
            fields[name] = int(value)
        else:
            fields[name] = value
    return fields


def collect(stream, timeout=5.0):
    """Every block the stream yields until it ends, failing if it does not end in time."""
    blocks, deadline = [], time.monotonic() + timeout
    for chunk in stream:
        blocks.append(parse(chunk))
        assert time.monotonic() < deadline, "the stream did not end"
    return blocks


def run_job(tracker, steps=20, pause=0.005, started=None):
    if started:
        started.wait(2)
    tracker.start_step("fetch")
    tracker.set_total(steps)
    for _ in range(steps):
        time.sleep(pause)
        tracker.advance(imported=1)
    tracker.complete_step("fetch")
    tracker.start_step("import")
    tracker.set_message("importing")
    time.sleep(pause)
    tracker.complete(result={"imported": steps}, redirect_url="/library?job=1")


@pytest.fixture
def store():
    return MemoryStore()


def test_stream_follows_a_running_job_to_its_end(store):
    tracker = ProgressTracker("job-1", "file_import", STEPS, publish=store.publish, min_interval=0.01)
    tracker.start("Starting")
    connected_version = store.get("job-1")["version"]
    go = threading.Event()
    worker = threading.Thread(target=run_job, args=(tracker,), kwargs={"started": go})
    worker.start()

    stream = event_stream(store, "job-1", heartbeat=1.0)
    blocks = [parse(next(stream))]  # retry
    blocks.append(parse(next(stream)))  # the snapshot at connect time
    go.set()
    blocks += collect(stream)
    worker.join()

    assert blocks[0] == {"retry": 2000}
    first = blocks[1]
    assert first["event"] == "progress" and first["id"] == connected_version
    assert first["data"]["status"] == "running" and first["data"]["version"] == connected_version
    events = [b for b in blocks[1:] if "comment" not in b]
    progress = [e for e in events if e["event"] == "progress"]
    ids = [e["id"] for e in progress]
    assert ids == sorted(set(ids)), f"ids not increasing: {ids}"
    assert all(e["id"] == e["data"]["version"] for e in progress)
    assert len(progress) > 2  # it streamed changes, not only the first and last state
    assert progress[-1]["data"]["status"] == "completed"
    assert progress[-1]["data"]["counters"] == {"imported": 20}
    done = events[-1]
    assert [e["event"] for e in events].count("done") == 1
    assert done["event"] == "done" and done["id"] == ids[-1] == tracker.version
    assert done["data"] == {"status": "completed", "redirect_url": "/library?job=1", "message": "Done",
                            "version": tracker.version}
    assert store.fanout.count() == 0  # the stream closed its subscription


def test_stream_of_a_finished_job_sends_snapshot_then_done(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    tracker.fail("Discogs said: rate limited")
    blocks = collect(event_stream(store, "job-1"))
    assert [b.get("event") for b in blocks] == [None, "progress", "done"]
    assert blocks[1]["data"]["status"] == "error"
    assert blocks[2]["data"]["status"] == "error" and blocks[2]["data"]["redirect_url"] is None
    assert blocks[2]["data"]["message"] == "Discogs said: rate limited"


def test_reconnect_with_the_current_version_does_not_resend_the_snapshot(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    tracker.complete(redirect_url="/x")
    version = store.get("job-1")["version"]
    blocks = collect(event_stream(store, "job-1", last_event_id=version))
    assert [b.get("event") for b in blocks] == [None, "done"]
    assert blocks[1]["id"] == version and blocks[1]["data"]["redirect_url"] == "/x"


def test_reconnect_to_a_running_job_waits_for_the_next_change(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish, min_interval=0.01)
    tracker.start()
    version = store.get("job-1")["version"]
    stream = event_stream(store, "job-1", last_event_id=version, heartbeat=2.0)
    assert "retry" in parse(next(stream))
    threading.Timer(0.05, tracker.set_message, args=("next",)).start()
    block = parse(next(stream))
    assert block["event"] == "progress" and block["id"] > version and block["data"]["message"] == "next"
    stream.close()
    tracker.complete()


def test_reconnect_with_an_older_version_gets_the_current_snapshot(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    tracker.set_message("moved on")
    tracker.flush()
    stream = event_stream(store, "job-1", last_event_id=1, heartbeat=2.0)
    next(stream)
    block = parse(next(stream))
    assert block["id"] == store.get("job-1")["version"] > 1 and block["data"]["message"] == "moved on"
    stream.close()
    tracker.complete()


def test_reconnect_with_an_id_from_another_run_gets_the_current_snapshot(store):
    # Last-Event-ID above the current version comes from an earlier tracker of the job (before a
    # restart): waiting for that number would hide every event, even the end.
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    tracker.complete()
    blocks = collect(event_stream(store, "job-1", last_event_id=10_000))
    assert [b.get("event") for b in blocks] == [None, "progress", "done"]
    assert blocks[-1]["data"]["status"] == "completed"


def test_heartbeat_comment_when_idle(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    stream = event_stream(store, "job-1", heartbeat=0.05, retry_ms=1500)
    assert parse(next(stream)) == {"retry": 1500}
    assert parse(next(stream))["event"] == "progress"
    assert next(stream) == ": heartbeat\n\n"
    assert next(stream) == ": heartbeat\n\n"
    assert store.fanout.count() == 1
    stream.close()  # the client went away
    assert store.fanout.count() == 0
    tracker.complete()


def test_refresh_on_idle_can_end_the_stream(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    running = store.get("job-1")
    interrupted = dict(running, status="interrupted", version=running["version"] + 1,
                       message="The worker running this job stopped")
    calls = []

    def refresh(job_id):
        calls.append(job_id)
        return running if len(calls) <= 2 else interrupted  # on connect, idle with nothing new, then the verdict

    blocks = collect(event_stream(store, "job-1", heartbeat=0.02, refresh=refresh))
    assert [b.get("event") or b.get("comment") for b in blocks[1:]] == ["progress", "heartbeat", "progress", "done"]
    assert blocks[-1]["data"]["status"] == "interrupted"
    assert calls == ["job-1", "job-1", "job-1"]
    tracker.complete()


def test_refresh_sends_a_same_version_snapshot_whose_content_changed(store):
    """What the app adds to a snapshot (here: its worker is late) reaches the client between
    versions, each time it changes, and so does its going away; an unchanged answer is not sent."""
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    stored = store.get("job-1")
    late = [dict(stored, stalled_seconds=11.0), dict(stored, stalled_seconds=12.0), dict(stored, stalled_seconds=12.0)]
    answers = [stored, *late]  # connect, three idle refreshes, then the stored snapshot again

    def refresh(_job_id):
        return answers.pop(0) if answers else store.get("job-1")

    # An hour's heartbeat: every block below comes from a refresh, asked every 10 ms.
    stream = event_stream(store, "job-1", heartbeat=3600, refresh=refresh, refresh_seconds=0.01)
    blocks = [parse(next(stream)) for _ in range(5)]
    assert [b.get("event") for b in blocks] == [None, "progress", "progress", "progress", "progress"]
    assert {b["id"] for b in blocks[1:]} == {stored["version"]}
    assert [b["data"].get("stalled_seconds") for b in blocks[1:]] == [None, 11.0, 12.0, None]  # 12.0 once
    assert blocks[-1]["data"] == stored
    tracker.advance(imported=1)
    tracker.flush()
    following = parse(next(stream))
    assert following["id"] == stored["version"] + 1 and "stalled_seconds" not in following["data"]
    tracker.complete()
    assert [b.get("event") for b in collect(stream)] == ["progress", "done"]


def test_a_version_written_twice_with_other_content_is_not_sent_again(store):
    """Only the app's own notes are sent at a version already sent: a store whose publishers wrote
    one version twice (the second content differs) is not resent on every refresh."""
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    stream = event_stream(store, "job-1", heartbeat=0.05, refresh=store.get, refresh_seconds=0.01)
    assert parse(next(stream)) == {"retry": 2000}
    first = parse(next(stream))
    store._snapshots["job-1"] = dict(first["data"], message="written again at the same version")
    assert parse(next(stream)) == {"comment": "heartbeat"}  # five refreshes, nothing sent
    stream.close()
    tracker.complete()


def test_a_reconnect_at_the_current_version_gets_only_what_the_app_changed(store):
    tracker = ProgressTracker("job-1", "k", STEPS, publish=store.publish)
    tracker.start()
    stored = store.get("job-1")
    version = stored["version"]

    same = event_stream(store, "job-1", last_event_id=version, heartbeat=0.01, refresh=lambda _j: dict(stored))
    assert [parse(next(same)) for _ in range(2)] == [{"retry": 2000}, {"comment": "heartbeat"}]  # no repeat
    same.close()
    noted = event_stream(store, "job-1", last_event_id=version, heartbeat=0.01,
                         refresh=lambda _j: dict(stored, stalled_seconds=30.0))
    assert parse(next(noted)) == {"retry": 2000}
    first = parse(next(noted))
    assert first["id"] == version and first["data"]["stalled_seconds"] == 30.0
    assert parse(next(noted)) == {"comment": "heartbeat"}  # the same note is not sent twice
    noted.close()
    tracker.complete()


def test_unknown_job_ends_at_once(store):
    assert collect(event_stream(store, "nope")) == [{"retry": 2000}]
    assert store.fanout.count() == 0


def test_stream_over_the_database_from_another_process(database_url):
    url = database_url
    web_engine, job_engine = sa.create_engine(url), sa.create_engine(url)
    store_module.metadata.create_all(web_engine)
    web_worker = DatabaseStore(web_engine, poll_interval=0.02)
    job_worker = DatabaseStore(job_engine, poll_interval=0.02)
    tracker = ProgressTracker("job-1", "k", STEPS, publish=job_worker.publish, min_interval=0.02)
    tracker.start()
    worker = threading.Thread(target=run_job, args=(tracker,), kwargs={"steps": 10})
    worker.start()
    blocks = collect(event_stream(web_worker, "job-1", heartbeat=1.0))
    worker.join()
    events = [b for b in blocks[1:] if "comment" not in b]
    ids = [e["id"] for e in events[:-1]]
    assert ids == sorted(set(ids)) and events[-1]["id"] == ids[-1]
    assert events[-1]["event"] == "done" and events[-1]["data"]["redirect_url"] == "/library?job=1"
    assert events[-2]["data"] == tracker.snapshot()
    web_worker.close()
    web_engine.dispose()
    job_engine.dispose()


def test_format_event_and_last_event_id():
    assert format_event({"a": 1}, "done", 7) == 'id: 7\nevent: done\ndata: {"a":1}\n\n'
    assert format_event({"a": 1}) == 'data: {"a":1}\n\n'
    assert parse_last_event_id("12") == 12
    assert parse_last_event_id(None) is None and parse_last_event_id("") is None
    assert parse_last_event_id("abc") is None


END_STREAMS = r"""
import threading
from flask_jobprogress import MemoryStore, ProgressTracker, end_streams, event_stream, streams_ending

store = MemoryStore()
tracker = ProgressTracker("j", "k", [("work", "Work")], publish=store.publish)
tracker.start()
tracker.start_step("work")
tracker.flush()
stream = event_stream(store, "j", heartbeat=3600)
seen = [next(stream), next(stream)]  # retry, then the running snapshot
ended = []
reader = threading.Thread(target=lambda: ended.extend(stream))  # waits for the next change
reader.start()
assert not streams_ending()
end_streams()
reader.join(60)
print("ended" if not reader.is_alive() else "still open", ended, streams_ending())
later = store.subscribe("j")
print("later wait", later.wait(10 ** 6, 3600))
"""


def test_end_streams_ends_a_waiting_stream_without_done_and_every_later_wait():
    """For a server's shutdown: a stream between heartbeats returns at once, with no `done` event (so
    the browser reconnects elsewhere); waits after it return at once too. In a process of its own:
    it is for good."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", END_STREAMS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["ended [] True", "later wait None"]
