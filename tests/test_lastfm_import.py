"""The Last.fm history import (job kind `lastfm_history`), end to end against the Last.fm emulator.

Every test builds an app whose REAL pylast talks to a local emulator of the Last.fm web service
(tests/emulators/lastfm.py) through LASTFM_API_URL; nothing is mocked. Retries are made fast
(LASTFM_RETRY_BASE_SECONDS=0.01) and, except in the pacing test, the request rate is raised to
100 a second so the suite stays quick. Jobs run in threads of this process; `wait_for_job` joins them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, make_app, wait_for_job
from tests.emulators.lastfm import LastfmEmulator, generate_listens

T0 = 1_600_000_000  # September 2020: every generated listen is in the past
HISTORY = "/api/v1/services/lastfm/import-history"
PROGRESS = "/api/v1/services/lastfm/import/progress"


class Emulator(LastfmEmulator):
    """The emulator plus `on_arrival(params)`, called as each request arrives (under the emulator's
    lock, before its fault check), so a test can inject a fault at an exact page."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_arrival = None

    def _early_answer(self, path, params, now):
        if self.on_arrival is not None:
            self.on_arrival(params)
        return super()._early_answer(path, params, now)

    def recent_requests(self, since=0):
        """The user.getRecentTracks requests' parameters, in arrival order, from index `since` on."""
        return [r.params for r in self.requests[since:] if r.method.casefold() == "user.getrecenttracks"]


@pytest.fixture
def fm():
    with Emulator() as emulator:
        yield emulator


def lastfm_environ(fm, **extra):
    environ = {"LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s",
               "LASTFM_USERNAME": "rj", "LASTFM_RETRY_BASE_SECONDS": 0.01, "LASTFM_REQUESTS_PER_SECOND": 100}
    environ.update(extra)
    return {k: v for k, v in environ.items() if v is not None}


@pytest.fixture
def new_app(tmp_path, migrated_template, fm):
    """new_app(name="a", **environ): an app on its own instance folder, pylast pointed at the emulator."""
    yield from app_factory(tmp_path, migrated_template, fm)


def app_factory(tmp_path, migrated_template, fm):
    """The body of the `new_app` fixture (shared with test_lastfm_tracker.py)."""
    apps = []

    def build(name="instance", **environ):
        application = make_app(tmp_path / name, migrated_template, environ=lastfm_environ(fm, **environ))
        apps.append(application)
        return application

    yield build
    for application in apps:
        end_jobs(application)
        with application.app_context():
            from modules.db import db
            db.engine.dispose()


def end_jobs(app):
    """Cancel whatever job this app still runs, and join its thread."""
    from modules.db import db
    from modules.models import Job

    with app.app_context():
        active = db.session.execute(sa.select(Job.id).where(Job.active_kind.isnot(None))).scalars().all()
        db.session.remove()
    client = app.test_client()
    for job_id in active:
        client.post(f"/api/v1/jobs/{job_id}/cancel")
    for job_id in list(app.extensions["sillon"]["runner"].threads):
        app.extensions["sillon"]["runner"].join(job_id, 10)


def start(client, **query):
    resp = client.post(HISTORY, query_string=query)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert set(body) >= {"job_id", "progress_url", "events_url", "status_url"}
    return body["job_id"]


def run_import(app, **query):
    """Start an import through the API and wait for its end; returns the final snapshot."""
    job_id = start(app.test_client(), **query)
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] in ("completed", "error", "cancelled"), snap
    return snap


def stored(app):
    """(played_at, artist, title) of every stored listen, sorted (a double would show twice)."""
    from modules.db import db
    from modules.models import Artist, Listen, Track

    with app.app_context():
        rows = db.session.execute(
            sa.select(Listen.played_at, Artist.name, Track.title)
            .join(Artist, Artist.id == Listen.artist_id).join(Track, Track.id == Listen.track_id)).all()
        db.session.remove()
    return sorted(tuple(r) for r in rows)


def keys(listens):
    return sorted((item["uts"], item["artist"], item["title"]) for item in listens)


def oldest(fm, n):
    """The n oldest listens in Last.fm's own order (of two in one second, the one listed later is older)."""
    return keys(list(reversed(fm.listens("rj")))[:n])


