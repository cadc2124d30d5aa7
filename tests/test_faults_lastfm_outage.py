"""Last.fm down for a while in the middle of an import: refusing connections (its server stopped,
so nothing listens on its port) or answering 503 to everything.

A short outage is waited out in plain sight ("Last.fm unreachable, waiting N s (try k; ...)")
and the import ends with every listen. An outage longer than LASTFM_OUTAGE_SECONDS ends the job
with a message saying what was kept; once Last.fm is back, resuming it gives the full data. Waits
are made short here (LASTFM_RETRY_BASE_SECONDS=0.05); the code paths are the production ones. The
last two tests keep the shipped rule's ratios (every duration a hundred times shorter, the tries at
their default): there the outage budget, not the number of tries, decides when an import gives up.
"""
from __future__ import annotations

import re
import threading

import pytest

from tests.conftest import wait_for_job
from tests.emulators.lastfm import _Handler, _Server
from tests.test_lastfm_import import (
    Emulator,
    app_factory,
    keys,
    oldest,
    record_messages,
    start,
    stored,
    wait_until,
    with_ties,
)


class Outage(Emulator):
    """The emulator, able to go down (refused connections or 503s) and come back on the same port."""

    def __init__(self):
        super().__init__()
        self.fixed_port = None

    def start(self):
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self.fixed_port or 0), _Handler)
        server.emulator = self
        self._server = server
        self.fixed_port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.fixed_port}/2.0/"

    def down(self, mode):
        if mode == "refused":
            self.stop()  # nothing listens on the port: connection refused
        else:
            self.fail_next(10 ** 6, http_status=503)

    def up(self, mode):
        if mode == "refused":
            self.start()
        else:
            self.clear_faults()


@pytest.fixture
def fm():
    emulator = Outage().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def new_app(tmp_path, migrated_template, fm):
    yield from app_factory(tmp_path, migrated_template, fm)


WHY = {"refused": "Last.fm unreachable", "503": "Last.fm error 503"}
FAST = {"LASTFM_RETRY_BASE_SECONDS": 0.05, "LASTFM_CONCURRENCY": 1, "JOB_HEARTBEAT_SECONDS": 0.2}


def down_at_page(fm, page):
    """An event set when Last.fm is asked for `page` (oldest first: 10, 9, ...)."""
    reached = threading.Event()

    def arrival(params):
        if params.get("method") == "user.getRecentTracks" and params.get("page") == str(page):
            reached.set()

    fm.on_arrival = arrival
    return reached


@pytest.mark.parametrize("mode", ["refused", "503"])
def test_a_short_outage_is_waited_out_visibly_and_the_import_completes(new_app, fm, mode):
    history = with_ties(2000)
    fm.add_listens("rj", history)
    app = new_app(LASTFM_MAX_ATTEMPTS=40, LASTFM_OUTAGE_SECONDS=120, **FAST)
    messages = record_messages(app)
    reached = down_at_page(fm, 6)
    job_id = start(app.test_client())
    assert reached.wait(30)
    fm.on_arrival = None
    fm.down(mode)
    waiting = wait_until(lambda: [m for m in messages if re.fullmatch(
        rf"{WHY[mode]}, waiting \d+(\.\d)? s \(try [3-9]; gives up after 120 s of failures\)", m)], timeout=30)
    assert waiting
    kept = stored(app)
    assert len(kept) < len(history)
    fm.up(mode)

    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert snap["counters"]["retries"] >= 3
    assert stored(app) == keys(history)
    assert snap["result"]["imported"] == len(history)


@pytest.mark.parametrize("mode", ["refused", "503"])
def test_an_outage_past_the_budget_ends_the_job_and_resume_completes_it(new_app, fm, mode):
    history = with_ties(2000)
    fm.add_listens("rj", history)
    # Waits of 0.05, 0.1, 0.2, 0.4 s fit in a 1 s budget; the next (0.8 s) is cut to what is left,
    # so the last try falls at the budget's end (on a slow machine the fourth may be cut already).
    app = new_app(LASTFM_MAX_ATTEMPTS=100, LASTFM_OUTAGE_SECONDS=1, **FAST)
    messages = record_messages(app)
    reached = down_at_page(fm, 6)
    client = app.test_client()
    job_id = start(client)
    assert reached.wait(30)
    fm.on_arrival = None
    fm.down(mode)

    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "error"
    message = snap["message"]
    assert "kept failing" in message and re.search(r"and [4-6] tries \(the LASTFM_OUTAGE_SECONDS limit", message), message
    assert ("could not reach Last.fm" if mode == "refused" else "503") in message, message
    assert "saved" in message and "resume" in message, message
    assert [m for m in messages if "(try 3;" in m and WHY[mode] in m]
    kept = stored(app)
    assert 0 < len(kept) < len(history) and len(kept) % 200 == 0
    assert kept == oldest(fm, len(kept))  # whole pages, the oldest, nothing else

    fm.up(mode)
    r = client.post(f"/api/v1/jobs/{job_id}/resume")
    assert r.status_code == 202, r.get_json()
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
    assert snap["result"]["imported"] == len(history)


# The shipped rule scaled down a hundred times (waits from 1 s doubling to 60 s, 600 s of trying,
# 20 tries), so its ratios hold: LASTFM_MAX_ATTEMPTS at its default, only the seconds shortened.
SHIPPED_SCALED = {"LASTFM_RETRY_BASE_SECONDS": 0.01, "LASTFM_RETRY_MAX_SECONDS": 0.6, "LASTFM_OUTAGE_SECONDS": 6,
                  "LASTFM_CONCURRENCY": 1}


def test_with_the_shipped_ratios_the_outage_budget_decides_not_the_tries(new_app, fm):
    """Ten tries (the old default) would have ended this outage after 243 s (2.4 s here); it is
    waited out past them, within the 600 s budget, and the import completes."""
    history = with_ties(2000)
    fm.add_listens("rj", history)
    app = new_app(**SHIPPED_SCALED)
    messages = record_messages(app)
    reached = down_at_page(fm, 6)
    job_id = start(app.test_client())
    assert reached.wait(30)
    fm.on_arrival = None
    fm.down("refused")
    wait_until(lambda: [m for m in messages if "(try 12;" in m], timeout=30)  # past ten tries, still waiting
    assert all(re.fullmatch(r"Last\.fm unreachable, waiting \d+(\.\d)? s \(try \d+; gives up after 6 s of failures\)", m)
               for m in messages if "waiting" in m), messages
    fm.up("refused")
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)


def test_with_the_shipped_ratios_a_long_outage_ends_on_the_time_limit(new_app, fm):
    history = with_ties(2000)
    fm.add_listens("rj", history)
    app = new_app(**SHIPPED_SCALED)
    reached = down_at_page(fm, 6)
    client = app.test_client()
    job_id = start(client)
    assert reached.wait(30)
    fm.on_arrival = None
    fm.down("refused")
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "error"
    tries = re.search(r"gave up after \d+ s of failures and (\d+) tries \(the LASTFM_OUTAGE_SECONDS limit of 6 s\)",
                      snap["message"])
    assert tries and int(tries.group(1)) < 20, snap["message"]  # the time ended it, before the tries ran out
    assert "Everything fetched before is saved; resume" in snap["message"]
    kept = stored(app)
    assert 0 < len(kept) < len(history) and kept == oldest(fm, len(kept))
    fm.up("refused")
    assert client.post(f"/api/v1/jobs/{job_id}/resume").status_code == 202
    snap = wait_for_job(app, job_id, timeout=60)
    assert snap["status"] == "completed", snap["message"]
    assert stored(app) == keys(history)
