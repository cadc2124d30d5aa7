"""examples/convert: the seven-step converter, run by its one command, driven in a real browser
(Playwright with chromium: JOBPROGRESS_TEST_CHROMIUM, /usr/bin/chromium by default)."""
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "convert" / "app.py"
CHROMIUM = os.environ.get("JOBPROGRESS_TEST_CHROMIUM", "/usr/bin/chromium")

# Reports every distinct rendered state of the job's section to window.__state (so fast changes
# are not missed between two checks of the test).
RECORDER = """
(() => {
  let last = null;
  function report() {
    const box = document.getElementById("job");
    if (!box) return;
    const steps = [...box.querySelectorAll('[data-part="steps"] > li')].map((li) => ({
      id: li.dataset.stepId, status: li.className.replace("step step-", ""),
      subs: [...li.querySelectorAll(".substeps > li")].map((s) => s.className.replace("step step-", "")) }));
    const state = { status: box.dataset.status || null, transport: box.dataset.transport || null, steps: steps,
      errors: [...box.querySelectorAll('[data-part="errors"] li')].map((li) => li.textContent),
      counters: Object.fromEntries([...box.querySelectorAll("dd[data-counter]")].map((dd) => [dd.dataset.counter, dd.textContent])) };
    const key = JSON.stringify(state);
    if (key !== last) { last = key; window.__state(state); }
  }
  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("job");
    if (!box) return;
    report();
    new MutationObserver(report).observe(box, { subtree: true, childList: true, attributes: true, characterData: true });
  });
})();
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_example(tmp_path):
    servers = []

    def start(step_seconds=None):
        port = free_port()
        log = open(tmp_path / f"server-{port}.log", "w")
        proc = subprocess.Popen([sys.executable, str(EXAMPLE), str(port)], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **({"EXAMPLE_STEP_SECONDS": str(step_seconds)} if step_seconds else {})})
        servers.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()
            try:
                requests.get(url + "/", timeout=1)
                return url
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the example did not start"
                time.sleep(0.05)

    yield start
    for proc, log in servers:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def csv_files(tmp_path):
    good = tmp_path / "albums.csv"
    good.write_text("title,year\n" + "".join(f"Album {i},{1960 + i % 60}\n" for i in range(120)))
    bad = tmp_path / "singles.csv"
    bad.write_text("title,year\nOne,1971\nTwo,1972,extra\nThree,1973\n")
    return [good, bad]


def open_recorded(browser):
    page = browser.new_page()
    states = []
    page.expose_function("__state", lambda state: state["status"] and states.append(state))  # once mounted
    page.add_init_script(RECORDER)
    return page, states


def test_the_page_follows_the_seven_steps_and_goes_to_the_result(start_example, browser, tmp_path):
    url = start_example()  # the example's own pace (0.3 s a file a step), so each state is published
    page, states = open_recorded(browser)
    page.goto(url + "/")
    page.set_input_files('input[name="files"]', [str(p) for p in csv_files(tmp_path)])
    page.click("button")
    page.wait_for_url("**/results/*", timeout=60_000)
    assert page.text_content("#summary") == "122 rows converted, 1 bad rows left out."

    assert states and states[0]["transport"] == "sse"
    assert [s["id"] for s in states[0]["steps"]] == ["receive", "detect", "parse", "validate", "convert", "pack", "clean"]
    statuses = [s["status"] for s in states]
    assert "running" in statuses and statuses[-1] == "completed"
    # Substeps appear in the per-file steps while they run, one per file.
    assert any(step["id"] == "parse" and step["status"] == "in_progress" and "in_progress" in step["subs"]
               for state in states for step in state["steps"])
    assert any(step["id"] == "convert" and len(step["subs"]) == 2 for state in states for step in state["steps"])
    final = states[-1]
    assert all(step["status"] == "completed" for step in final["steps"])
    assert final["errors"] == ["singles.csv, line 3: the row has more or fewer fields than the header"]
    assert final["counters"] == {"errors": "1", "rows": "122"}
    # What the result page offers is the converted data.
    zip_path = tmp_path / "out.zip"
    zip_path.write_bytes(requests.get(page.url + "/download", timeout=10).content)
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ["albums.jsonl", "singles.jsonl"]
        assert archive.read("singles.jsonl").decode().splitlines() == [
            '{"title": "One", "year": "1971"}', '{"title": "Three", "year": "1973"}']


def test_cancel_stops_the_job_and_the_page_stays(start_example, browser, tmp_path):
    url = start_example(2.0)  # slow enough to press Cancel while it runs
    page, states = open_recorded(browser)
    page.goto(url + "/")
    page.set_input_files('input[name="files"]', [str(p) for p in csv_files(tmp_path)])
    page.click("button")
    page.wait_for_selector('#job[data-status="running"]', timeout=30_000)
    page.click('[data-part="cancel-button"]')
    page.wait_for_selector('#job[data-status="cancelled"]', timeout=30_000)
    assert "/results/" not in page.url
    assert page.text_content('[data-part="status-text"]') == "Stopped at your request: nothing was written"
    assert page.is_hidden('[data-part="cancel-button"]')
    job_id = page.url.rstrip("/").split("/")[-2]
    assert requests.get(f"{url}/jobs/{job_id}", timeout=5).json()["status"] == "cancelled"


def test_polling_takes_over_when_the_event_stream_is_refused(start_example, browser, tmp_path):
    url = start_example(0.05)
    page, states = open_recorded(browser)
    page.route("**/events", lambda route: route.abort())
    page.goto(url + "/")
    page.set_input_files('input[name="files"]', [str(p) for p in csv_files(tmp_path)])
    page.click("button")
    page.wait_for_url("**/results/*", timeout=60_000)
    assert any(s["transport"] == "polling" for s in states)
    assert states[-1]["status"] == "completed"
