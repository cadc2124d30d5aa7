"""Progress stores: MemoryStore and DatabaseStore (SQLite or PostgreSQL), subscriptions and the fanout."""
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from flask_jobprogress import DatabaseStore, MemoryStore, ProgressTracker
from flask_jobprogress import database_store as store_module
from flask_jobprogress.store import Fanout


def snap(version, job_id="job-1", status="running", **extra):
    return {"id": job_id, "kind": "file_import", "status": status, "version": version,
            "done": version, "counters": {"imported": version}, "redirect_url": None, **extra}


@pytest.fixture
def engine(database_url):
    engine = sa.create_engine(database_url)  # a fresh SQLite file, or PostgreSQL database in that pass
    store_module.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["memory", "database"])
def store(request, engine):
    store = MemoryStore() if request.param == "memory" else DatabaseStore(engine, poll_interval=0.02)
    yield store
    store.close()


def test_publish_then_get_roundtrips(store):
    assert store.get("job-1") is None
    published = snap(3, errors_sample=[{"message": "bad row", "row": 7}], result=None)
    store.publish(published)
    assert store.get("job-1") == published
    assert store.get("another-job") is None


def test_an_older_version_never_overwrites_a_newer_one(store):
    store.publish(snap(5, message="five"))
    store.publish(snap(4, message="four"))
    assert store.get("job-1")["version"] == 5 and store.get("job-1")["message"] == "five"
    store.publish(snap(6, message="six"))
    assert store.get("job-1")["message"] == "six"


def test_jobs_are_kept_apart(store):
    store.publish(snap(2, job_id="a"))
    store.publish(snap(9, job_id="b"))
    store.publish(snap(3, job_id="a"))
    assert store.get("a")["version"] == 3 and store.get("b")["version"] == 9


def test_subscribe_and_wait_receive_changes_in_order(store):
    sub = store.subscribe("job-1")
    try:
        store.publish(snap(1))
        assert sub.wait(0, timeout=1)["version"] == 1

        def publish_later():
            for version in range(2, 7):
                time.sleep(0.005)
                store.publish(snap(version))
            store.publish(snap(7, status="completed"))

        publisher = threading.Thread(target=publish_later)
        publisher.start()
        seen, last = [], 1
        while last < 7:
            got = sub.wait(last, timeout=2)
            assert got is not None, f"nothing after version {last}"
            seen.append(got["version"])
            last = got["version"]
        publisher.join()
        assert seen == sorted(set(seen)) and seen[-1] == 7  # increasing, latest wins, ends at the end
        assert sub.wait(7, timeout=0.05) is None
    finally:
        sub.close()


def test_other_jobs_do_not_wake_a_subscription(store):
    sub = store.subscribe("job-1")
    try:
        store.publish(snap(1, job_id="job-2"))
        assert sub.wait(0, timeout=0.1) is None
    finally:
        sub.close()


def test_wait_times_out_with_none(store):
    sub = store.subscribe("job-1")
    try:
        store.publish(snap(4))
        started = time.monotonic()
        assert sub.wait(4, timeout=0.15) is None
        elapsed = time.monotonic() - started
        assert elapsed >= 0.14  # it waited its timeout out (how much longer is the scheduler's business)
    finally:
        sub.close()


def test_database_watcher_delivers_changes_from_another_process(engine):
    # Two stores on one database file stand for two gunicorn workers.
    web_worker = DatabaseStore(engine, poll_interval=0.02)
    job_worker = DatabaseStore(sa.create_engine(engine.url), poll_interval=0.02)
    sub = web_worker.subscribe("job-1")
    try:
        job_worker.publish(snap(1))
        got = sub.wait(0, timeout=2)
        assert got == snap(1)
        job_worker.publish(snap(2))
        job_worker.publish(snap(3, status="completed"))
        last = 1
        while last < 3:
            got = sub.wait(last, timeout=2)
            assert got is not None
            last = got["version"]
        assert got["status"] == "completed"
        assert web_worker.get("job-1") == snap(3, status="completed")
    finally:
        sub.close()
        web_worker.close()
        job_worker.engine.dispose()


