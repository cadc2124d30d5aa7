"""Pages first: the requests a process answers are counted, and its jobs rest while there are some."""
import threading

import pytest
from flask import Response

from modules.jobs import pacing


@pytest.fixture
def counting_app(app):
    """The app with three extra routes that tell what the counter says from inside a request."""
    app.add_url_rule("/_pacing/plain", "pacing_plain", lambda: str(pacing.answering()))
    app.add_url_rule("/_pacing/stream", "pacing_stream",
                     lambda: Response((str(pacing.answering()) for _ in range(1)), mimetype="text/plain"))

    def broken():
        raise RuntimeError("broken view")
    app.add_url_rule("/_pacing/broken", "pacing_broken", broken)
    return app


def test_a_request_is_counted_while_answered_and_not_after(counting_app):
    client = counting_app.test_client()
    before = pacing.answering()
    assert client.get("/_pacing/plain").get_data(as_text=True) == str(before + 1)
    assert pacing.answering() == before
    assert client.get("/nowhere").status_code == 404
    assert pacing.answering() == before


def test_a_stream_is_not_counted_once_its_response_is_handed_over(counting_app):
    client = counting_app.test_client()
    before = pacing.answering()
    assert client.get("/_pacing/stream").get_data(as_text=True) == str(before)


def test_a_request_that_fails_is_uncounted(counting_app):
    counting_app.config["PROPAGATE_EXCEPTIONS"] = False
    client = counting_app.test_client()
    before = pacing.answering()
    assert client.get("/_pacing/broken").status_code == 500
    assert pacing.answering() == before


def _fake_clock(slept):
    """A clock that moves only when `rest` sleeps: the test reads the order of events, not time."""
    return lambda: 100.0 + sum(slept)


def in_a_new_thread(fn):
    """Run fn in a thread of its own: a job thread's rest count starts with it (pacing keeps one per thread)."""
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join()
    return out.get("value")


@pytest.fixture
def answered():
    """One request being answered for the test's length."""
    pacing.request_started()
    yield
    pacing.request_ended()


def test_a_job_rests_while_a_request_is_answered_and_goes_on_as_it_ends():
    def job():
        now, slept = [100.0], []

        def sleep(seconds):
            slept.append(seconds)
            if len(slept) == 3:
                pacing.request_ended()

        pacing.rest(sleep=sleep, clock=lambda: now[0])  # the job's first yield starts its count
        now[0] += 0.05  # the job works 50 ms
        pacing.request_started()
        pacing.rest(sleep=sleep, clock=lambda: now[0])  # the clock stands still: only the request's end stops it
        return slept

    assert in_a_new_thread(job) == [pacing.SLICE] * 3
    assert pacing.answering() == 0


def test_a_job_does_not_rest_when_no_request_is_answered():
    def job():
        slept = []
        clock = _fake_clock(slept)
        pacing.rest(sleep=slept.append, clock=clock)
        slept.append(1.0)
        pacing.rest(sleep=slept.append, clock=clock)
        pacing.give_way(sleep=slept.append, clock=clock)
        return slept

    assert in_a_new_thread(job) == [1.0]


def test_a_rest_lasts_rest_per_work_times_the_work_before_it_and_at_most_max_rest(answered):
    for worked, expected in ((0.02, 0.02 * pacing.REST_PER_WORK), (5.0, pacing.MAX_REST)):
        def job(worked=worked):
            slept = []
            clock = _fake_clock(slept)
            pacing.rest(sleep=slept.append, clock=clock)
            slept.append(worked)
            pacing.give_way(sleep=slept.append, clock=clock)
            return sum(slept[1:])

        rested = in_a_new_thread(job)
        assert expected - 1e-9 <= rested <= expected + 1e-9


def test_a_rest_cut_short_by_the_request_s_end_is_kept_for_the_next_request():
    def job():
        now, slept = [100.0], []

        def sleep(seconds):
            slept.append(seconds)
            now[0] += seconds
            if len(slept) == 2:
                pacing.request_ended()  # the first request ends after two slices

        clock = lambda: now[0]  # noqa: E731
        pacing.rest(sleep=sleep, clock=clock)
        now[0] += 0.02  # 20 ms of work
        pacing.request_started()
        pacing.give_way(sleep=sleep, clock=clock)  # rests two slices (10 ms) of what it earned
        first = sum(slept)
        now[0] += 0.001  # one more row
        pacing.request_started()
        try:
            pacing.give_way(sleep=sleep, clock=clock)  # this request outlasts what is left
        finally:
            pacing.request_ended()
        return first, sum(slept) - first

    first, second = in_a_new_thread(job)
    assert first == pytest.approx(2 * pacing.SLICE)
    assert second == pytest.approx(pacing.REST_PER_WORK * 0.021 - 2 * pacing.SLICE)


