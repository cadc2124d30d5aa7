"""Every page as a person uses it, in a real browser (Debian chromium driven by Playwright) against
real gunicorn servers: one with data (a Last.fm CSV upload and a Discogs sync from the emulator) and
one empty.

- each page (journal, timeline, collection, album, settings, jobs, progress), with data and empty,
  in English and French: a screenshot in tests/artifacts/screenshots/<page>-<state>-<lang>.png, the
  `lang` attribute, French headings in French, no JavaScript error;
- at 360 px wide no page scrolls sideways;
- the footer's language switcher and the settings page's language form switch the pages;
- the keyboard: the skip link, the navigation and the main controls are reached with Tab, focus
  is visible, a connection test runs from the keyboard;
- the progress bar's aria-valuenow follows a real upload to 100, the live region speaks only on
  step changes and at the end, and the page moves on to the journal;
- the inline progress on the settings page follows a real Discogs sync to its end.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.browsing import needs_chromium
from tests.conftest import FIXTURES, Server
from tests.emulators.discogs import DiscogsEmulator

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
TIMEOUT_MS = 20_000
JOB_TIMEOUT = 60
FINAL = ("completed", "error", "cancelled", "interrupted")
PAGES = ("journal", "timeline", "collection", "album", "settings", "jobs", "progress")
# The page's main heading in each language (None: the page's own data, e.g. an album title).
HEADINGS = {
    "journal": ("Journal", "Journal"), "timeline": ("Timeline", "Chronologie"),
    "collection": ("Collection", "Collection"), "settings": ("Settings", "Réglages"), "jobs": ("Jobs", "Tâches"),
}
NAV = {"en": ["Journal", "Collection", "Timeline", "Jobs", "Settings"],
       "fr": ["Journal", "Collection", "Chronologie", "Tâches", "Réglages"]}

pytestmark = needs_chromium


def discogs_env(dc):
    return {"DISCOGS_API_URL": dc.url, "DISCOGS_TOKEN": "test-token", "DISCOGS_USERNAME": "",
            "DISCOGS_RETRY_BASE_SECONDS": "0.1", "TRACKER_AUTOSTART": "false", "IMPORT_BATCH_SIZE": "100"}


def wait_job(server, job_id):
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        snap = requests.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10).json()
        if snap["status"] in FINAL:
            return snap
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {JOB_TIMEOUT} s")


def start_server(tmp_path_factory, migrated_template, name, env):
    instance = tmp_path_factory.mktemp(name) / "instance"
    instance.mkdir()
    shutil.copy(migrated_template, instance / "sillon.db")
    return Server(instance, env=env)


@pytest.fixture(scope="module")
def dc():
    with DiscogsEmulator() as emulator:  # user "collector", token "test-token"
        for i in range(1, 7):
            emulator.add_item(9000 + i, title=f"Record {i}", artists=[f"Band {i}"], year=1970 + i)
        yield emulator


@pytest.fixture(scope="module")
def full(tmp_path_factory, migrated_template, dc):
    """A server with listens (upload), a collection (Discogs sync) and their finished jobs."""
    server = start_server(tmp_path_factory, migrated_template, "full", discogs_env(dc))
    try:
        content = (FIXTURES / "lastfm_simple.csv").read_bytes()
        r = requests.post(server.url + "/api/v1/imports", files={"files": ("lastfm_simple.csv", content, "text/csv")},
                          timeout=30)
        upload = r.json()
        assert wait_job(server, upload["job_id"])["status"] == "completed"
        r = requests.post(server.url + "/api/v1/services/discogs/sync", timeout=30)
        assert r.status_code == 202, r.text
        assert wait_job(server, r.json()["job_id"])["status"] == "completed"
        items = requests.get(server.url + "/api/v1/collection/albums", timeout=10).json()["items"]
        server.paths = {"album": f"/albums/{items[0]['album_id']}", "progress": upload["progress_url"]}
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def empty(tmp_path_factory, migrated_template, dc):
    """A server as a new person finds it, but for one album and one job that failed on its input
    (the album and progress pages need something to show)."""
    server = start_server(tmp_path_factory, migrated_template, "empty", discogs_env(dc))
    try:
        r = requests.post(server.url + "/api/v1/imports", files={"files": ("notes.txt", b"not an export\n", "text/csv")},
                          timeout=30)
        failed = r.json()
        assert wait_job(server, failed["job_id"])["status"] == "error"
        server.paths = {"progress": failed["progress_url"]}
        yield server
    finally:
        server.stop()


def new_page(browser, request, width=1100, height=900, lang=None, server=None):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    context.route("**/*", lambda r: r.continue_() if re.match(r"^https?://127\.0\.0\.1[:/]", r.request.url)
                  else r.abort())
    if lang:
        context.add_cookies([{"name": "lang", "value": lang, "url": server.url}])
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    request.addfinalizer(context.close)
    return page


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def path_of(server, name):
    return server.paths.get(name) or {"journal": "/journal", "timeline": "/timeline", "collection": "/collection",
                                      "settings": "/settings", "jobs": "/jobs", "album": None}[name]


def test_every_page_with_data_and_empty_in_english_and_french(browser, request, full, empty):
    seen = 0
    for state, server in (("data", full), ("empty", empty)):
        for lang in ("en", "fr"):
            page = new_page(browser, request, lang=lang, server=server)
            for name in PAGES:
                path = path_of(server, name)
                if path is None:
                    continue  # an empty server has no album
                response = page.goto(server.url + path)
                assert response.status == 200, (path, response.status)
                page.wait_for_load_state("load")
                assert page.locator("html").get_attribute("lang") == lang
                links = page.locator("header nav a").all_inner_texts()
                assert all(name in links for name in NAV[lang]), links
                if name in HEADINGS:
                    assert page.locator("h1").first.inner_text() == HEADINGS[name][lang == "fr"], (name, lang)
                unlabelled = page.evaluate("""() => Array.from(document.querySelectorAll(
                    'input:not([type=hidden]), select, textarea, button, a[href]'))
                    .filter((el) => el.offsetParent !== null)
                    .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                                      || (el.textContent || '').trim() || el.getAttribute('aria-labelledby')))
                    .map((el) => el.outerHTML.slice(0, 80))""")
                assert not unlabelled, f"{name} ({state}, {lang}) has controls without a name: {unlabelled}"
                shot(page, f"{name}-{state}-{lang}")
                seen += 1
            assert not page.errors, page.errors
    assert seen == 26
    # An empty page of a new person leads to the first import, in their language.
    page = new_page(browser, request, lang="fr", server=empty)
    page.goto(empty.url + "/journal")
    assert page.get_by_role("link", name="Connecter Last.fm et importer votre historique").is_visible()
    page.get_by_role("link", name=re.compile("^Envoyer un fichier d’export")).click()
    page.wait_for_url(re.compile(r"/settings#upload-card$"))
    assert page.locator("#upload-card h2").inner_text() == "Importer des fichiers d’export"


def test_french_journal_and_settings_are_in_french(browser, request, full):
    page = new_page(browser, request, lang="fr", server=full)
    page.goto(full.url + "/journal")
    text = page.locator("main").inner_text()
    assert re.search(r"\d+ écoutes", text) and "exporter en CSV" in text
    assert re.search(r"(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche) \d+ \w+ \d{4}", text), text[:300]
    page.goto(full.url + "/settings")
    text = page.locator("main").inner_text()
    for words in ("Connexions", "Tester la connexion", "Collection Discogs", "Synchroniser Discogs",
                  "Suivi en direct", "Importer des fichiers d’export"):
        assert words in text, words
    for words in ("Test connection", "Live tracker", "Import export files"):
        assert words not in text, words


def test_no_page_scrolls_sideways_at_360_px(browser, request, full, empty):
    for state, server in (("data", full), ("empty", empty)):
        for lang in ("en", "fr"):
            page = new_page(browser, request, width=360, height=740, lang=lang, server=server)
            for name in PAGES:
                path = path_of(server, name)
                if path is None:
                    continue
                page.goto(server.url + path)
                page.wait_for_load_state("load")
                sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
                wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
                    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
                    .slice(0, 4).map((el) => el.tagName + '#' + el.id + '.' + el.className)""")
                assert sizes[0] <= sizes[1], f"{name} ({state}, {lang}) scrolls sideways: {sizes} {wide}"
                # The whole navigation is on screen (it wraps, nothing hides off to the right).
                for box in page.locator("header nav a").evaluate_all("els => els.map(e => e.getBoundingClientRect().right)"):
                    assert box <= sizes[1], name
                if lang == "en":
                    shot(page, f"{name}-{state}-phone")


