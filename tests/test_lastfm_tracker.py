"""The live tracker (job kind `lastfm_tracker`) against the Last.fm emulator, in-process.

The tracker polls once as soon as it starts, then every TRACKER_INTERVAL_SECONDS (at least 10 s):
each test looks at that first poll, then stops it.
"""
from __future__ import annotations

import pytest

from tests.conftest import make_app
from tests.test_lastfm_import import (
    Emulator,
    app_factory,
    keys,
    lastfm_environ,
    run_import,
    stored,
    wait_until,
    with_ties,
)

STATUS = "/api/v1/services/tracker/status"
START = "/api/v1/services/tracker/start"
STOP = "/api/v1/services/tracker/stop"
INTERVAL = "/api/v1/services/tracker/interval"
NOW_PLAYING = {"artist": "Playing Now", "title": "Not Yet A Listen", "album": "Live"}


@pytest.fixture
def fm():
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def new_app(tmp_path, migrated_template, fm):
    """new_app(name="a", **environ): an app on its own instance folder, pylast pointed at the emulator;
    trackers still running at the end are stopped."""
    yield from app_factory(tmp_path, migrated_template, fm)


def status(client):
    return client.get(STATUS).get_json()


def start_tracker(client, expected=202):
    resp = client.post(START)
    assert resp.status_code == expected, resp.get_json()
    return resp.get_json()


def first_poll_done(client):
    """Wait until the running tracker has polled and recorded the poll; returns the status."""
    return wait_until(lambda: (lambda s: s if s["running"] and s["next_poll_at"] else None)(status(client)),
                      timeout=15, every=0.02)


def job(client, job_id):
    return client.get(f"/api/v1/jobs/{job_id}").get_json()


def stop_and_wait(client, job_id):
    """Stop the tracker and wait (5 s at most, else the test fails) for its job to end cancelled."""
    body = client.post(STOP).get_json()
    assert body["running"] is False and body["enabled"] is False
    wait_until(lambda: job(client, job_id)["status"] == "cancelled", timeout=5, every=0.02)


def test_tracker_catches_up_shows_now_playing_stops_and_catches_up_again(new_app, fm):
    old = with_ties(300)
    fm.add_listens("rj", old)
    app = new_app()
    client = app.test_client()
    assert run_import(app)["status"] == "completed"
    idle = status(client)
    assert idle["running"] is False and idle["now_playing"] is None and idle["last_poll_at"] is None
    assert idle["interval_seconds"] == 120

    newest = max(item["uts"] for item in old)
    newer = generate(newest + 60, 30, "Newer")
    fm.add_listens("rj", newer)
    fm.set_now_playing("rj", NOW_PLAYING)
    mark = len(fm.requests)

    body = start_tracker(client)
    assert body["running"] is True and body["enabled"] is True
    job_id = body["job_id"]
    polled = first_poll_done(client)

    assert stored(app) == keys(old + newer)  # caught up, nothing twice, now playing not stored
    assert all(row[1] != NOW_PLAYING["artist"] for row in stored(app))
    assert polled["now_playing"]["artist"] == NOW_PLAYING["artist"]
    assert polled["now_playing"]["title"] == NOW_PLAYING["title"]
    last = newer[-1]
    assert polled["last_track"]["title"] == last["title"] and polled["last_track"]["artist"] == last["artist"]
    assert polled["last_track"]["played_at"] == last["uts"]
    assert polled["last_poll_at"] and polled["last_error"] is None
    assert polled["job_id"] == job_id and polled["imported"] == 30
    # it asked only for what is newer than the newest stored listen, with no end (so now playing shows)
    asked = fm.recent_requests(mark)
    assert asked and all(newest - 1 <= int(p["from"]) <= newest and "to" not in p for p in asked)

    # The job's snapshot is published on its own timer: wait for the poll to be in it.
    polls = wait_until(lambda: job(client, job_id)["counters"].get("polls"), timeout=15, every=0.02)
    asked = fm.count("user.getRecentTracks")
    stop_and_wait(client, job_id)
    # It stopped inside its 120 s wait: no poll after the stop, none asked of Last.fm.
    assert job(client, job_id)["counters"]["polls"] == polls and fm.count("user.getRecentTracks") == asked
    after_stop = status(client)
    assert after_stop["running"] is False and after_stop["now_playing"] is None
    assert after_stop["last_track"]["title"] == last["title"]  # the last poll is still shown

    # listens made while it was stopped come with the next start
    while_stopped = generate(last["uts"] + 60, 20, "Stopped")
    fm.add_listens("rj", while_stopped)
    fm.set_now_playing("rj", None)
    body = start_tracker(client)
    assert body["job_id"] != job_id
    polled = first_poll_done(client)
    assert stored(app) == keys(old + newer + while_stopped)
    assert polled["now_playing"] is None
    assert polled["last_track"]["title"] == while_stopped[-1]["title"]
    stop_and_wait(client, body["job_id"])


def generate(start_uts, n, prefix):
    """n listens a minute apart from start_uts, with two of them sharing a second."""
    out = [{"uts": start_uts + 60 * i, "artist": f"{prefix} Artist {i % 3}", "title": f"{prefix} {i:03d}",
            "album": f"{prefix} Album"} for i in range(n)]
    out[-1]["uts"] = out[-2]["uts"]
    return out