def test_database_store_serves_a_tracker_in_another_process(engine):
    web_worker = DatabaseStore(engine, poll_interval=0.02)
    job_worker = DatabaseStore(sa.create_engine(engine.url), poll_interval=0.02)
    tracker = ProgressTracker("job-9", "discogs_sync", [("fetch", "Fetch")], publish=job_worker.publish,
                              min_interval=0.02)
    sub = web_worker.subscribe("job-9")
    try:
        tracker.start()
        tracker.start_step("fetch")
        tracker.set_total(3)
        tracker.advance(3, imported=3)
        tracker.complete(redirect_url="/collection")
        last, got = -1, None
        while got is None or got["status"] != "completed":
            got = sub.wait(last, timeout=2)
            assert got is not None
            last = got["version"]
        assert got == tracker.snapshot()
        assert got["redirect_url"] == "/collection" and got["counters"] == {"imported": 3}
    finally:
        sub.close()
        web_worker.close()
        job_worker.engine.dispose()


def test_database_store_survives_losing_the_race_to_insert_the_first_row(engine, monkeypatch):
    store = DatabaseStore(engine)
    other = DatabaseStore(sa.create_engine(engine.url))
    real_write = DatabaseStore._write
    raced = []

    def write_after_losing_the_race(self, values):
        if self is store and not raced:
            raced.append(True)
            other.publish(snap(1))  # the other process inserts first...
            with engine.begin() as conn:  # ...so our insert of the same job fails
                conn.execute(store_module.snapshots_table.insert().values(**values))
        return real_write(self, values)

    monkeypatch.setattr(DatabaseStore, "_write", write_after_losing_the_race)
    store.publish(snap(2))
    assert raced and store.get("job-1")["version"] == 2
    other.engine.dispose()


def test_database_store_keeps_one_row_per_job(engine):
    store = DatabaseStore(engine)
    for version in range(1, 6):
        store.publish(snap(version))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store_module.snapshots_table)).all()
    assert len(rows) == 1 and rows[0].version == 5 and rows[0].status == "running"


def test_database_watcher_polls_only_while_someone_listens(engine):
    store = DatabaseStore(engine, poll_interval=0.01)
    assert store._watcher is None  # no subscriber, no watcher
    sub = store.subscribe("job-1")
    watcher = store._watcher
    assert watcher.is_alive()
    sub.close()
    watcher.join(timeout=3)  # it stops after ~50 idle ticks
    assert not watcher.is_alive()
    sub = store.subscribe("job-1")  # and starts again on the next subscribe
    assert store._watcher.is_alive()
    sub.close()
    store.close()


def test_fanout_unsubscribe_cleans_up(store):
    fanout = store.fanout
    first = store.subscribe("job-1")
    second = store.subscribe("job-1")
    other = store.subscribe("job-2")
    assert fanout.count() == 3 and sorted(fanout.job_ids()) == ["job-1", "job-2"]
    first.close()
    assert fanout.count() == 2 and sorted(fanout.job_ids()) == ["job-1", "job-2"]
    store.publish(snap(1))
    assert second.wait(0, timeout=1)["version"] == 1
    assert first.wait(0, timeout=0.01) is None  # a closed subscription hears nothing more
    second.close()
    other.close()
    assert fanout.count() == 0 and fanout.job_ids() == []
    second.close()  # closing twice is harmless
    assert fanout.count() == 0


def test_concurrent_deliveries_never_hide_the_newest_snapshot():
    # A local publish and the database watcher can deliver at the same moment; switch threads
    # as often as the interpreter allows and check the newest snapshot is never lost.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            fanout = Fanout()
            sub = fanout.subscribe("job-1")
            snaps = [snap(v) for v in range(1, 2001)]
            halves = [snaps[0::2], snaps[1::2]]
            barrier = threading.Barrier(2)

            def deliver(fanout, barrier, part):
                barrier.wait()
                for s in part:
                    fanout.deliver(s)

            threads = [threading.Thread(target=deliver, args=(fanout, barrier, part)) for part in halves]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sub.wait(0, timeout=0)["version"] == 2000
            sub.close()
    finally:
        sys.setswitchinterval(old)