def test_the_footer_switcher_and_the_settings_form_change_the_language(browser, request, full):
    page = new_page(browser, request)
    page.goto(full.url + "/jobs?status=completed", wait_until="load")
    assert page.locator("h1").inner_text() == "Jobs"
    page.locator("footer").get_by_role("link", name="Français").click()
    page.wait_for_url(re.compile(r"/jobs\?status=completed$"))
    assert page.locator("html").get_attribute("lang") == "fr" and page.locator("h1").inner_text() == "Tâches"
    assert page.locator("footer a[aria-current]").inner_text() == "Français"
    page.goto(full.url + "/settings")
    page.locator("#display-language").select_option("en")
    page.get_by_role("button", name="Enregistrer la langue", exact=True).click()
    page.wait_for_url(re.compile(r"/settings$"))
    assert page.locator("html").get_attribute("lang") == "en" and page.locator("h1").inner_text() == "Settings"
    assert page.locator("#display-language").input_value() == "en"


def focused(page):
    return page.evaluate("""() => { const el = document.activeElement; const style = getComputedStyle(el);
        return {tag: el.tagName.toLowerCase(), id: el.id, text: (el.innerText || el.value || '').trim(),
                href: el.getAttribute('href'), outline: style.outlineStyle !== 'none' && style.outlineWidth !== '0px'}; }""")