def test_under_a_steady_stream_of_requests_a_job_rests_no_longer_than_it_works(answered):
    """The job still moves: over a stretch it rests at most REST_PER_WORK times as long as it worked, plus MAX_REST."""
    def job():
        now, rested = [100.0], [0.0]

        def sleep(seconds):
            rested[0] += seconds
            now[0] += seconds

        clock = lambda: now[0]  # noqa: E731
        pacing.rest(sleep=sleep, clock=clock)
        worked = 0.0
        for i in range(2000):
            step = 0.5 if i == 0 else 0.001  # a long first batch, then a row at a time
            now[0] += step
            worked += step
            pacing.give_way(sleep=sleep, clock=clock)
        return worked, rested[0]

    worked, rested = in_a_new_thread(job)
    assert rested <= pacing.REST_PER_WORK * (worked - 0.5) + pacing.MAX_REST + 1e-6
    assert rested >= pacing.REST_PER_WORK * (worked - 0.5) - 1e-6  # and it does rest: the pages come first


def test_each_job_thread_keeps_its_own_count(answered):
    def job():
        slept = []
        clock = _fake_clock(slept)
        pacing.rest(sleep=slept.append, clock=clock)
        slept.append(1.0)
        seen = []
        # A new thread's first yield has no work behind it: it does not rest.
        in_a_new_thread(lambda: pacing.rest(sleep=seen.append, clock=clock))
        return seen

    assert in_a_new_thread(job) == []


def test_without_gevent_a_job_that_gives_way_with_no_request_only_reads_a_counter():
    switched = []
    assert pacing.answering() == 0
    for _ in range(3):
        pacing.give_way(sleep=switched.append, clock=lambda: (_ for _ in ()).throw(AssertionError("clock read")))
    assert switched == []


def test_a_job_lets_the_hub_run_every_yield_every_seconds():
    def job():
        step, switched = [0], []
        clock = lambda: 100.0 + step[0] * pacing.YIELD_EVERY * 0.6  # noqa: E731
        for step[0] in range(10):
            pacing.give_way(clock=clock, switch=lambda: switched.append(step[0]))
        return switched

    assert in_a_new_thread(job) == [0, 2, 4, 6, 8]  # rows 0.6 YIELD_EVERY apart: every other row


GEVENT_JOB = r"""
from gevent import monkey
monkey.patch_all()
import sys, time
import gevent
sys.path.insert(0, {root!r})
from modules.jobs import pacing

events = []

def page():
    gevent.sleep(0.001)
    events.append("page answered")

def job():
    for row in range(400):
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:  # a millisecond of parsing, no I/O
            pass
        pacing.give_way()
    events.append("job done")

gevent.joinall([gevent.spawn(job), gevent.spawn(page)])
print(",".join(events))
"""


def test_under_gevent_a_page_is_answered_in_the_middle_of_a_job_that_gives_way():
    """A greenlet is never interrupted: without give_way's switch the page would wait for the whole job."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", GEVENT_JOB.format(root=root)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "page answered,job done"


def test_an_upload_gives_way_at_every_row_and_while_pages_are_answered_writes_small_or_rests_inside(
        app, client, monkeypatch):
    """The job's read and save loops call give_way per row. While a request is answered, on SQLite its
    transactions hold PAGES_BATCH rows (each batch claims the listen feed once) and never rest; on
    PostgreSQL they keep their size and give way before each statement."""
    import sqlalchemy as sa

    from modules.db import db
    from tests.conftest import upload, wait_for_job

    events = []
    give_way = pacing.give_way
    monkeypatch.setattr(pacing, "give_way", lambda: (events.append("give way"), give_way()))

    def statement(*args):
        sql = args[2].lstrip().upper()
        for start, name in (("UPDATE LISTEN_FEED", "claim"), ("INSERT INTO LISTENS", "insert")):
            if sql.startswith(start):
                events.append(name)

    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        sa.event.listen(db.engine, "before_cursor_execute", statement)

    def import_rows(first, n):
        rows = "".join(f"{1_700_000_000 + (first + i) * 300},x,Artist {i % 7},,Album,,Track {i},\n" for i in range(n))
        body = ("uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid\n" + rows).encode()
        answer = upload(client, ("scrobbles.csv", body))
        assert answer.status_code == 202, answer.get_data(as_text=True)
        snap = wait_for_job(app, answer.get_json()["job_id"])
        assert snap["status"] == "completed"
        assert snap["counters"]["imported"] == n
        found = list(events)
        events.clear()
        return found

    rows = 2 * pacing.PAGES_BATCH + 50  # fewer than IMPORT_BATCH_SIZE
    assert rows < app.extensions["sillon"]["settings"]["IMPORT_BATCH_SIZE"]
    seen = import_rows(0, rows)
    assert seen.count("give way") >= 2 * rows  # each row, read then saved
    # One batch (one insert of listens); on SQLite two if the job's first rows came while the upload's
    # own request was answered.
    assert 1 <= seen.count("insert") <= (2 if sqlite else 1)
    pacing.request_started()  # a page is being answered for the whole import
    try:
        seen = import_rows(rows, rows)
    finally:
        pacing.request_ended()
    assert seen.count("give way") >= 2 * rows
    # What happened in each batch's transaction, from its (last) claim of the feed to its insert of listens.
    inserts = [i for i, e in enumerate(seen) if e == "insert"]
    inside = [seen[max(j for j in range(i) if seen[j] == "claim") + 1:i] for i in inserts]
    if sqlite:
        assert len(inserts) == 3  # 100, 100, 50
        assert all("give way" not in events_ for events_ in inside)  # never inside a transaction
    else:
        assert len(inserts) == 1
        assert inside[0] and inside[0][-1] == "give way"  # the insert itself came after one