def test_tracker_on_an_empty_library_stores_the_recent_history(new_app, fm):
    history = with_ties(250)
    fm.add_listens("rj", history)
    app = new_app()
    client = app.test_client()
    job_id = start_tracker(client)["job_id"]
    first_poll_done(client)
    assert stored(app) == keys(history)
    stop_and_wait(client, job_id)


def test_a_long_catch_up_leaves_no_gap(new_app, fm, monkeypatch):
    """A poll fetches at most MAX_CATCH_UP_PAGES pages (50 = 10,000 listens; 2 here); the rest must follow."""
    from modules.importers import lastfm_tracker

    monkeypatch.setattr(lastfm_tracker, "MAX_CATCH_UP_PAGES", 2)
    old = with_ties(100)
    fm.add_listens("rj", old)
    app = new_app()
    client = app.test_client()
    assert run_import(app)["status"] == "completed"
    missed = generate(max(item["uts"] for item in old) + 60, 500, "Away")  # 3 pages while the tracker was off
    fm.add_listens("rj", missed)
    for _ in range(2):  # two polls (a start polls at once): the first 2 pages, then the last one
        job_id = start_tracker(client)["job_id"]
        first_poll_done(client)
        stop_and_wait(client, job_id)
    assert stored(app) == keys(old + missed)


def test_interval_is_validated_and_persisted(new_app, fm, tmp_path, migrated_template):
    app = new_app()
    client = app.test_client()
    resp = client.post(INTERVAL, query_string={"seconds": 5})
    assert resp.status_code == 400 and "10" in resp.get_json()["error"]
    assert client.post(INTERVAL, query_string={"seconds": "soon"}).status_code == 400
    assert status(client)["interval_seconds"] == 120
    resp = client.post(INTERVAL, query_string={"seconds": 30})
    assert resp.status_code == 200 and resp.get_json()["interval_seconds"] == 30
    assert status(client)["interval_seconds"] == 30
    assert client.post(INTERVAL, json={"seconds": 45}).get_json()["interval_seconds"] == 45

    # kept in the database: another app (process) on the same instance folder reads it
    again = make_app(tmp_path / "instance", migrated_template, environ=lastfm_environ(fm))
    try:
        assert again.test_client().get(STATUS).get_json()["interval_seconds"] == 45
    finally:
        with again.app_context():
            from modules.db import db
            db.engine.dispose()


def test_configured_interval_under_ten_seconds_is_raised_to_ten(new_app, fm):
    app = new_app(TRACKER_INTERVAL_SECONDS=3)
    assert status(app.test_client())["interval_seconds"] == 10


@pytest.mark.parametrize("fault", [{"code": 8}, {"http_status": 503}], ids=["code-8", "http-503"])
def test_a_failed_poll_sets_last_error_and_keeps_running(new_app, fm, fault):
    fm.add_listens("rj", with_ties(20))
    fm.fail_next(1, method="user.getRecentTracks", **fault)
    app = new_app()
    client = app.test_client()
    job_id = start_tracker(client)["job_id"]
    # The failed poll is recorded and the tracker goes on to wait for its next interval.
    failed = wait_until(lambda: (lambda s: s if s["last_error"] and s["next_poll_at"] else None)(status(client)),
                        timeout=10, every=0.02)
    assert str(fault.get("http_status") or fault["code"]) in failed["last_error"]
    assert failed["running"] is True
    snap = wait_until(lambda: (lambda j: j if "Last poll failed" in j["message"] else None)(job(client, job_id)),
                      timeout=5, every=0.02)  # its progress is published a moment after the record
    assert snap["status"] == "running"
    follow = next(s for s in snap["steps"] if s["id"] == "follow")
    assert "Last poll failed" in snap["message"] and follow["message"] == snap["message"]  # the step says it too
    assert stored(app) == []  # nothing yet; the next interval tries again
    stop_and_wait(client, job_id)


def test_two_starts_give_one_tracker(new_app, fm):
    app = new_app()
    client = app.test_client()
    first = start_tracker(client, expected=202)
    second = start_tracker(client, expected=200)
    assert first["job_id"] == second["job_id"]
    running = client.get("/api/v1/jobs", query_string={"kind": "lastfm_tracker"}).get_json()["items"]
    assert [j["id"] for j in running] == [first["job_id"]]
    first_poll_done(client)
    stop_and_wait(client, first["job_id"])


def test_start_right_after_stop_leaves_a_tracker_running(new_app, fm):
    app = new_app()
    client = app.test_client()
    job_id = start_tracker(client)["job_id"]
    first_poll_done(client)
    client.post(STOP)
    client.post(START)  # a person clicks stop then start at once
    wait_until(lambda: job(client, job_id)["status"] == "cancelled", timeout=5, every=0.02)
    now = wait_until(lambda: (lambda s: s if s["running"] and s["job_id"] != job_id else None)(status(client)),
                     timeout=5, every=0.02)
    assert now["enabled"] is True
    polled = first_poll_done(client)  # the new one polls and stays: the stop did not reach it
    assert polled["job_id"] == now["job_id"] and polled["running"] is True


def test_tracker_start_refuses_missing_or_wrong_settings(new_app, fm):
    client = new_app(LASTFM_API_KEY=None).test_client()
    resp = client.post(START)
    assert resp.status_code == 400 and "LASTFM_API_KEY" in resp.get_json()["error"]
    assert status(client)["running"] is False
    client = new_app("wrong", LASTFM_API_KEY="wrong").test_client()
    resp = client.post(START)
    assert resp.status_code == 400 and "LASTFM_API_KEY" in resp.get_json()["error"]
    assert status(client)["job_id"] is None
