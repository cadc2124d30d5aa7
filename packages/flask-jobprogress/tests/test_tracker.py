"""ProgressTracker: steps and substeps, counts, errors, lifecycle, thread safety, coalesced publishing."""
import threading
import time
from itertools import pairwise

import pytest
from flask_jobprogress import MemoryStore, ProgressTracker

SNAPSHOT_KEYS = {
    "id", "kind", "status", "overall_progress", "elapsed_time", "eta_seconds", "rate",
    "current_step", "steps", "done", "total", "counters", "errors_sample", "message", "result",
    "redirect_url", "version", "created_at", "started_at", "finished_at",
}
STEP_KEYS = {"id", "name", "status", "progress", "message", "substeps"}
STEPS = [("fetch", "Fetch", 1), ("import", "Import", 3), ("finish", "Finish", 1)]


class Recorder:
    """A store publish that records every snapshot it receives, then passes it to a MemoryStore."""

    def __init__(self, store=None):
        self.store = store or MemoryStore()
        self.snapshots = []
        self._lock = threading.Lock()

    def __call__(self, snapshot):
        with self._lock:
            self.snapshots.append(snapshot)
        self.store.publish(snapshot)

    @property
    def versions(self):
        with self._lock:
            return [s["version"] for s in self.snapshots]