def via_api(client):
    """The same triples read back through GET /api/v1/listens, 500 a page."""
    out, page = [], 1
    while True:
        body = client.get("/api/v1/listens", query_string={"page_size": 500, "page": page}).get_json()
        for item in body["items"]:
            moment = datetime.fromisoformat(item["played_at"].replace("Z", "+00:00"))
            out.append((int(moment.timestamp()), item["artist"], item["title"]))
        if page * 500 >= body["total"]:
            return sorted(out)
        page += 1


def job_rows(app):
    from modules.db import db
    from modules.models import Job

    with app.app_context():
        rows = db.session.execute(sa.select(Job.id, Job.kind, Job.status, Job.checkpoint)).all()
        db.session.remove()
    return rows


def checkpoint(app, job_id):
    return next(row.checkpoint for row in job_rows(app) if row.id == job_id)


def wait_until(predicate, timeout=10.0, every=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def record_messages(app):
    """Every message the progress store is given from now on (jobs started after this call)."""
    store = app.extensions["sillon"]["progress_store"]
    seen, publish = [], store.publish

    def recording(snap):
        seen.append(snap.get("message") or "")
        return publish(snap)

    store.publish = recording
    return seen


def with_ties(n, start_uts=T0, every=7):
    return generate_listens(n, start_uts=start_uts, same_second_every=every)


# --------------------------------------------------------------------------- full import

def test_full_import_stores_every_listen_once_with_same_second_listens(new_app, fm):
    listens = with_ties(1000)
    # two different tracks in one second (same title, different artists; and two titles of one artist)
    listens += [{"uts": T0 + 100_000, "artist": "Alpha", "title": "Same Title"},
                {"uts": T0 + 100_000, "artist": "Beta", "title": "Same Title"},
                {"uts": T0 + 100_060, "artist": "Alpha", "title": "One"},
                {"uts": T0 + 100_060, "artist": "Alpha", "title": "Two"}]
    assert len({item["uts"] for item in listens}) < len(listens) - 100  # many seconds hold two listens
    fm.add_listens("rj", listens)
    app = new_app()
    client = app.test_client()
    assert client.get(PROGRESS).get_json()["status"] == "idle"

    snap = run_import(app)

    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(listens)
    assert via_api(client) == keys(listens)
    counters = snap["counters"]
    assert (counters["imported"], counters["skipped"], counters["errors"]) == (1004, 0, 0)
    result = snap["result"]
    assert result["total_scrobbles"] == 1004
    assert result["imported"] == 1004 and result["skipped"] == 0 and result["errors"] == 0
    assert result["batches"] == result["total_batches"] == 6  # 1,004 listens in pages of 200
    assert result["albums_to_enrich"] == 50 * 4  # generate_listens: 50 artists x 4 albums; the rest have none
    assert "1,004" in result["message"]
    progress = client.get(PROGRESS).get_json()
    assert {k: progress[k] for k in ("status", "current_batch", "total_batches", "imported", "skipped", "errors",
                                     "total_scrobbles")} == {
        "status": "completed", "current_batch": 6, "total_batches": 6, "imported": 1004, "skipped": 0,
        "errors": 0, "total_scrobbles": 1004}
    # 200 listens per request; the window's end is fixed on every page request
    pages = fm.recent_requests()
    assert {p["limit"] for p in pages} == {"200"}
    assert len({p["to"] for p in pages}) == 1


def test_a_scrobble_listed_twice_is_stored_once_and_the_summary_says_so(new_app, fm):
    listens = with_ties(30)
    fm.add_listens("rj", listens + [dict(listens[10])])  # Last.fm lists one play twice
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed"
    assert stored(app) == keys(listens)
    assert (snap["counters"]["imported"], snap["counters"]["skipped"]) == (30, 1)
    assert snap["result"]["total_scrobbles"] == 31
    assert "skipped" in snap["result"]["message"]


def test_same_second_listens_across_a_page_boundary_are_all_stored(new_app, fm):
    listens = generate_listens(450, start_uts=T0)  # one listen a minute
    # positions 199, 200 and 201 counted from the newest (1-based) share one second: pages 1 and 2 split them
    newest_first = list(reversed(listens))
    for position in (199, 200, 201):
        newest_first[position - 1]["uts"] = newest_first[198]["uts"]
    fm.add_listens("rj", listens)
    listed = fm.listens("rj")
    assert listed[199]["uts"] == listed[200]["uts"]  # the group really straddles the page boundary

    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed"
    assert stored(app) == keys(listens)
    assert (snap["counters"]["imported"], snap["counters"]["skipped"]) == (450, 0)


def test_single_track_history_and_empty_history(new_app, fm):
    app = new_app("empty")
    snap = run_import(app)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == []
    assert snap["result"]["imported"] == 0 and snap["result"]["total_batches"] == 0
    assert snap["result"]["total_scrobbles"] == 0
    assert "Imported 0 new listens" in snap["result"]["message"]
    assert app.test_client().get(PROGRESS).get_json()["status"] == "completed"

    one = [{"uts": T0, "artist": "Nick Drake", "title": "Pink Moon", "album": "Pink Moon"}]
    fm.add_listens("rj", one)
    app = new_app("single")
    snap = run_import(app)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(one)
    assert snap["result"]["imported"] == 1 and snap["result"]["batches"] == 1
    assert snap["result"]["albums_to_enrich"] == 1
    assert "Imported 1 new listen" in snap["result"]["message"]


# --------------------------------------------------------------------------- incremental, concurrent listens

def test_incremental_import_fetches_only_the_newer_window(new_app, fm):
    old = with_ties(600)
    fm.add_listens("rj", old)
    app = new_app()
    assert run_import(app)["status"] == "completed"
    newest = max(item["uts"] for item in old)

    newer = generate_listens(150, start_uts=newest + 30, title_prefix="Newer", same_second_every=5)
    fm.add_listens("rj", newer)
    mark = len(fm.requests)
    snap = run_import(app)  # default: incremental once listens exist

    assert snap["status"] == "completed"
    assert stored(app) == keys(old + newer)
    assert snap["counters"]["imported"] == 150
    # only the newest stored second (or the one before it) is asked again, and skipped
    ties_at_newest = sum(1 for item in old if item["uts"] >= newest - 1)
    assert snap["counters"]["skipped"] == ties_at_newest
    pages = fm.recent_requests(mark)
    assert pages and all(newest - 1 <= int(p["from"]) <= newest for p in pages)
    assert len(pages) == 2  # count + the one page of the newer window, not the 3 pages of the whole history


def test_listens_scrobbled_during_an_import_wait_for_the_next_one(new_app, fm):
    history = with_ties(1000)
    fm.add_listens("rj", history)
    fm.latency = 0.1
    app = new_app()
    added = []

    def scrobble_meanwhile():
        wait_until(lambda: len(fm.recent_requests()) >= 4)  # the count and the first pages are asked
        window_to = int(fm.recent_requests()[0]["to"])
        batch = generate_listens(40, start_uts=window_to + 1, step_seconds=0, title_prefix="Live")
        added.extend(batch)
        fm.add_listens("rj", batch)

    helper = threading.Thread(target=scrobble_meanwhile)
    begun = int(time.time())
    job_id = start(app.test_client())
    helper.start()
    helper.join(15)
    snap = wait_for_job(app, job_id)
    assert added, "the listens were not added during the import"
    assert snap["status"] == "completed"
    assert stored(app) == keys(history)  # not in this import, and nothing shifted or doubled
    assert snap["counters"]["skipped"] == 0

    fm.latency = 0
    wait_until(lambda: time.time() >= begun + 2, timeout=5, every=0.05)  # the next window ends after them
    snap = run_import(app)
    assert snap["status"] == "completed"
    assert stored(app) == keys(history + added)
    assert snap["counters"]["imported"] == 40


# --------------------------------------------------------------------------- cancel and resume

def test_cancelled_then_resumed_import_equals_a_clean_import(new_app, fm):
    history = with_ties(3000)  # 15 pages: a cancel lands mid-way even on a busy machine
    fm.add_listens("rj", history)
    clean = new_app("clean")
    assert run_import(clean)["status"] == "completed"
    clean_listens = stored(clean)
    assert clean_listens == keys(history)

    fm.latency = 0.15
    app = new_app("resumed")
    client = app.test_client()
    begun = int(time.time())
    job_id = start(client)
    wait_until(lambda: client.get(f"/api/v1/jobs/{job_id}").get_json()["counters"].get("imported", 0) > 0)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "cancelled"
    partial = stored(app)
    assert 0 < len(partial) < len(history)
    assert len(partial) == len(set(partial))
    window_to = checkpoint(app, job_id)["window"]["to"]

    # listens scrobbled between the cancel and the resume are outside the original window
    later = generate_listens(25, start_uts=window_to + 1, step_seconds=0, title_prefix="Later")
    fm.add_listens("rj", later)
    fm.latency = 0
    mark = len(fm.requests)
    resp = client.post(f"/api/v1/jobs/{job_id}/resume")
    assert resp.status_code == 202, resp.get_json()
    snap = wait_for_job(app, job_id)

    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == clean_listens  # nothing missing, nothing doubled, nothing from after the window
    assert snap["result"]["imported"] == 3000 and snap["result"]["skipped"] == 0
    assert {int(p["to"]) for p in fm.recent_requests(mark)} == {window_to}
    # the listens made meanwhile come with the next (incremental) import
    wait_until(lambda: time.time() >= begun + 2, timeout=5, every=0.05)
    assert run_import(app)["status"] == "completed"
    assert stored(app) == sorted(clean_listens + keys(later))


# --------------------------------------------------------------------------- limit and skip_existing

def test_limit_stores_exactly_that_many_of_the_oldest_listens(new_app, fm):
    history = with_ties(1000)
    fm.add_listens("rj", history)
    app = new_app()
    snap = run_import(app, limit=250)
    assert snap["status"] == "completed"
    assert stored(app) == oldest(fm, 250)
    assert snap["result"]["imported"] == 250
    assert snap["result"]["total_batches"] == 2
    assert "limited to 250" in snap["result"]["message"]
    # the next import continues from there
    assert run_import(app)["status"] == "completed"
    assert stored(app) == keys(history)


def test_skip_existing_false_rereads_the_whole_history_and_stores_nothing_twice(new_app, fm):
    history = with_ties(600)
    fm.add_listens("rj", history)
    app = new_app()
    assert run_import(app)["status"] == "completed"
    mark = len(fm.requests)
    snap = run_import(app, skip_existing="false")
    assert snap["status"] == "completed"
    assert stored(app) == keys(history)
    assert (snap["counters"]["imported"], snap["counters"]["skipped"]) == (0, 600)
    pages = fm.recent_requests(mark)
    assert len(pages) == 1 + 3 and all("from" not in p for p in pages)


def test_date_range_import(new_app, fm):
    history = generate_listens(300, start_uts=T0)  # one a minute
    fm.add_listens("rj", history)
    app = new_app()
    lo, hi = history[100]["uts"], history[199]["uts"]
    snap = run_import(app, **{"from": lo, "to": hi})
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history[100:200])
    assert "date range" in snap["result"]["message"]


