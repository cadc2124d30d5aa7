"""From an empty install to a finished Last.fm import, in a real browser, with no file edited and no
restart: the key is pasted into the settings page's form, a wrong one is refused with Last.fm's
answer, the right one is tested and saved, and the import started from the same page completes
against the Last.fm emulator (two gunicorn workers: whichever answers, the new key is used)."""
from __future__ import annotations

import pytest

from tests.browsing import needs_chromium
from tests.emulators.lastfm import LastfmEmulator
from tests.test_streams_server import http

pytestmark = needs_chromium
KEY, SECRET = "browser-key-a73f0c", "browser-secret-19d2e4"
LISTENS = 300
TIMEOUT_MS = 90_000


@pytest.fixture
def fm():
    with LastfmEmulator(api_key=KEY) as emulator:
        emulator.add_listens("rj", [{"uts": 1_550_000_000 + i * 90, "artist": f"Band {i % 5}",
                                     "title": f"Tune {i}", "album": "Record"} for i in range(LISTENS)])
        yield emulator


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


def test_from_an_empty_install_to_a_finished_lastfm_import(server_factory, page, fm):
    server = server_factory(workers=2, env={"LASTFM_API_URL": fm.url, "LASTFM_REQUESTS_PER_SECOND": "100",
                                            "LASTFM_API_KEY": "", "LASTFM_API_SECRET": "", "LASTFM_USERNAME": "",
                                            "TRACKER_AUTOSTART": "false"})
    files_before = sorted(p.name for p in server_factory.instance.iterdir())
    page.goto(server.url + "/settings")
    assert page.locator("#lastfm-missing").is_visible()

    page.fill("#setting-LASTFM_API_KEY", "not-the-key-0000")
    page.fill("#setting-LASTFM_API_SECRET", SECRET)
    page.fill("#setting-LASTFM_USERNAME", "rj")
    page.click("#connect-lastfm-save")
    result = page.locator("#connect-lastfm-result")
    page.wait_for_function("document.getElementById('connect-lastfm-result').textContent.includes('refused')")
    assert "Last.fm refused the API key" in result.text_content()
    assert page.locator("#connect-lastfm-anyway").is_visible()
    assert page.locator("#lastfm-missing").is_visible(), "a refused test saved nothing"

    page.fill("#setting-LASTFM_API_KEY", KEY)
    with page.expect_navigation():
        page.click("#connect-lastfm-save")
    page.wait_for_function("document.getElementById('connect-lastfm-result').textContent.includes('Saved')")
    assert f"{LISTENS}" in result.text_content() and "rj" in result.text_content()
    assert page.locator("#saved-LASTFM_API_KEY").is_visible()
    assert KEY not in page.content() and SECRET not in page.content()

    page.click("#lastfm-start")
    page.wait_for_function("document.getElementById('lastfm-progress').dataset.status === 'completed'",
                           timeout=TIMEOUT_MS)
    progress = http.get(server.url + "/api/v1/services/lastfm/import/progress", timeout=30).json()
    assert (progress["status"], progress["imported"]) == ("completed", LISTENS)
    assert page.locator("#lastfm-progress").get_by_role("link", name="See the result").is_visible()

    assert server.proc.poll() is None, "the same server, never restarted"
    files_after = sorted(p.name for p in server_factory.instance.iterdir())
    assert "config.json" not in files_after and set(files_after) - set(files_before) <= {"settings.key"}
    assert KEY not in server.log() and SECRET not in server.log()
