"""The pages in a real browser (headless Debian chromium, driven by Playwright) against a real gunicorn.

- an upload on /settings is followed live on /progress/<id> over Server-Sent Events, then the page
  moves on to the journal by itself;
- a file that is not a Last.fm export shows the error and stays put, the journal stays empty;
- without EventSource the page polls the JSON snapshot and still follows the job to its end;
- the page of a finished job shows the final state and stays put.

Every state the progress page renders is reported to the test by a MutationObserver (installed
before the page's own script), so fast changes are not missed between two looks from Python.
Screenshots go to tests/artifacts/ (gitignored).
"""
from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import requests

from tests.browsing import needs_chromium
from tests.conftest import FIXTURES

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 30_000       # one page action or expectation
JOB_TIMEOUT_MS = 240_000  # a whole large import (15 s on SQLite, more on PostgreSQL beside chromium on 2 cores: room)
FINAL = ("completed", "error", "cancelled", "interrupted")
# Small batches: many commits, so the page sees many intermediate states.
SERVER_ENV = {"IMPORT_BATCH_SIZE": "100"}
VALID_ROWS = 60_000     # the upload test: about 15-20 s of import here
POLLED_ROWS = 30_000    # the polling test only needs the job to outlive the page load
BAD_ROWS = [
    "Bad Date,Some Album,Some Track,not a date",
    "Too Few Columns,Some Album,13 Mar 2010 10:00",
    "Now Playing,Some Album,Some Track,",
    "Impossible Date,Some Album,Some Track,31 Feb 2010 10:00",
    ",Some Album,No Artist,14 Mar 2010 10:00",
]

# A deadline, not a duration under test: the per-test timeout leaves room for JOB_TIMEOUT_MS.
pytestmark = [needs_chromium, pytest.mark.timeout(360)]

# Reports every distinct rendered state of the progress page to window.__progressState (a
# Playwright binding): bar value, status, transport, top-level step statuses, counters, text.
RECORDER = """
(() => {
  let last = null;
  function report() {
    const root = document.getElementById("progress");
    const bar = document.getElementById("bar");
    if (!root || !bar || !window.__progressState) return;
    const counters = {};
    document.querySelectorAll("dd[data-counter]").forEach((dd) => {
      counters[dd.dataset.counter] = Number(dd.textContent.replace(/[^0-9]/g, "") || "0");
    });
    const state = {
      value: Number(bar.getAttribute("aria-valuenow")),
      status: root.dataset.status || null,
      transport: root.dataset.transport || null,
      steps: Array.from(document.querySelectorAll("#steps > li.step")).map((li) => {
        const m = li.className.match(/\\bstep-([a-z_]+)/);
        return li.dataset.stepId + ":" + (m ? m[1] : "?");
      }),
      counters: counters,
      text: (document.getElementById("status-text") || {}).textContent || "",
      url: location.pathname,
    };
    const key = JSON.stringify(state);
    if (key !== last) { last = key; window.__progressState(state); }
  }
  document.addEventListener("DOMContentLoaded", () => {
    report();
    const root = document.getElementById("progress");
    if (root) {
      new MutationObserver(report).observe(root, {
        subtree: true, childList: true, attributes: true, characterData: true });
    }
  });
})();
"""


# ----------------------------------------------------------------------------- helpers
def lastfm_csv(valid=VALID_ROWS, bad=BAD_ROWS):
    """A header-less `artist,album,track,date` export: `valid` distinct listens, one a minute
    from 09 Jun 2008 17:16 UTC, with the `bad` rows spread after the first 20 (format detection
    reads those)."""
    start = dt.datetime(2008, 6, 9, 17, 16)
    lines = []
    for i in range(valid):
        when = (start + dt.timedelta(minutes=i)).strftime("%d %b %Y %H:%M")
        lines.append(f"Artist {i % 997},Album {i % 3001},Track {i},{when}")
    step = max(1, (valid - 20) // (len(bad) + 1))
    for k, row in enumerate(bad):
        lines.insert(20 + (k + 1) * step + k, row)
    return ("\n".join(lines) + "\n").encode("utf-8")


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("exports") / "lastfm-history.csv"
    path.write_bytes(lastfm_csv())
    return path


@pytest.fixture(scope="module")
def medium_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("exports") / "lastfm-medium.csv"
    path.write_bytes(lastfm_csv(valid=POLLED_ROWS))
    return path


class Recorder:
    """States reported by the page, and the URLs it requested."""

    def __init__(self, page):
        self.states = []
        self.requests = []
        page.on("request", lambda req: self.requests.append(req.url))
        page.expose_function("__progressState", self._state)
        page.add_init_script(RECORDER)

    def _state(self, state):
        self.states.append(state)

    def on(self, path_prefix):
        return [s for s in self.states if s["url"].startswith(path_prefix)]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    page.recorder = Recorder(page)
    failures_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failures_before:  # the call phase was reported failed
        shot(page, f"{request.node.name}-failure")
        print("browser console:", *console, sep="\n  ")
        print("progress states:", *page.recorder.states[-5:], sep="\n  ")
    context.close()
    errors = [line for line in console if line.startswith("pageerror")]
    assert not errors, f"JavaScript errors on the pages: {errors}"


def shot(page, name, full_page=True):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=full_page)
    except Exception as exc:  # noqa: BLE001 - a screenshot must not hide the real failure
        print(f"screenshot {name} failed: {exc}")
    return path