# --------------------------------------------------------------------------- retries

@pytest.mark.parametrize("fault", [{"code": 29}, {"http_status": 503}, {"code": 8}, {"code": 11}, {"code": 16},
                                   {"code": 8, "http_status": 500},
                                   {"body": '<?xml version="1.0"?><lfm status="ok"><recenttracks page=', "http_status": 200}],
                         ids=["rate-limit-29", "http-503", "code-8", "code-11", "code-16", "code-8-as-500",
                              "malformed-body"])
def test_bursts_of_temporary_errors_are_retried_and_counted(new_app, fm, fault):
    history = with_ties(600)
    fm.add_listens("rj", history)
    seen = set()

    def burst(params):
        if params.get("method") == "user.getRecentTracks":
            seen.add(params.get("page"))
            if len(seen) == 2 and not burst.done:  # a burst in the middle of the import
                burst.done = True
                fm.fail_next(4, **fault)

    burst.done = False
    fm.on_arrival = burst
    app = new_app()
    snap = run_import(app)
    assert burst.done
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["counters"]["retries"] == 4
    assert snap["counters"]["errors"] == 0


@pytest.mark.parametrize("body", [
    '<?xml version="1.0"?><html><body><h1>Down for maintenance</h1></body></html>',
    '<?xml version="1.0" encoding="UTF-8"?><lfm status="ok"></lfm>',
], ids=["xhtml-page", "empty-lfm"])
def test_a_page_that_is_not_a_lastfm_answer_is_retried(new_app, fm, body):
    history = with_ties(600)
    fm.add_listens("rj", history)
    fm.fail_next(1, method="user.getRecentTracks", body=body, http_status=200)
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["counters"]["retries"] == 1