def tab_through(page, count):
    seen = []
    for _ in range(count):
        page.keyboard.press("Tab")
        seen.append(focused(page))
    return seen


def test_the_keyboard_reaches_the_navigation_and_the_main_controls(browser, request, full):
    page = new_page(browser, request)
    page.goto(full.url + "/settings", wait_until="load")
    page.keyboard.press("Tab")
    first = focused(page)
    assert first["text"] == "Skip to content" and first["outline"], first
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    assert page.evaluate("document.activeElement.id") == "main"

    page.goto(full.url + "/settings", wait_until="load")
    seen = tab_through(page, 45)
    texts = [f["text"] for f in seen]
    for name in NAV["en"]:
        assert name in texts, (name, texts)
    ids = [f["id"] for f in seen]
    for control in ("service-discogs-test", "display-language", "discogs-limit", "discogs-start", "enrich-start",
                    "tracker-interval"):
        assert control in ids, (control, ids)
    in_page = [f for f in seen if f["tag"] != "body"]  # past the last control, focus leaves the page
    assert all(f["outline"] for f in in_page), [f for f in in_page if not f["outline"]]

    # A connection test run from the keyboard answers in the live region.
    page.goto(full.url + "/settings", wait_until="load")
    page.locator("#display-language").focus()
    for _ in range(10):
        if focused(page)["id"] == "service-discogs-test":
            break
        page.keyboard.press("Shift+Tab")
    assert focused(page)["id"] == "service-discogs-test"
    page.keyboard.press("Enter")
    page.wait_for_function("() => /collector/.test(document.getElementById('service-discogs-result').textContent)")
    assert page.locator("#service-discogs-result").get_attribute("aria-live") == "polite"

    # The jobs page: filters and each row's link.
    page.goto(full.url + "/jobs", wait_until="load")
    seen = tab_through(page, 14)
    ids = [f["id"] for f in seen]
    assert "filter-kind" in ids and "filter-status" in ids
    assert any((f["href"] or "").startswith("/progress/") for f in seen)
    page.goto(full.url + "/jobs", wait_until="load")
    page.locator("#filter-kind").focus()
    page.locator("#filter-kind").select_option("discogs_sync")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Show"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"kind=discogs_sync"))
    assert page.locator("#jobs-table tbody tr").count() == 1


RECORD_BAR = """
(() => {
  window.__bar = []; window.__announced = [];
  document.addEventListener("DOMContentLoaded", () => {
    const bar = document.getElementById("bar"), live = document.getElementById("announce");
    if (!bar) return;
    const note = () => window.__bar.push({now: Number(bar.getAttribute("aria-valuenow")),
                                          text: bar.getAttribute("aria-valuetext"),
                                          status: document.getElementById("progress").dataset.status || null});
    note();
    new MutationObserver(note).observe(bar, {attributes: true});
    new MutationObserver(() => window.__announced.push(live.textContent))
      .observe(live, {childList: true, characterData: true, subtree: true});
    window.addEventListener("pagehide", () => sessionStorage.setItem("bar", JSON.stringify(
      {bar: window.__bar, announced: window.__announced})));
  });
})();
"""