def api_upload(server, name, content):
    r = requests.post(server.url + "/api/v1/imports", files={"files": (name, content, "text/csv")}, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def job_status(server, job_id):
    r = requests.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=30)
    r.raise_for_status()
    return r.json()


def wait_job(server, job_id, timeout=JOB_TIMEOUT_MS / 1000):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = job_status(server, job_id)
        if snap["status"] in FINAL:
            return snap
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout}s: {snap['status']} {snap['message']}")


def journal_total(page, server):
    """The number of listens the journal shows (0 when it shows the empty state)."""
    page.goto(server.url + "/journal")
    total = page.locator("span#listen-total")
    if total.count() == 0:
        assert page.get_by_text("No listens yet").is_visible()
        return 0
    return int(total.get_attribute("data-total"))


def wait_ready(page):
    """The progress page's script ran (it sets data-status on its first render)."""
    page.wait_for_function("() => { const r = document.getElementById('progress'); return r && r.dataset.status; }")


def stays_on(page, path, seconds=2.5):
    """The page does not move away within `seconds` (the page's own redirect waits 0.6 s)."""
    page.wait_for_timeout(seconds * 1000)
    assert urlpath(page.url) == path, f"the page moved to {page.url}"


def hidden(page, selector):
    """The element's `hidden` flag, as the page's script sets it (whether CSS honours it is
    test_hidden_controls_are_not_displayed's business)."""
    return page.eval_on_selector(selector, "el => el.hidden")


def urlpath(url):
    return re.sub(r"^https?://[^/]+", "", url).split("?")[0]


def step_statuses(state):
    return dict(item.split(":", 1) for item in state["steps"])


# ----------------------------------------------------------------------------- tests
def test_upload_is_followed_live_then_lands_on_the_journal(server_factory, page, big_csv):
    server = server_factory(env=SERVER_ENV)
    page.goto(server.url + "/settings")
    page.locator("input#files").set_input_files(str(big_csv))
    started = time.monotonic()
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_url(re.compile(r"/progress/[0-9a-f]+$"))
    progress_path = urlpath(page.url)
    job_id = progress_path.rsplit("/", 1)[-1]

    # Mid-way: the bar moved, rows are being saved.
    page.wait_for_function("""() => {
        const v = Number(document.getElementById('bar').getAttribute('aria-valuenow'));
        const dd = document.querySelector('dd[data-counter="imported"]');
        return v > 0 && v < 100 && dd && Number(dd.textContent.replace(/[^0-9]/g, '')) > 0;
    }""", timeout=JOB_TIMEOUT_MS)
    shot(page, "progress-midway")
    assert page.locator("#progress").get_attribute("data-transport") == "sse"

    page.wait_for_url(re.compile(r"/journal$"), timeout=JOB_TIMEOUT_MS)
    elapsed = time.monotonic() - started
    page.wait_for_selector("span#listen-total")
    shot(page, "journal-after-import", full_page=False)
    assert int(page.locator("span#listen-total").get_attribute("data-total")) == VALID_ROWS

    states = page.recorder.on(progress_path)
    assert states, "the progress page reported nothing"
    assert {s["transport"] for s in states if s["transport"]} == {"sse"}
    assert any(f"/api/v1/jobs/{job_id}/events" in url for url in page.recorder.requests)

    running = [s for s in states if s["status"] == "running"]
    below_100 = sorted({s["value"] for s in running if s["value"] < 100})
    assert len(below_100) >= 2, f"the bar took too few values while running: {below_100}"
    values = [s["value"] for s in states]
    assert values == sorted(values), f"the bar went backwards: {values}"

    step_sets = [tuple(s["steps"]) for s in states]
    assert len(set(step_sets)) >= 2, f"the steps never changed: {step_sets[:3]}"
    assert any(step_statuses(s).get("save") == "in_progress" for s in running), step_sets
    final = states[-1]
    assert final["status"] == "completed" and final["value"] == 100
    assert set(step_statuses(final).values()) == {"completed"}, final["steps"]

    imported = [s["counters"].get("imported", 0) for s in states]
    assert len({n for n in imported if 0 < n < VALID_ROWS}) >= 2, f"imported never grew: {sorted(set(imported))}"
    assert imported == sorted(imported), "the imported counter went backwards"
    assert final["counters"]["imported"] == VALID_ROWS
    assert final["counters"].get("errors") == len(BAD_ROWS)

    snap = job_status(server, job_id)
    assert snap["status"] == "completed"
    assert snap["result"]["imported"] == VALID_ROWS and snap["result"]["errors"] == len(BAD_ROWS)
    print(f"\nbrowser import of {VALID_ROWS:,} rows: {elapsed:.1f}s from submit to journal, "
          f"{len(states)} states seen, bar values {below_100}")