def test_an_emulator_that_enforces_two_a_second_is_outwaited(new_app, fm):
    """The app misconfigured at 100 requests a second against a server allowing 2: 29s, retries, all data.
    (2, not Last.fm's 5: a busy machine may not manage 5 requests in a second, and then nothing is refused.)"""
    history = with_ties(1600)
    fm.add_listens("rj", history)
    fm.rate_limit_per_second = 2
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["counters"]["retries"] > 0


@pytest.mark.parametrize("fault, why", [({"code": 29}, "Last.fm rate limit"), ({"http_status": 503}, "Last.fm error 503")],
                         ids=["rate-limit", "http-503"])
def test_the_progress_says_what_it_waits_for(new_app, fm, fault, why):
    fm.add_listens("rj", with_ties(400))
    app = new_app(LASTFM_RETRY_BASE_SECONDS=0.3)
    messages = record_messages(app)
    fm.fail_next(1, method="user.getRecentTracks", **fault)
    client = app.test_client()
    job_id = start(client)

    def waiting_message():
        message = client.get(f"/api/v1/jobs/{job_id}").get_json().get("message") or ""
        return message if "waiting" in message else None

    polled = wait_until(waiting_message, timeout=10, every=0.02)
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "completed", snap["message"]
    assert re.fullmatch(rf"{why}, waiting 0\.3 s \(try 1; gives up after 600 s of failures\)", polled), polled
    assert any(re.fullmatch(rf"{why}, waiting \d+(\.\d)? s \(try \d+; gives up after 600 s of failures\)", m)
               for m in messages), messages
    assert snap["counters"]["retries"] == 1


