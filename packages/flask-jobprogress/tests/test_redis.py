"""The Redis progress store against a real Redis server (conftest.py: redis_url), each test on a
prefix (keys and channel) of its own."""
import threading
import time
import uuid

import pytest
from flask_jobprogress import ProgressTracker
from flask_jobprogress.redis_store import RedisStore
from flask_jobprogress.sse import event_stream


@pytest.fixture
def stores(redis_url, prefix):
    made = []

    def make(prefix=prefix):
        store = RedisStore(redis_url, prefix=prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def snap(job_id, version, **extra):
    return {"id": job_id, "kind": "k", "status": "running", "version": version, **extra}


def test_roundtrip_and_only_forward(stores):
    store, job = stores(), uuid.uuid4().hex
    assert store.get(job) is None
    store.publish(snap(job, 3, message="three"))
    store.publish(snap(job, 2, message="older"))
    assert store.get(job)["message"] == "three"
    store.publish(snap(job, 4, message="four"))
    assert store.get(job)["version"] == 4


def test_another_process_hears_every_change_in_order(stores):
    web, worker, job = stores(), stores(), uuid.uuid4().hex
    sub = web.subscribe(job)
    assert web.listening.wait(5)
    tracker = ProgressTracker(job, "k", [("a", "A")], publish=worker.publish, min_interval=0.02)
    tracker.start()
    seen, last = [], -1
    done = threading.Event()

    def work():
        tracker.start_step("a")
        tracker.set_total(200)
        for _ in range(200):
            tracker.advance()
            time.sleep(0.001)
        tracker.complete(result={"ok": True})
        done.set()

    threading.Thread(target=work).start()
    while True:
        got = sub.wait(last, 5)
        assert got is not None, "no change arrived"
        seen.append(got["version"])
        last = got["version"]
        if got["status"] == "completed":
            break
    sub.close()
    assert seen == sorted(set(seen)) and len(seen) >= 3
    assert web.get(job)["done"] == 200 and web.get(job)["result"] == {"ok": True}


def test_one_subscriber_connection_per_process_however_many_streams(stores):
    web = stores()
    subs = [web.subscribe(uuid.uuid4().hex) for _ in range(300)]
    assert web.listening.wait(5)
    other = stores()
    other.subscribe(uuid.uuid4().hex)
    assert other.listening.wait(5)
    # two processes (stores) with 301 streams between them: two subscriptions on the channel
    assert web.redis.pubsub_numsub(web.channel)[0][1] == 2
    more = [web.subscribe(uuid.uuid4().hex) for _ in range(300)]
    assert web.redis.pubsub_numsub(web.channel)[0][1] == 2
    for s in subs + more:
        s.close()


def test_sse_stream_over_redis(stores):
    web, worker, job = stores(), stores(), uuid.uuid4().hex
    tracker = ProgressTracker(job, "k", [("a", "A")], publish=worker.publish, min_interval=0.02)
    tracker.start()
    out = []

    def read():
        out.extend(event_stream(web, job, heartbeat=1.0))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.2)
    tracker.start_step("a")
    tracker.complete(redirect_url="/journal")
    reader.join(5)
    assert not reader.is_alive()
    assert out[-1].startswith("id: ") and "event: done" in out[-1] and "/journal" in out[-1]


def test_two_prefixes_on_one_server_keep_apart(stores, prefix):
    mine, theirs, job = stores(), stores(prefix + ":other"), uuid.uuid4().hex
    sub = theirs.subscribe(job)
    assert theirs.listening.wait(5)
    mine.publish(snap(job, 1, message="mine"))
    assert mine.get(job)["message"] == "mine"
    assert theirs.get(job) is None
    assert sub.wait(-1, 0.3) is None  # their subscriber heard nothing on its channel
    theirs.publish(snap(job, 1, message="theirs"))
    assert sub.wait(-1, 5)["message"] == "theirs" and mine.get(job)["message"] == "mine"
    sub.close()