class FakeClock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def wait_until(predicate, timeout=2.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def step(snap, step_id):
    return next(s for s in snap["steps"] if s["id"] == step_id)


# ------------------------------------------------------------------ snapshot shape
def test_snapshot_has_every_key_and_a_queued_start():
    tracker = ProgressTracker("job-1", "file_import", STEPS)
    snap = tracker.snapshot()
    assert SNAPSHOT_KEYS <= set(snap)
    assert snap["id"] == "job-1" and snap["kind"] == "file_import"
    assert snap["status"] == "queued"
    assert snap["overall_progress"] == 0.0
    assert snap["elapsed_time"] == 0.0 and snap["eta_seconds"] is None and snap["rate"] == 0.0
    assert snap["current_step"] is None
    assert [s["id"] for s in snap["steps"]] == ["fetch", "import", "finish"]
    for s in snap["steps"]:
        assert STEP_KEYS <= set(s)
        assert s["status"] == "pending" and s["progress"] == 0.0 and s["substeps"] == []
    assert snap["done"] == 0 and snap["total"] is None and snap["counters"] == {}
    assert snap["errors_sample"] == [] and snap["result"] is None and snap["redirect_url"] is None
    assert snap["created_at"].endswith("Z") and snap["started_at"] is None and snap["finished_at"] is None


def test_steps_given_as_plain_ids_and_added_later():
    tracker = ProgressTracker("j", "k", ["a"])
    tracker.add_step("b", "Second", weight=2)
    assert [(s["id"], s["name"]) for s in tracker.snapshot()["steps"]] == [("a", "a"), ("b", "Second")]


def test_version_grows_with_every_change():
    tracker = ProgressTracker("j", "k", STEPS)
    versions = [tracker.version]
    for change in (lambda: tracker.start(), lambda: tracker.start_step("fetch"),
                   lambda: tracker.set_total(3), lambda: tracker.advance(), lambda: tracker.incr("x"),
                   lambda: tracker.add_error("bad"), lambda: tracker.set_message("hi"),
                   lambda: tracker.set_step_progress("fetch", 10),
                   lambda: tracker.start_substep("import", "f1"),
                   lambda: tracker.update_substep("import", "f1", done=1, total=2),
                   lambda: tracker.complete_substep("import", "f1"), lambda: tracker.complete_step("fetch"),
                   lambda: tracker.complete()):
        change()
        versions.append(tracker.version)
    assert all(b > a for a, b in pairwise(versions))
    assert tracker.snapshot()["version"] == versions[-1]


# ---------------------------------------------------------------- steps and substeps
def test_step_and_substep_lifecycle():
    tracker = ProgressTracker("j", "k", STEPS)
    tracker.start()
    tracker.start_step("fetch", "Fetching pages")
    snap = tracker.snapshot()
    assert snap["current_step"] == "fetch"
    assert step(snap, "fetch")["status"] == "in_progress"
    assert step(snap, "fetch")["message"] == "Fetching pages"
    tracker.set_step_progress("fetch", 40, "page 2 of 5")
    assert step(tracker.snapshot(), "fetch")["progress"] == 40.0
    tracker.complete_step("fetch", "5 pages")
    fetch = step(tracker.snapshot(), "fetch")
    assert (fetch["status"], fetch["progress"], fetch["message"]) == ("completed", 100.0, "5 pages")

    # A substep started on a pending step starts that step.
    tracker.start_substep("import", "a.csv", "a.csv", total=4)
    tracker.start_substep("import", "b.csv", "b.csv", message="waiting")
    snap = tracker.snapshot()
    assert snap["current_step"] == "import"
    imp = step(snap, "import")
    assert imp["status"] == "in_progress"
    assert [(s["id"], s["status"]) for s in imp["substeps"]] == [("a.csv", "in_progress"), ("b.csv", "in_progress")]
    assert imp["substeps"][1]["message"] == "waiting"
    assert "substeps" not in imp["substeps"][0]  # substeps carry no substeps

    tracker.update_substep("import", "a.csv", done=1, message="row 1")
    a = step(tracker.snapshot(), "import")["substeps"][0]
    assert (a["progress"], a["done"], a["total"], a["message"]) == (25.0, 1, 4, "row 1")
    assert step(tracker.snapshot(), "import")["progress"] == 12.5  # mean of its substeps

    tracker.update_substep("import", "b.csv", done=5, total=10)
    assert step(tracker.snapshot(), "import")["progress"] == pytest.approx(37.5)
    tracker.complete_substep("import", "a.csv", "4 rows")
    tracker.error_substep("import", "b.csv", "not a CSV file")
    subs = step(tracker.snapshot(), "import")["substeps"]
    assert [(s["status"], s["progress"], s["message"]) for s in subs] == [
        ("completed", 100.0, "4 rows"), ("error", 50.0, "not a CSV file")]  # a failure keeps its progress

    tracker.error_step("import", "one file failed")
    imp = step(tracker.snapshot(), "import")
    assert (imp["status"], imp["message"]) == ("error", "one file failed")
    tracker.skip_step("finish", "nothing to do")
    fin = step(tracker.snapshot(), "finish")
    assert (fin["status"], fin["progress"], fin["message"]) == ("skipped", 100.0, "nothing to do")


def test_complete_step_closes_its_open_substeps_but_error_step_does_not():
    tracker = ProgressTracker("j", "k", [("a", "A"), ("b", "B")])
    tracker.start()
    tracker.start_substep("a", "x")
    tracker.complete_step("a")
    assert [s["status"] for s in step(tracker.snapshot(), "a")["substeps"]] == ["completed"]
    tracker.start_substep("b", "y")
    tracker.error_step("b", "boom")
    assert [s["status"] for s in step(tracker.snapshot(), "b")["substeps"]] == ["in_progress"]


def test_step_progress_is_clamped():
    tracker = ProgressTracker("j", "k", ["a"])
    tracker.set_step_progress("a", 250)
    assert step(tracker.snapshot(), "a")["progress"] == 100.0
    tracker.set_step_progress("a", -5)
    assert step(tracker.snapshot(), "a")["progress"] == 0.0


def test_weights_drive_overall_progress_monotonically_to_100():
    tracker = ProgressTracker("j", "k", STEPS)  # weights 1, 3, 1
    seen = []

    def record():
        overall = tracker.snapshot()["overall_progress"]
        assert 0.0 <= overall <= 100.0
        seen.append(overall)

    tracker.start()
    record()
    tracker.start_step("fetch")
    tracker.set_total(10)
    for _ in range(10):
        tracker.advance()
        record()
    assert seen[-1] == 20.0  # fetch done: 1 of 5 weight units
    tracker.complete_step("fetch")
    record()
    tracker.start_step("import")
    for name in ("a", "b"):
        tracker.start_substep("import", name, total=4)
    record()
    for name in ("a", "b"):
        for done in range(1, 5):
            tracker.update_substep("import", name, done=done)
            record()
        tracker.complete_substep("import", name)
        record()
    assert seen[-1] == 80.0
    tracker.complete_step("import")
    tracker.start_step("finish")
    tracker.set_step_progress("finish", 50)
    record()
    assert seen[-1] == 90.0
    tracker.complete(result={"imported": 10})
    record()
    assert seen == sorted(seen)
    assert seen[-1] == 100.0
    assert all(s["status"] == "completed" for s in tracker.snapshot()["steps"])


def test_current_step_follows_the_job_count_and_keeps_it_when_it_stops():
    tracker = ProgressTracker("j", "k", [("a", "A"), ("b", "B")])
    tracker.start()
    tracker.start_step("a")
    tracker.set_total(4)
    tracker.advance(3)
    assert step(tracker.snapshot(), "a")["progress"] == 75.0
    assert tracker.snapshot()["overall_progress"] == 37.5
    tracker.error_step("a", "source went away")
    snap = tracker.snapshot()
    # The bar of a failed step stays where the work stopped; it does not fall back to 0.
    assert step(snap, "a")["status"] == "error" and step(snap, "a")["progress"] == 75.0
    assert snap["overall_progress"] == 37.5


def test_cancel_keeps_the_progress_of_the_running_step():
    tracker = ProgressTracker("j", "k", [("a", "A"), ("b", "B")])
    tracker.start()
    tracker.start_step("a")
    tracker.set_total(10)
    tracker.advance(5)
    tracker.cancelled()
    snap = tracker.snapshot()
    assert step(snap, "a")["status"] == "skipped" and step(snap, "a")["progress"] == 50.0
    assert snap["overall_progress"] == 25.0


def test_complete_finishes_open_steps_and_their_substeps():
    tracker = ProgressTracker("j", "k", [("a", "A"), ("b", "B")])
    tracker.start()
    tracker.start_substep("a", "x")
    tracker.complete()
    snap = tracker.snapshot()
    assert [s["status"] for s in snap["steps"]] == ["completed", "completed"]
    assert step(snap, "a")["substeps"][0]["status"] == "completed"
    assert snap["overall_progress"] == 100.0


# ---------------------------------------------------------------------------- counts
def test_set_total_and_advance_with_named_counters():
    tracker = ProgressTracker("j", "k", STEPS)
    tracker.start()
    tracker.start_step("fetch")
    tracker.set_total(100)
    tracker.advance()
    tracker.advance(4, imported=3, skipped=1)
    tracker.advance(imported=1)
    tracker.incr("duplicates", 2)
    tracker.incr("duplicates")
    snap = tracker.snapshot()
    assert (snap["done"], snap["total"]) == (6, 100)
    assert snap["counters"] == {"imported": 4, "skipped": 1, "duplicates": 3}
    assert tracker.done == 6 and tracker.counters == snap["counters"]


def test_start_step_restarts_the_count_but_keeps_named_counters():
    tracker = ProgressTracker("j", "k", STEPS)
    tracker.start()
    tracker.start_step("fetch")
    tracker.set_total(5)
    tracker.advance(5, pages=5)
    tracker.complete_step("fetch")
    tracker.start_step("import")
    snap = tracker.snapshot()
    assert (snap["done"], snap["total"]) == (0, None)
    assert snap["counters"] == {"pages": 5}
    tracker.set_total(10)
    tracker.advance(2)
    assert (tracker.snapshot()["done"], tracker.snapshot()["total"]) == (2, 10)


def test_add_error_caps_the_sample_but_keeps_counting():
    tracker = ProgressTracker("j", "k", STEPS, max_errors=3)
    for row in range(10):
        tracker.add_error(ValueError(f"bad date on row {row}"), row=row, file="a.csv")
    snap = tracker.snapshot()
    assert snap["errors_sample"] == [
        {"message": f"bad date on row {row}", "row": row, "file": "a.csv"} for row in range(3)]
    assert snap["counters"]["errors"] == 10
    assert snap["errors_total"] == 10


# ------------------------------------------------------------------------- lifecycle
@pytest.mark.parametrize("finish, status", [
    (lambda t: t.complete(result={"imported": 3}, redirect_url="/library"), "completed"),
    (lambda t: t.fail("the remote service said: invalid API key", result={"imported": 3}), "error"),
    (lambda t: t.cancelled(result={"imported": 3}), "cancelled"),
    (lambda t: t.interrupted("The server restarted", result={"imported": 3}), "interrupted"),
])
def test_status_transitions(finish, status):
    clock = FakeClock()
    tracker = ProgressTracker("j", "k", STEPS, clock=clock)
    assert tracker.snapshot()["status"] == "queued" and not tracker.is_finished
    clock.now += 1
    tracker.start("Starting")
    snap = tracker.snapshot()
    assert (snap["status"], snap["message"]) == ("running", "Starting")
    assert snap["started_at"] is not None and snap["finished_at"] is None
    clock.now += 2.5
    assert tracker.snapshot()["elapsed_time"] == 2.5
    tracker.start_step("fetch")
    finish(tracker)
    clock.now += 100  # time stops for a finished job
    snap = tracker.snapshot()
    assert snap["status"] == status and tracker.is_finished
    assert snap["result"] == {"imported": 3}
    assert snap["finished_at"] is not None and snap["elapsed_time"] == 2.5
    assert snap["eta_seconds"] is None
    assert snap["redirect_url"] == ("/library" if status == "completed" else None)
    if status == "error":
        assert snap["message"] == "the remote service said: invalid API key"
        assert step(snap, "fetch")["status"] == "error"
    assert step(snap, "import")["status"] == ("completed" if status == "completed" else "pending")


def test_a_queued_job_can_end_without_starting():
    store = MemoryStore()
    tracker = ProgressTracker("j", "k", STEPS, publish=store.publish)
    tracker.cancelled("Cancelled before it started")
    assert store.get("j")["status"] == "cancelled"
    assert store.get("j")["elapsed_time"] == 0.0


def test_request_cancel():
    tracker = ProgressTracker("j", "k")
    assert not tracker.cancel_requested
    tracker.request_cancel()
    assert tracker.cancel_requested
    assert tracker.snapshot()["cancel_requested"] is True
    tracker.request_cancel()  # idempotent
    assert tracker.cancel_requested


# --------------------------------------------------------------------- rate and ETA
def test_rate_and_eta_with_a_fake_clock():
    clock = FakeClock()
    recorder = Recorder()
    tracker = ProgressTracker("j", "k", STEPS, publish=recorder, clock=clock, min_interval=0.01)
    tracker.start()
    tracker.start_step("fetch")
    tracker.set_total(1000)
    # The flusher samples (time, done) on its ticks; wait for its first sample at done=0.
    assert wait_until(lambda: len(tracker._samples) > 0)
    assert tracker.snapshot()["rate"] == 0.0 and tracker.snapshot()["eta_seconds"] is None
    tracker.advance(100)
    clock.now += 5.0
    snap = tracker.snapshot()
    assert snap["rate"] == pytest.approx(20.0)
    assert snap["eta_seconds"] == pytest.approx(45.0)  # 900 left at 20/s
    tracker.complete()


def test_rate_and_eta_with_the_real_clock():
    tracker = ProgressTracker("j", "k", STEPS, publish=Recorder(), min_interval=0.02)
    tracker.start()
    tracker.start_step("fetch")
    tracker.set_total(1_000_000)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        tracker.advance(10)
        time.sleep(0.0005)
    snap = tracker.snapshot()
    assert snap["rate"] > 0
    expected_eta = (snap["total"] - snap["done"]) / snap["rate"]
    assert snap["eta_seconds"] == pytest.approx(expected_eta, rel=0.01, abs=0.1)
    tracker.complete()


def test_no_eta_without_a_total():
    tracker = ProgressTracker("j", "k", STEPS, publish=Recorder(), min_interval=0.01)
    tracker.start()
    tracker.start_step("fetch")
    tracker.advance(10)
    assert wait_until(lambda: len(tracker._samples) > 1)
    tracker.advance(10)
    assert tracker.snapshot()["eta_seconds"] is None
    tracker.complete()


# --------------------------------------------------------------------- thread safety
def test_threads_hammering_one_tracker_lose_nothing():
    threads_n, ops = 8, 20_000
    recorder = Recorder()
    tracker = ProgressTracker("j", "k", STEPS, publish=recorder, min_interval=0.01, max_errors=5)
    tracker.start()
    tracker.start_step("import")
    tracker.set_total(threads_n * ops)
    for t in range(threads_n):
        tracker.start_substep("import", f"part-{t}", total=ops)
    start_version = tracker.version
    barrier = threading.Barrier(threads_n)
    failures = []

    def work(t):
        try:
            barrier.wait()
            for i in range(ops):
                kind = i % 8
                if kind < 4:
                    tracker.advance(1, imported=1)
                elif kind == 4:
                    tracker.advance(1, skipped=1, duplicates=2)
                elif kind == 5:
                    tracker.incr("seen")
                    tracker.advance()
                elif kind == 6:
                    tracker.add_error("bad row", row=i, part=t)
                    tracker.advance()
                else:
                    tracker.set_message(f"part {t} row {i}")
                    tracker.update_substep("import", f"part-{t}", done=i + 1)
                    tracker.advance()
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures
    tracker.complete()

    per = ops // 8
    snap = tracker.snapshot()
    assert snap["done"] == threads_n * ops
    assert snap["counters"] == {
        "imported": threads_n * per * 4, "skipped": threads_n * per, "duplicates": threads_n * per * 2,
        "seen": threads_n * per, "errors": threads_n * per}
    assert snap["errors_total"] == threads_n * per
    assert len(snap["errors_sample"]) == 5
    # Every call is one change: advance x ops, plus one more for incr, add_error, set_message
    # and update_substep each, plus complete().
    assert snap["version"] == start_version + threads_n * (ops + 3 * per + per) + 1
    versions = recorder.versions
    assert all(b > a for a, b in pairwise(versions)), "published versions went backwards"
    assert recorder.store.get("j") == snap


# ------------------------------------------------------------------------ coalescing
def test_hot_loop_publishes_are_coalesced_and_the_final_state_is_published():
    recorder = Recorder()
    tracker = ProgressTracker("j", "k", STEPS, publish=recorder, min_interval=0.1)
    tracker.start()
    tracker.start_step("import")
    calls = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        for _ in range(1000):
            tracker.advance(imported=1)
        calls += 1000
    elapsed = time.monotonic() - started
    tracker.complete()
    published = len(recorder.snapshots)
    # start + one per 0.1 s tick + the final one (and a tick of scheduling slack).
    assert published <= elapsed * 10 + 3, f"{published} publishes in {elapsed:.2f}s"
    assert published >= 5  # it does publish while the loop runs, not only at the end
    last = recorder.snapshots[-1]
    assert last == tracker.snapshot()
    assert last["status"] == "completed" and last["done"] == calls and last["counters"]["imported"] == calls
    assert recorder.store.get("j") == last


def test_latest_state_is_published_soon_after_updates_stop():
    min_interval = 0.1
    recorder = Recorder()
    tracker = ProgressTracker("j", "k", STEPS, publish=recorder, min_interval=min_interval)
    tracker.start()
    tracker.start_step("import")
    for _ in range(50):
        for _ in range(1000):
            tracker.advance()
        time.sleep(0.001)
    tracker.set_message("halfway")  # the last change; no finish follows
    final_version = tracker.version
    # Published by the tracker's own timer: nothing else calls it after this point.
    assert wait_until(lambda: recorder.versions[-1] == final_version, timeout=30)
    assert recorder.store.get("j")["message"] == "halfway"
    assert recorder.store.get("j")["done"] == 50_000
    tracker.complete()


def test_nothing_is_published_when_nothing_changed():
    recorder = Recorder()
    tracker = ProgressTracker("j", "k", STEPS, publish=recorder, min_interval=0.01)
    tracker.start()
    time.sleep(0.08)
    assert len(recorder.snapshots) == 1
    assert tracker.flush() is False
    tracker.complete()


def test_a_failing_publish_does_not_break_the_job(caplog):
    caplog.set_level("INFO", logger="flask_jobprogress.tracker")
    store = MemoryStore()
    attempts = []

    def flaky_publish(snapshot):
        attempts.append(snapshot["version"])
        if len(attempts) <= 3:
            # As a database driver's error reads: the statement and the snapshot on the next lines.
            raise ConnectionError(f"store is down\n[SQL: UPDATE snapshots SET snapshot=?]\n[parameters: {snapshot!r}]")
        store.publish(snapshot)

    tracker = ProgressTracker("j", "k", STEPS, publish=flaky_publish, min_interval=0.01)
    tracker.start()  # the first publish raises; the tracker must not
    tracker.start_step("fetch")
    tracker.set_total(10)
    tracker.advance(4)
    assert wait_until(lambda: store.get("j") is not None and store.get("j")["done"] == 4)
    tracker.advance(6)
    tracker.complete(redirect_url="/done")
    assert store.get("j")["status"] == "completed" and store.get("j")["done"] == 10
    assert len(attempts) > 3
    # One warning line for the run of failures (no traceback, no statement), one when publishing works again.
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert lines == [("WARNING", "progress publish failed for job j (retrying): ConnectionError: store is down", None),
                     ("WARNING", "progress publish of job j works again", None)]


def test_a_failed_final_publish_is_retried():
    store = MemoryStore()
    fail_next = threading.Event()

    def publish(snapshot):
        if fail_next.is_set() and snapshot["status"] == "completed":
            fail_next.clear()
            raise ConnectionError("store hiccup")
        store.publish(snapshot)

    tracker = ProgressTracker("j", "k", STEPS, publish=publish, min_interval=0.01)
    tracker.start()
    fail_next.set()
    tracker.complete()
    assert wait_until(lambda: store.get("j")["status"] == "completed", timeout=1.0)
    assert store.get("j") == tracker.snapshot()


def test_a_resumed_job_continues_the_version_sequence():
    store = MemoryStore()
    first = ProgressTracker("j", "k", STEPS, publish=store.publish)
    first.start()
    first.advance(5)
    first.interrupted("The server restarted")
    previous = store.get("j")["version"]
    resumed = ProgressTracker("j", "k", STEPS, publish=store.publish, initial_version=previous)
    resumed.start("Resuming")
    snap = store.get("j")
    assert snap["version"] > previous and snap["status"] == "running" and snap["message"] == "Resuming"


def test_a_step_whose_substeps_start_one_by_one_does_not_go_backwards():
    # The upload import: a total for the whole step, then one substep per file as it is reached.
    tracker = ProgressTracker("j", "k", [("read", "Read", 1), ("save", "Save", 4)])
    tracker.start()
    tracker.start_step("read")
    tracker.set_total(300)
    seen = []
    for i, size in enumerate([100, 200]):
        tracker.start_substep("read", f"file-{i}", total=size)
        seen.append(step(tracker.snapshot(), "read")["progress"])
        for done in range(50, size + 1, 50):
            tracker.advance(50)
            tracker.update_substep("read", f"file-{i}", done=done)
            seen.append(step(tracker.snapshot(), "read")["progress"])
        tracker.complete_substep("read", f"file-{i}")
        seen.append(step(tracker.snapshot(), "read")["progress"])
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert seen[:3] == [0.0, 16.7, 33.3]


def test_count_errors_counts_without_samples():
    tracker = ProgressTracker("job-1", "file_import", STEPS, max_errors=2)
    for line in range(3):
        tracker.add_error("bad row", line=line)
    tracker.count_errors(5)
    snap = tracker.snapshot()
    assert snap["errors_total"] == 8 and snap["counters"] == {"errors": 8}
    assert [e["line"] for e in snap["errors_sample"]] == [0, 1]