def test_retries_exhausted_keep_what_was_saved_and_resume_finishes(new_app, fm):
    history = with_ties(2000)
    fm.add_listens("rj", history)
    fm.latency = 0.05
    seen = set()

    def outage(params):
        if params.get("method") != "user.getRecentTracks" or params.get("page") == "1" and not seen:
            return
        page = int(params["page"])
        if not outage.done and {10, 9} <= seen and page not in (10, 9):
            outage.done = True
            fm.fail_next(10, http_status=503)
        seen.add(page)

    outage.done = False
    fm.on_arrival = outage
    app = new_app(LASTFM_MAX_ATTEMPTS=3)
    client = app.test_client()
    job_id = start(client)
    snap = wait_for_job(app, job_id)

    assert outage.done
    assert snap["status"] == "error"
    assert "kept failing" in snap["message"] and "saved" in snap["message"], snap["message"]
    assert "resume" in snap["message"]
    kept = stored(app)
    assert 400 <= len(kept) < 2000 and len(kept) % 200 == 0
    assert kept == oldest(fm, len(kept))  # the oldest pages, committed whole
    assert client.get(PROGRESS).get_json()["status"] == "error"

    fm.on_arrival = None
    fm.clear_faults()
    fm.latency = 0
    assert client.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["result"]["imported"] == 2000


# --------------------------------------------------------------------------- fatal errors and settings

@pytest.mark.parametrize("case, setting", [
    ("unknown-user", "LASTFM_USERNAME"),
    ("wrong-key", "LASTFM_API_KEY"),
    pytest.param("suspended-key", "LASTFM_API_KEY"),
])
def test_fatal_settings_errors_answer_400_and_start_no_job(new_app, fm, case, setting):
    environ = {"unknown-user": {"LASTFM_USERNAME": "nobody"}, "wrong-key": {"LASTFM_API_KEY": "wrong"},
               "suspended-key": {}}[case]
    if case == "suspended-key":
        fm.suspend_key()
    fm.add_listens("rj", with_ties(10))
    app = new_app(**environ)
    client = app.test_client()
    resp = client.post(HISTORY)
    assert resp.status_code == 400
    message = resp.get_json()["error"]
    assert {"unknown-user": "nobody", "wrong-key": "invalid key", "suspended-key": "suspended"}[case] in message
    assert client.post("/api/v1/services/lastfm/check").status_code == 400
    assert client.post("/api/v1/services/lastfm/check").get_json()["error"] == message
    assert job_rows(app) == []
    assert client.get(PROGRESS).get_json()["status"] == "idle"
    assert stored(app) == []
    assert setting in message, message