def test_the_progressbar_follows_a_real_upload_to_100_and_moves_on(browser, request, tmp_path, server_factory):
    server = server_factory(env={"IMPORT_BATCH_SIZE": "100"})
    rows = "".join(f"Artist {i % 97},Album {i % 13},Track {i},{1 + i % 28:02d} Jan 2015 {i % 24:02d}:{i % 60:02d}\n"
                   for i in range(30_000))
    export = tmp_path / "lastfm.csv"
    export.write_text(rows, encoding="utf-8")
    page = new_page(browser, request)
    page.add_init_script(RECORD_BAR)
    page.goto(server.url + "/settings", wait_until="load")
    page.locator("#files").set_input_files(str(export))
    page.locator("#upload-form button[type=submit]").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/progress/[0-9a-f]+$"))
    bar = page.locator("#bar")
    assert bar.get_attribute("role") == "progressbar"
    assert bar.get_attribute("aria-valuemin") == "0" and bar.get_attribute("aria-valuemax") == "100"
    page.wait_for_url(re.compile(r"/journal$"), timeout=JOB_TIMEOUT * 1000)
    recorded = page.evaluate("JSON.parse(sessionStorage.getItem('bar'))")
    values = [r["now"] for r in recorded["bar"]]
    assert values[-1] == 100 and recorded["bar"][-1]["status"] == "completed", recorded["bar"][-3:]
    assert len(set(values)) >= 3, f"the bar did not move on its way: {values}"
    assert values == sorted(values), values
    middle = [r for r in recorded["bar"] if 0 < r["now"] < 100 and " of " in (r["text"] or "")]
    assert middle and re.match(r"^\d+ % — [\d,]+ of [\d,]+$", middle[-1]["text"]), recorded["bar"][-5:]
    # Spoken: the steps (read, save, ...) and the end, not every one of the bar's changes.
    announced = [a for a in recorded["announced"] if a]
    assert announced and announced[-1].startswith("completed"), announced
    assert len(announced) < len(recorded["bar"]) and len(announced) <= 6, announced
    assert int(page.locator("#listen-total").get_attribute("data-total")) == 30_000
    assert not page.errors, page.errors


def test_the_settings_page_follows_a_discogs_sync_inline_to_its_end(browser, request, server_factory):
    with DiscogsEmulator() as shelf:
        for i in range(1, 251):
            shelf.add_item(5000 + i, title=f"LP {i}", artists=[f"Artist {i % 17}"], year=1960 + i % 60)
        shelf.latency = 0.05
        server = server_factory(env=discogs_env(shelf))
        page = new_page(browser, request)
        page.add_init_script("""(() => { window.__inline = [];
          document.addEventListener("DOMContentLoaded", () => {
            const box = document.getElementById("discogs-progress");
            new MutationObserver(() => {
              const bar = box.querySelector('[data-part="bar"]');
              if (bar) window.__inline.push({now: Number(bar.getAttribute("aria-valuenow")), status: box.dataset.status || null,
                                             text: bar.getAttribute("aria-valuetext")});
            }).observe(box, {subtree: true, attributes: true, childList: true});
          }); })();""")
        page.goto(server.url + "/settings", wait_until="load")
        page.evaluate("window.__sameDocument = true")
        page.get_by_role("button", name="Sync Discogs").click()
        page.wait_for_function("""() => ['completed', 'error'].includes(
            document.getElementById('discogs-progress').dataset.status)""", timeout=JOB_TIMEOUT * 1000)
        assert page.evaluate("window.__sameDocument") is True, "the settings page navigated away"
        states = page.evaluate("window.__inline")
        assert states[-1]["status"] == "completed" and states[-1]["now"] == 100, states[-3:]
        assert len({s["now"] for s in states}) >= 3, states
        assert page.locator("#discogs-progress dd[data-counter=added]").inner_text() == "250"
        assert page.locator('#discogs-progress [data-part="result-link"]').is_visible()
        # The connection card now knows the last success came from that job.
        page.reload(wait_until="load")
        assert "(a job)" in page.locator("#service-discogs").inner_text()
        assert not page.errors, page.errors