def test_a_file_that_is_not_an_export_shows_the_error_and_stays(server_factory, page, tmp_path):
    server = server_factory(env=SERVER_ENV)
    notes = tmp_path / "notes.txt"
    notes.write_text("Things to listen to this week\n\nSomething by Radiohead; maybe the new Björk.\n"
                     "Ask Sam about that record shop. Call it a night.\n", encoding="utf-8")
    page.goto(server.url + "/settings")
    page.locator("input#files").set_input_files(str(notes))
    page.get_by_role("button", name="Import", exact=True).click()
    page.wait_for_url(re.compile(r"/progress/[0-9a-f]+$"))
    progress_path = urlpath(page.url)
    wait_ready(page)

    page.wait_for_function("() => document.getElementById('progress').dataset.status === 'error'")
    text = page.locator("#status-text").inner_text()
    assert re.search(r"not a (Last\.fm )?CSV", text, re.I), text
    assert "notes.txt" in text
    assert page.locator("#stat-status").inner_text() == "error"
    assert hidden(page, "#cancel-button") and hidden(page, "#result-link")
    assert hidden(page, "#resume-button")  # the same file would fail the same way: no resume
    assert step_statuses(page.recorder.on(progress_path)[-1])["read"] == "error"
    stays_on(page, progress_path)
    shot(page, "progress-not-an-export")

    assert journal_total(page, server) == 0
    assert requests.get(server.url + "/api/v1/listens", timeout=30).json().get("total", 0) == 0


def test_without_event_source_the_page_polls_and_still_follows(server_factory, page, medium_csv):
    server = server_factory(env=SERVER_ENV)
    page.add_init_script("delete window.EventSource;")
    job = api_upload(server, medium_csv.name, medium_csv.read_bytes())
    progress_path = job["progress_url"]
    page.goto(server.url + progress_path)
    wait_ready(page)
    assert page.evaluate("typeof window.EventSource") == "undefined"
    assert page.locator("#progress").get_attribute("data-transport") == "polling"

    page.wait_for_url(re.compile(r"/journal$"), timeout=JOB_TIMEOUT_MS)
    assert int(page.locator("span#listen-total").get_attribute("data-total")) == POLLED_ROWS

    states = page.recorder.on(progress_path)
    assert states[0]["status"] in ("queued", "running"), "the job ended before the page loaded: use a larger file"
    assert {s["transport"] for s in states if s["transport"]} == {"polling"}
    assert states[-1]["status"] == "completed"
    assert len({s["value"] for s in states}) >= 2, "polling rendered no new state"
    assert not any("/events" in url for url in page.recorder.requests)
    assert any(url.endswith(job["status_url"]) for url in page.recorder.requests)


def test_the_page_of_a_finished_job_shows_it_and_stays(server_factory, page):
    server = server_factory(env=SERVER_ENV)
    content = (FIXTURES / "lastfm_simple.csv").read_bytes()
    job = api_upload(server, "lastfm_simple.csv", content)
    snap = wait_job(server, job["job_id"])
    assert snap["status"] == "completed", snap["message"]

    page.goto(server.url + job["progress_url"])
    wait_ready(page)
    root = page.locator("#progress")
    assert root.get_attribute("data-status") == "completed"
    assert page.locator("#bar").get_attribute("aria-valuenow") == "100"
    assert page.locator("#status-text").inner_text() == snap["message"]
    assert hidden(page, "#cancel-button") and hidden(page, "#resume-button")
    link = page.locator("#result-link")
    assert link.is_visible() and link.get_attribute("href") == "/journal"
    imported = page.locator('dd[data-counter="imported"]').inner_text()
    assert int(re.sub(r"\D", "", imported)) == snap["counters"]["imported"] > 0
    steps = page.locator("#steps > li.step")
    assert steps.count() == len(snap["steps"])
    for i in range(steps.count()):
        assert "step-completed" in steps.nth(i).get_attribute("class")
    stays_on(page, job["progress_url"])
    assert not any("/events" in url for url in page.recorder.requests), "a finished job needs no stream"
    shot(page, "progress-finished")
    assert journal_total(page, server) == snap["counters"]["imported"]


def test_hidden_controls_are_not_displayed(server_factory, page):
    server = server_factory(env=SERVER_ENV)
    job = api_upload(server, "lastfm_simple.csv", (FIXTURES / "lastfm_simple.csv").read_bytes())
    assert wait_job(server, job["job_id"])["status"] == "completed"
    page.goto(server.url + job["progress_url"])
    wait_ready(page)
    assert hidden(page, "#cancel-button") and hidden(page, "#resume-button")
    assert page.locator("#cancel-button").is_hidden(), "Cancel is shown on a finished job"
    assert page.locator("#resume-button").is_hidden(), "Resume is shown on a completed job"