def test_missing_credentials_name_the_missing_settings(new_app, fm):
    app = new_app(LASTFM_API_KEY=None, LASTFM_API_SECRET=None)
    client = app.test_client()
    resp = client.post(HISTORY)
    assert resp.status_code == 400
    message = resp.get_json()["error"]
    assert "LASTFM_API_KEY" in message and "LASTFM_API_SECRET" in message and "LASTFM_USERNAME" not in message
    assert client.post("/api/v1/services/lastfm/check").status_code == 400
    assert job_rows(app) == []
    assert fm.count() == 0  # nothing was even asked

    good = new_app("good")
    resp = good.test_client().post("/api/v1/services/lastfm/check")
    assert resp.status_code == 200 and resp.get_json()["ok"] is True


def test_bad_parameters_answer_400(new_app, fm):
    client = new_app().test_client()
    for query in ({"limit": 0}, {"limit": "many"}, {"skip_existing": "maybe"}, {"from": "yesterday"}):
        assert client.post(HISTORY, query_string=query).status_code == 400, query
    assert fm.count() == 0


def test_private_profile_ends_the_job_with_the_privacy_setting_to_change(new_app, fm):
    fm.add_listens("rj", with_ties(50))
    fm.set_private("rj")
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "error"
    assert "hides its recent listens" in snap["message"] and "Privacy" in snap["message"], snap["message"]
    assert stored(app) == []
    assert app.test_client().get(PROGRESS).get_json()["status"] == "error"


def test_a_fatal_error_mid_import_ends_the_job_and_keeps_committed_pages(new_app, fm):
    history = with_ties(1000)  # pages 5 (oldest) .. 1
    fm.add_listens("rj", history)

    def suspend_at_page_3(params):
        if params.get("method") == "user.getRecentTracks" and params.get("page") == "3" and not suspend_at_page_3.done:
            suspend_at_page_3.done = True
            fm.fail_next(1, code=26, method="user.getRecentTracks")

    suspend_at_page_3.done = False
    fm.on_arrival = suspend_at_page_3
    app = new_app()
    snap = run_import(app)
    assert suspend_at_page_3.done
    assert snap["status"] == "error"
    assert "suspended" in snap["message"], snap["message"]
    assert stored(app) == oldest(fm, 400)  # pages 5 and 4, the oldest, committed before page 3 failed
    assert checkpoint(app, snap["id"])["next_page"] == 3


# --------------------------------------------------------------------------- names

TRICKY = [
    {"uts": T0 + 10, "artist": "Sigur Rós", "title": "Hoppípolla", "album": "Takk…"},
    {"uts": T0 + 20, "artist": "坂本龍一", "title": "戦場のメリークリスマス", "album": "音楽図鑑"},
    {"uts": T0 + 30, "artist": "🎸 Guitar Hero 🔥", "title": "Smile 😀 now", "album": "Emoji 🎵"},
    {"uts": T0 + 40, "artist": "AC/DC & <Friends>", "title": 'Say "Hello" & <Bye>', "album": "Rock & Roll <Live>"},
    {"uts": T0 + 50, "artist": "<script>alert(1)</script>", "title": '<img src=x onerror="alert(2)">',
     "album": "Ünïcödé & Co"},
    {"uts": T0 + 50, "artist": "Beyoncé", "title": "Déjà Vu", "album": "B'Day"},
]


def test_names_with_accents_cjk_emoji_and_markup_are_stored_exactly_and_escaped(new_app, fm):
    fm.add_listens("rj", TRICKY)
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed"
    assert stored(app) == keys(TRICKY)
    client = app.test_client()
    items = client.get("/api/v1/listens", query_string={"page_size": 50}).get_json()["items"]
    assert sorted((i["artist"], i["title"], i["album"]) for i in items) == sorted(
        (t["artist"], t["title"], t["album"]) for t in TRICKY)

    page = client.get("/journal")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x" not in html and "<Friends>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    assert "AC/DC &amp; &lt;Friends&gt;" in html
    for text in ("Sigur Rós", "Hoppípolla", "坂本龍一", "戦場のメリークリスマス", "🎸 Guitar Hero 🔥", "Smile 😀 now"):
        assert text in html


