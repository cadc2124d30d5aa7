"""Group counters on a real Redis: parts in other processes report into one tracker."""
import multiprocessing

import pytest
from flask_jobprogress import GroupFollower, PartReport, ProgressTracker
from flask_jobprogress.groups import group_keys


@pytest.fixture
def client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def run_part(redis_url, prefix, group_id, index, rows, bad_every):
    """One part, in its own process: counts rows in batches of 10, an error every `bad_every` rows."""
    import redis

    report = PartReport(redis.Redis.from_url(redis_url, decode_responses=True), group_id, index,
                        prefix=prefix, samples=3)
    sub = f"file-{index}"
    report.update_substep("convert", sub, done=0, total=rows, message="starting")
    for start in range(0, rows, 10):
        for row in range(start, min(start + 10, rows)):
            if bad_every and row % bad_every == bad_every - 1:
                report.add_error("not a number", file=f"f{index}.csv", line=row + 1)
            else:
                report.advance(1, converted=1)
        report.flush()
        report.update_substep("convert", sub, done=min(start + 10, rows), message="converting")
    report.complete_substep("convert", sub, f"{rows} rows")


def test_parts_in_other_processes_add_up_in_one_tracker(client, redis_url, prefix):
    tracker = ProgressTracker("job-g", "convert", [("convert", "Convert")])
    tracker.start_step("convert")
    tracker.set_total(300)
    for i in range(3):
        tracker.start_substep("convert", f"file-{i}", f"f{i}.csv")
    follower = GroupFollower(client, "job-g", tracker, prefix=prefix, poll_seconds=0.02)
    follower.reset()
    follower.start()
    spawn = multiprocessing.get_context("spawn")
    parts = [spawn.Process(target=run_part, args=(redis_url, prefix, "job-g", i, 100, 25 if i != 1 else 0))
             for i in range(3)]
    for p in parts:
        p.start()
    for p in parts:
        p.join(60)
        assert p.exitcode == 0
    follower.stop()
    snap = tracker.snapshot()
    # 300 rows, parts 0 and 2 each had 4 bad rows (25, 50, 75, 100): 8 errors, 292 converted.
    assert snap["done"] == 292 and snap["counters"] == {"converted": 292, "errors": 8}
    assert snap["errors_total"] == 8 and len(snap["errors_sample"]) == 6  # 3 samples per part kept
    assert {(e["file"], e["line"]) for e in snap["errors_sample"]} == {
        ("f0.csv", 25), ("f0.csv", 50), ("f0.csv", 75), ("f2.csv", 25), ("f2.csv", 50), ("f2.csv", 75)}
    subs = snap["steps"][0]["substeps"]
    assert [(s["id"], s["status"], s["message"]) for s in subs] == [
        ("file-0", "completed", "100 rows"), ("file-1", "completed", "100 rows"), ("file-2", "completed", "100 rows")]
    client.delete(*group_keys("job-g", prefix))


def test_follower_sees_changes_while_parts_run_and_starts_unknown_substeps(client, prefix):
    tracker = ProgressTracker("job-h", "convert", [("convert", "Convert")])
    tracker.start_step("convert")
    follower = GroupFollower(client, "job-h", tracker, prefix=prefix)
    follower.reset()
    report = PartReport(client, "job-h", 0, prefix=prefix)
    report.advance(5, converted=5)
    follower.poll()
    assert tracker.done == 0  # nothing is sent before the part flushes
    report.update_substep("convert", "late", done=5, total=10, message="half")
    follower.poll()
    sub = tracker.snapshot()["steps"][0]["substeps"][0]
    assert tracker.done == 5 and (sub["id"], sub["progress"], sub["message"]) == ("late", 50.0, "half")
    report.error_substep("convert", "late", "the file ended early")
    follower.poll()
    follower.poll()  # polling again changes nothing
    sub = tracker.snapshot()["steps"][0]["substeps"][0]
    assert tracker.done == 5 and (sub["status"], sub["message"]) == ("error", "the file ended early")
    client.delete(*group_keys("job-h", prefix))


def test_group_keys_expire(client, prefix):
    report = PartReport(client, "job-t", 0, prefix=prefix, ttl=60)
    report.add_error("bad")
    report.flush()
    key, errors_key = group_keys("job-t", prefix)
    assert 0 < client.ttl(key) <= 60 and 0 < client.ttl(errors_key) <= 60
    client.delete(key, errors_key)


def test_a_reset_group_starts_from_zero(client, prefix):
    report = PartReport(client, "job-r", 0, prefix=prefix)
    report.advance(7)
    report.flush()
    tracker = ProgressTracker("job-r", "convert", [("convert", "Convert")])
    follower = GroupFollower(client, "job-r", tracker, prefix=prefix)
    follower.reset()
    follower.poll()
    assert tracker.done == 0 and not client.exists(group_keys("job-r", prefix)[0])
