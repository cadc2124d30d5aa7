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


def test_a_job_rests_while_a_request_is_answered_and_goes_on_as_it_ends():
    now, slept = [100.0], []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 3:
            pacing.request_ended()

    pacing.rest(sleep=sleep, clock=lambda: now[0])  # the job's previous yield
    now[0] += 0.05  # the job works 50 ms
    pacing.request_started()
    pacing.rest(sleep=sleep, clock=lambda: now[0])  # the clock stands still: only the request's end stops it
    assert slept == [pacing.SLICE] * 3
    assert pacing.answering() == 0


def test_a_job_does_not_rest_when_no_request_is_answered():
    slept = []
    clock = _fake_clock(slept)
    pacing.rest(sleep=slept.append, clock=clock)
    slept.append(1.0)
    pacing.rest(sleep=slept.append, clock=clock)
    assert slept == [1.0]


def test_a_rest_lasts_at_most_as_long_as_the_work_before_it_and_max_rest():
    for worked, expected in ((0.02, 0.02), (5.0, pacing.MAX_REST)):
        slept = []
        clock = _fake_clock(slept)
        pacing.rest(sleep=slept.append, clock=clock)
        slept.append(worked)
        pacing.request_started()
        try:
            pacing.rest(sleep=slept.append, clock=clock)
        finally:
            pacing.request_ended()
        rested = sum(slept[1:])
        assert expected <= rested < expected + pacing.SLICE + 1e-9


def test_each_job_thread_keeps_its_own_last_yield():
    slept, seen = [], []
    clock = _fake_clock(slept)
    pacing.rest(sleep=slept.append, clock=clock)
    slept.append(1.0)
    pacing.request_started()
    try:
        # A new thread's first yield has no work behind it: it does not rest.
        thread = threading.Thread(target=lambda: (pacing.rest(sleep=seen.append, clock=clock)))
        thread.start()
        thread.join()
    finally:
        pacing.request_ended()
    assert seen == []
