"""A job whose worker goes quiet, seen in a real browser (headless chromium) without a reload.

Two gunicorn servers on one database: the job runs on A, the page is open on B. A is stopped
(SIGSTOP: a hung runner, or one on a host that no longer answers; a runner SIGKILLed on this host
is noticed at once by its dead pid and continued before its beat is even late). Then:

1. the page says "Stalled: no news from the worker for N s" as soon as A's beat is late (two beats
   missed), N growing, over the event stream and over the polling fallback alike;
2. A continued (SIGCONT) before JOB_STALE_SECONDS: its beats come back, the note goes away, and
   the job goes on in A (no takeover);
3. A stopped again past JOB_STALE_SECONDS: B takes the job over, the page shows the continuation
   and no note; A, continued, writes nothing more; the job ends on B.

Timers are the shipped ones divided by five (beat 5 s -> 1 s, stale 30 s -> 6 s, stream heartbeat
15 s -> 3 s): the same order of events a person sees, in less time. The polling variant runs in
French, so the translated note is what the page shows.
"""
from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest
import sqlalchemy as sa

from tests.browsing import needs_chromium
from tests.test_faults_worker_kill import database_url, takeovers
from tests.test_streams_server import end_active_jobs, snapshot, start_check

pytestmark = needs_chromium

ENV = {"JOB_HEARTBEAT_SECONDS": "1", "JOB_STALE_SECONDS": "6", "SSE_HEARTBEAT_SECONDS": "3"}
TIMEOUT_MS = 30_000
NOTE = {"en": re.compile(r"^Stalled: no news from the worker for (\d+) s$"),
        "fr": re.compile(r"^Bloqué : aucune nouvelle du processus de travail depuis (\d+) s$")}

# Reports every distinct rendered state of the page to window.__state (a Playwright binding).
RECORDER = """
(() => {
  let last = null;
  function report() {
    const root = document.getElementById("progress");
    const note = document.getElementById("stalled");
    if (!root || !note || !window.__state) return;
    const state = {
      status: root.dataset.status || null,
      transport: root.dataset.transport || null,
      stalled: note.hidden ? null : note.textContent,
      text: document.getElementById("status-text").textContent,
      updates: Number((document.querySelector('dd[data-counter="updates"]') || {}).textContent || 0),
    };
    const key = JSON.stringify(state);
    if (key !== last) { last = key; window.__state(state); }
  }
  document.addEventListener("DOMContentLoaded", () => {
    window.__loadedOnce = (window.__loadedOnce || 0) + 1;
    report();
    new MutationObserver(report).observe(document.getElementById("progress"), {
      subtree: true, childList: true, attributes: true, characterData: true });
  });
})();
"""


class Watch:
    """The page's states, with one action run the moment a state matches (from the binding, so the
    test reacts to what the page shows, not to a poll of its own)."""

    def __init__(self, page):
        self.states = []
        self.trigger = None
        page.expose_function("__state", self._state)
        page.add_init_script(RECORDER)

    def _state(self, state):
        self.states.append(state)
        if self.trigger is not None and self.trigger[0](state):
            action, self.trigger = self.trigger[1], None
            action()

    def when(self, condition, action):
        self.trigger = (condition, action)


def pause(server, instance):
    """SIGSTOP `server` at a moment none of its processes holds a write lock on the database.

    A runner hung in the middle of a write holds up every writer, B's takeover included, until it
    is killed: that is the database-lock fault (docs/faults.md, tests/test_faults_db_lock_server.py),
    not the quiet worker this test is about. It holds such a lock about 0.1% of the time here, more
    on a loaded machine, so a stop at a random moment sometimes lands in one: then A is continued
    at once and stopped again a moment later.
    """
    for _ in range(200):
        os.killpg(server.proc.pid, signal.SIGSTOP)
        if not writing(server, instance):
            return
        os.killpg(server.proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the server was in the middle of a write at each of 200 tries")


def writing(server, instance):
    """Whether a process of `server` is inside a write transaction: on SQLite, holds one of the WAL
    locks (bytes 120-127 of the -shm file, as /proc/locks lists them); on PostgreSQL, has one of its
    connections in a transaction that has written (pg_stat_activity.backend_xid)."""
    pids = {server.proc.pid} | worker_pids(server)
    url = database_url(instance)
    if url.startswith("sqlite"):
        inode = str((instance / "sillon.db-shm").stat().st_ino)
        with open("/proc/locks") as locks:
            for line in locks:
                parts = line.split()  # e.g. "1: POSIX  ADVISORY  WRITE 8070 08:01:1234 120 120"
                if (len(parts) >= 8 and parts[3] == "WRITE" and int(parts[4]) in pids
                        and parts[5].rpartition(":")[2] == inode and 120 <= int(parts[6]) <= 127):
                    return True
        return False
    server_port = sa.engine.make_url(url).port or 5432
    ports = [c.laddr.port for pid in pids for c in psutil.Process(pid).net_connections(kind="tcp")
             if c.raddr and c.raddr.port == server_port]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(:ports) AND backend_xid IS NOT NULL"),
                {"ports": ports}).scalar())
    finally:
        engine.dispose()