# --------------------------------------------------------------------------- pacing, now playing, 409

def test_pacing_keeps_five_requests_a_second_with_several_in_flight(tmp_path, migrated_template):
    """Last.fm's rule: at most 5 requests a second, as Last.fm receives them. The emulator runs in its
    own process (tests/lastfm_emulator_process.py) and stamps each request as it arrives; no
    one-second window of those arrivals holds more than 5, while several requests are in flight."""
    import json
    import subprocess
    import sys

    history = with_ties(2000)  # 10 pages
    proc = subprocess.Popen([sys.executable, "-m", "tests.lastfm_emulator_process", "2000", str(T0), "7", "0.3"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        environ = {"LASTFM_API_URL": url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s",
                   "LASTFM_USERNAME": "rj", "LASTFM_RETRY_BASE_SECONDS": 0.01}  # the shipped 5 a second
        app = make_app(tmp_path / "paced", migrated_template, environ=environ)
        snap = run_import(app)
        out, _ = proc.communicate("stop\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    received = json.loads(out.strip().splitlines()[-1])
    arrivals = sorted(received["arrivals"])

    def busiest(times):
        return max(sum(1 for t in times if first <= t < first + 1.0) for first in times)

    assert len(arrivals) == 13  # the settings check, the play count, page 1 (the count), then pages 10 to 1
    assert busiest(arrivals) <= 5, [round(t - arrivals[0], 3) for t in arrivals]
    assert received["max_in_flight"] >= 2  # pacing spreads the starts; answers still overlap


def test_cancel_is_honoured_while_waiting_out_an_outage(new_app, fm):
    """A cancel ends the wait at once: the try that would follow the 30 s wait is never sent."""
    fm.add_listens("rj", with_ties(400))
    fm.fail_next(100, http_status=503, method="user.getRecentTracks")  # Last.fm down from the first page
    app = new_app(LASTFM_RETRY_BASE_SECONDS=30)
    client = app.test_client()
    job_id = start(client)
    wait_until(lambda: "waiting 30 s" in (client.get(f"/api/v1/jobs/{job_id}").get_json().get("message") or ""),
               timeout=10, every=0.02)
    asked_before = fm.count("user.getRecentTracks")
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    snap = wait_for_job(app, job_id, timeout=10)  # well inside the 30 s wait
    assert snap["status"] == "cancelled", (snap["status"], snap["message"])
    assert fm.count("user.getRecentTracks") == asked_before == 1


def test_a_scrobble_stamped_before_the_import_began_does_not_cost_an_older_listen(new_app, fm):
    """Last.fm stamps a scrobble with the time its track STARTED; scrobblers send it when the track ends.

    So a track started a minute before the import began is scrobbled during the import with a time
    before the job's start. Every listen that was already on Last.fm must still be imported.
    """
    history = with_ties(1000)  # pages 5 (oldest) .. 1
    fm.add_listens("rj", history)
    begun = int(time.time())
    late = {"uts": begun - 60, "artist": "Still Playing", "title": "Long Song", "album": "Long Album"}

    def scrobble_at_page_4(params):
        if params.get("method") == "user.getRecentTracks" and params.get("page") == "4" and not late.get("sent"):
            late["sent"] = True
            fm.add_listens("rj", [{k: v for k, v in late.items() if k != "sent"}])

    fm.on_arrival = scrobble_at_page_4
    app = new_app(LASTFM_CONCURRENCY=1)  # page 5 is answered before the scrobble arrives, page 4 after
    snap = run_import(app)
    assert late.get("sent") and snap["status"] == "completed"
    missing = sorted(set(keys(history)) - set(stored(app)))
    assert missing == []


def test_now_playing_is_never_stored(new_app, fm):
    history = with_ties(20)
    fm.add_listens("rj", history)
    fm.set_now_playing("rj", {"artist": "Playing Now", "title": "Not Yet A Listen", "album": "Live"})
    app = new_app()
    snap = run_import(app)
    assert snap["status"] == "completed"
    assert stored(app) == keys(history)
    assert all(row[1] != "Playing Now" for row in stored(app))
    # the track playing now does not count among the listens
    assert snap["result"]["imported"] == 20


def test_a_second_import_while_one_runs_answers_409_with_its_id(new_app, fm):
    fm.add_listens("rj", with_ties(600))
    fm.latency = 0.2
    app = new_app()
    client = app.test_client()
    job_id = start(client)
    resp = client.post(HISTORY)
    assert resp.status_code == 409
    assert resp.get_json()["job_id"] == job_id
    running = client.get(PROGRESS).get_json()
    assert running["status"] in ("starting", "running") and running["job_id"] == job_id
    fm.latency = 0
    assert wait_for_job(app, job_id)["status"] == "completed"
    assert len(stored(app)) == 600


# --------------------------------------------------------------------------- CLI and script

def test_flask_lastfm_import_command(new_app, fm):
    history = with_ties(120)
    fm.add_listens("rj", history)
    app = new_app()
    result = app.test_cli_runner().invoke(args=["lastfm", "import", "50"])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "completed" in result.output
    assert stored(app) == oldest(fm, 50)

    fm.set_private("rj")
    result = app.test_cli_runner().invoke(args=["lastfm", "import"])
    assert result.exit_code != 0
    assert "hides its recent listens" in result.output


def run_script(url, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "import_lastfm_history.py"), *args, "--url", url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_script_against_a_real_server(server_factory, fm):
    history = with_ties(300)
    fm.add_listens("rj", history)
    server = server_factory(env={k: str(v) for k, v in lastfm_environ(fm).items()})

    done = run_script(server.url, "120")
    assert done.returncode == 0, done.stdout + done.stderr + server.log()
    out = done.stdout
    assert "completed" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["imported"].split()[-1] == "120"
    assert "duration" in lines and "errors" in lines and "skipped" in lines
    assert "albums to enrich" in out and "total scrobbles" in out and "300" in out

    fm.set_private("rj")
    failed = run_script(server.url)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error" in failed.stdout and "hides its recent listens" in failed.stdout


# --------------------------------------------------------------------------- messages stay true

def record_snapshots(app):
    """Every snapshot the progress store is given from now on, as published."""
    store = app.extensions["sillon"]["progress_store"]
    seen, publish = [], store.publish

    def recording(snap):
        seen.append(snap)
        return publish(snap)

    store.publish = recording
    return seen


def step_of(snap, step_id):
    return next(s for s in snap["steps"] if s["id"] == step_id)


def test_every_shown_step_message_is_the_current_one(new_app, fm):
    """The fetch step's message follows the batches saved (it once stayed at "batch 1/150" while
    the header said "batch 23/150"), and the header says the same while nothing is waited for."""
    history = with_ties(2000)  # 10 batches
    fm.add_listens("rj", history)
    fm.latency = 0.02
    app = new_app(LASTFM_CONCURRENCY=1, PROGRESS_PUBLISH_INTERVAL=0.01)
    snaps = record_snapshots(app)
    job_id = start(app.test_client())
    snap = wait_for_job(app, job_id)
    assert snap["status"] == "completed", snap["message"]

    mine = [s for s in snaps if s["id"] == job_id]  # the store also carries the journal's listens topic
    fetching = [s for s in mine if step_of(s, "fetch")["status"] == "in_progress"]
    shown = []
    for s in fetching:
        message = step_of(s, "fetch")["message"]
        m = re.fullmatch(r"batch (\d+)/10 saved", message)
        assert m, message
        saved, counted = int(m.group(1)), s["counters"].get("batches", 0)
        # The two are set one after the other: a snapshot taken in between may see the count first.
        assert counted - 1 <= saved <= counted, (message, s["counters"])
        if s["current_step"] == "fetch" and "waiting" not in s["message"]:
            assert s["message"] in (message, f"batch {counted}/10 saved"), (s["message"], message)
        shown.append(saved)
    assert shown == sorted(shown) and len(set(shown)) >= 3, shown  # it moves with the import
    assert step_of(snap, "fetch")["message"] == "10/10 batches"