def resume(server):
    os.killpg(server.proc.pid, signal.SIGCONT)


def seconds_in(note, lang):
    match = NOTE[lang].match(note or "")
    assert match, f"not the stalled note in {lang}: {note!r}"
    return int(match.group(1))


def worker_pids(server):
    return {p.pid for p in psutil.Process(server.proc.pid).children()}


@pytest.fixture
def two(server_factory):
    a, b = server_factory(env=ENV), server_factory(env=ENV)
    yield a, b, server_factory.instance
    for server in (a, b):
        if server.proc.poll() is None:
            resume(server)  # a failed test may leave A stopped
    end_active_jobs(b.url)


@pytest.mark.parametrize("transport,lang", [("sse", "en"), ("polling", "fr")])
def test_a_quiet_worker_is_shown_stalled_then_back_then_continued_elsewhere(two, browser, transport, lang):
    a, b, instance = two
    context = browser.new_context(locale="fr-FR" if lang == "fr" else "en-US",
                                  extra_http_headers={"Accept-Language": lang})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if transport == "polling":
        page.add_init_script("delete window.EventSource;")
    watch = Watch(page)
    try:
        job = start_check(a.url, duration=20, rate=4)  # runs in A's worker; outlasts the first two phases
        job_id = job["job_id"]
        a_workers = worker_pids(a)
        page.goto(f"{b.url}/progress/{job_id}")
        page.wait_for_function("() => document.getElementById('progress').dataset.status === 'running'")
        assert page.locator("#progress").get_attribute("data-transport") == transport
        assert page.locator("#stalled").is_hidden()

        # 1-2: A stops; the note appears (and its seconds grow); A continued at the first note.
        first_note = len(watch.states)
        watch.when(lambda s: s["stalled"], lambda: resume(a))
        pause(a, instance)
        page.wait_for_function("() => document.getElementById('stalled').hidden === false")
        page.wait_for_function("() => document.getElementById('stalled').hidden === true"
                               " && document.getElementById('progress').dataset.stalled === 'false'")
        back = watch.states[first_note:]
        noted = [s for s in back if s["stalled"]]
        assert noted and all(s["status"] == "running" for s in noted), back
        assert seconds_in(noted[0]["stalled"], lang) >= 2  # two beats of 1 s missed
        assert noted[-1] != back[-1] and back[-1]["status"] == "running" and not back[-1]["stalled"]
        snap = snapshot(b.url, job_id)
        assert snap["status"] == "running" and "stalled_seconds" not in snap
        assert not snap["message"] or "Continuing" not in snap["message"]  # no takeover: A goes on
        updates_back = back[-1]["updates"]
        page.wait_for_function(f"() => Number(document.querySelector('dd[data-counter=\"updates\"]')"
                               f".textContent.replace(/[^0-9]/g, '')) > {updates_back}")

        # 3: A stops for good; the note, then B's takeover (the note goes while A is still stopped:
        # only B can have sent that), the job going on there; A, continued, writes nothing more.
        second_note = len(watch.states)
        pause(a, instance)
        page.wait_for_function("() => document.getElementById('stalled').hidden === false")
        page.wait_for_function("() => document.getElementById('stalled').hidden === true", timeout=60_000)
        history = takeovers(database_url(instance), job_id)
        assert [int(t["from"].rpartition(":")[2]) for t in history] == list(a_workers), history
        resume(a)
        page.wait_for_function("() => document.getElementById('progress').dataset.status === 'completed'",
                               timeout=90_000)
        later = watch.states[second_note:]
        noted = [i for i, s in enumerate(later) if s["stalled"]]
        assert noted and all(later[i]["status"] == "running" for i in noted), later
        seconds = [seconds_in(later[i]["stalled"], lang) for i in noted]
        assert seconds == sorted(seconds) and seconds[0] >= 2, seconds
        assert all(not s["stalled"] for s in later[noted[-1] + 1:])
        final = snapshot(b.url, job_id)
        assert final["status"] == "completed" and final["result"]["updates"] == 80
        history = takeovers(database_url(instance), job_id)
        assert len(history) == 1 and int(history[0]["to"].rpartition(":")[2]) in worker_pids(b), history
        assert page.evaluate("window.__loadedOnce") == 1, "the page was reloaded"
        assert worker_pids(a) == a_workers  # A's worker was stopped, never replaced
        assert not errors, errors
    except BaseException:
        for name, server in (("A", a), ("B", b)):  # shown by pytest with the failure
            print(f"--- server {name} ({server.url}), last lines of its log:\n{server.log()}")
        raise
    finally:
        context.close()
