"""The settings, journal and timeline pages in a real browser (headless Debian chromium driven by
Playwright) against a real gunicorn talking to the Last.fm emulator (tests/emulators/lastfm.py).

- a Last.fm import started on /settings is followed inline, the page stays put, and the journal and
  the timeline then show what was imported;
- without Last.fm settings the card names what is missing and offers no import;
- a refused API key shows Last.fm's complaint and starts no job;
- the live tracker card starts, shows the track playing now and the last listen, stops, and
  checks its interval;
- the journal's artist filter narrows the list and survives paging; covers are shown; names made
  of HTML stay text;
- at phone width the settings and journal pages do not scroll sideways.

Every state the inline progress renders is reported to the test by a MutationObserver installed
before the page's own script, so fast changes are not missed between two looks from Python.
Requests to anything but 127.0.0.1 are aborted (album covers point at Last.fm's CDN).
Screenshots go to tests/artifacts/ (gitignored).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.browsing import inline_recorder, needs_chromium, only_local
from tests.emulators.lastfm import LastfmEmulator, generate_listens

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 30_000       # one page action or expectation
JOB_TIMEOUT_MS = 60_000   # a whole Last.fm import (a few seconds here)
TRACKER_WAIT_MS = 7_000   # the tracker card refreshes itself every 5 s (plus the first poll)
FINAL = ("completed", "error", "cancelled", "interrupted")
XSS = "<img src=x onerror=alert(1)>"
XSS_TITLE = "<script>alert(2)</script>"

pytestmark = needs_chromium

# Reports every distinct rendered state of the inline Last.fm progress (div#lastfm-progress) to
# window.__inlineState (a Playwright binding).
RECORDER = inline_recorder("lastfm-progress")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def fm():
    with LastfmEmulator() as emulator:  # user "rj", api key "test-key"
        yield emulator


def lastfm_env(fm, **overrides):
    env = {"LASTFM_API_URL": fm.url, "LASTFM_API_KEY": "test-key", "LASTFM_API_SECRET": "s",
           "LASTFM_USERNAME": "rj", "LASTFM_REQUESTS_PER_SECOND": "100"}
    return {**env, **overrides}


def open_page(browser, request, viewport):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    # Hermetic: album covers point at Last.fm's CDN; only the local server is reachable.
    outside = only_local(context)
    page = context.new_page()
    page.console_lines, page.dialogs, page.states, page.outside, page.requested = [], [], [], outside, []
    page.on("request", lambda req: page.requested.append(req.url))
    page.on("console", lambda msg: page.console_lines.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page.console_lines.append(f"pageerror: {exc}"))

    def on_dialog(dialog):
        page.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()
    page.on("dialog", on_dialog)
    page.expose_function("__inlineState", lambda state: page.states.append(state))
    page.add_init_script(RECORDER)
    return context, page


def close_page(context, page, request, failures_before):
    if request.session.testsfailed > failures_before:
        shot(page, f"{request.node.name}-failure")
        print("browser console:", *page.console_lines, sep="\n  ")
        print("inline progress states:", *page.states[-5:], sep="\n  ")
    context.close()
    errors = [line for line in page.console_lines if line.startswith("pageerror")]
    assert not errors, f"JavaScript errors on the pages: {errors}"
    assert not page.dialogs, f"the page opened dialogs (injected script ran?): {page.dialogs}"


@pytest.fixture
def page(browser, request):
    failures_before = request.session.testsfailed
    context, page = open_page(browser, request, {"width": 1100, "height": 900})
    yield page
    close_page(context, page, request, failures_before)


@pytest.fixture
def phone(browser, request):
    failures_before = request.session.testsfailed
    context, page = open_page(browser, request, {"width": 390, "height": 844})
    yield page
    close_page(context, page, request, failures_before)


# ----------------------------------------------------------------------------- helpers
def shot(page, name, full_page=True):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=full_page)
    except Exception as exc:  # noqa: BLE001 - a screenshot must not hide the real failure
        print(f"screenshot {name} failed: {exc}")
    return path


def urlpath(url):
    return re.sub(r"^https?://[^/]+", "", url).split("?")[0]


def api_jobs(server):
    r = requests.get(server.url + "/api/v1/jobs", timeout=30)
    r.raise_for_status()
    return r.json()["items"]


def start_import_in_page(page, server, limit=""):
    """Open /settings, start a Last.fm import from the card and wait for its final inline state.
    Returns the final state (as the recorder saw it)."""
    page.goto(server.url + "/settings")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads or navigates
    page.locator("#lastfm-limit").fill(str(limit))
    page.get_by_role("button", name="Start Last.fm import").click()
    page.wait_for_function("""(FINAL) => {
        const box = document.getElementById('lastfm-progress');
        return box && !box.hidden && FINAL.includes(box.dataset.status);
    }""", arg=list(FINAL), timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded or navigated"
    return page.states[-1]


def journal_total(page, server, query=""):
    page.goto(server.url + "/journal" + query)
    total = page.locator("span#listen-total")
    if total.count() == 0:
        return 0
    return int(total.get_attribute("data-total"))


def no_horizontal_scroll(page):
    sizes = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
                                     client: document.documentElement.clientWidth})""")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                         (el.className ? '.' + String(el.className).replace(/ /g, '.') : ''))""")
    assert sizes["scroll"] <= sizes["client"] + 1, f"{page.url} scrolls sideways: {sizes}, too wide: {wide}"


def cover_url(artist, album):
    """The cover the emulator gives an album of generate_listens (the largest size, as stored)."""
    import hashlib

    digest = hashlib.md5(f"{artist}|{album}".encode()).hexdigest()
    return f"https://lastfm.freetls.fastly.net/i/u/300x300/{digest}.jpg"


# ----------------------------------------------------------------------------- tests
LISTENS = 6_000


def test_lastfm_import_is_followed_inline_then_journal_and_timeline(server_factory, page, fm):
    # One listen every 6 hours: about four years, so the timeline has many monthly bars.
    fm.add_listens("rj", generate_listens(LISTENS, start_uts=1_500_000_000, step_seconds=6 * 3600))
    fm.latency = 0.05
    server = server_factory(env=lastfm_env(fm))

    started = time.monotonic()
    final = start_import_in_page(page, server, limit="")
    elapsed = time.monotonic() - started
    shot(page, "settings-lastfm-import-done", full_page=False)

    states = [s for s in page.states if s["url"] == "/settings" and not s["hidden"] and s["value"] is not None]
    assert states, "the inline progress never showed"
    assert final["status"] == "completed", final
    assert final["value"] == 100
    assert re.search(r"\bimported\b", final["text"], re.I), final["text"]
    assert f"{LISTENS:,}" in final["text"], final["text"]

    running = [s for s in states if s["status"] in ("queued", "running")]
    below_100 = sorted({s["value"] for s in running if s["value"] < 100})
    assert len(below_100) >= 2, f"the bar took too few values while running: {below_100}"
    values = [s["value"] for s in states]
    assert values == sorted(values), f"the bar went backwards: {values}"
    imported = [s["counters"].get("imported", 0) for s in states]
    assert len({n for n in imported if 0 < n < LISTENS}) >= 2, f"imported never grew: {sorted(set(imported))}"
    assert imported == sorted(imported), "the imported counter went backwards"
    assert final["counters"]["imported"] == LISTENS
    assert {s["transport"] for s in states if s["transport"]} == {"sse"}

    # Inline: still on /settings (the progress page would move to the journal after 0.6 s).
    page.wait_for_timeout(1500)
    assert urlpath(page.url) == "/settings"
    assert page.evaluate("window.__sameDocument") is True
    box = page.locator("#lastfm-progress")
    assert box.is_visible()
    assert box.locator('[data-part="bar"]').get_attribute("aria-valuenow") == "100"
    assert box.locator('[data-part="cancel-button"]').is_hidden()
    filled = box.evaluate("""(box) => box.querySelector('[data-part="bar-fill"]').getBoundingClientRect().width /
                                      box.querySelector('[data-part="bar"]').getBoundingClientRect().width""")
    assert filled > 0.99, f"the bar is drawn {filled:.0%} full"
    assert box.get_by_role("link", name="See the result").get_attribute("href") == "/journal"
    assert page.locator("#lastfm-error").is_hidden()
    jobs = api_jobs(server)
    assert [j["kind"] for j in jobs] == ["lastfm_history"], jobs
    full = box.get_by_role("link", name="Full progress page")
    assert full.get_attribute("href") == f"/progress/{jobs[0]['id']}"
    assert re.fullmatch(r"/progress/[0-9a-f]+", full.get_attribute("href"))

    assert journal_total(page, server) == LISTENS
    shot(page, "journal-after-lastfm-import", full_page=False)
    page.goto(server.url + "/timeline")
    bars = page.locator("div.bar-col")
    assert bars.count() > 1
    assert int(page.locator("span#timeline-total").get_attribute("data-total")) == LISTENS
    assert sum(int(c) for c in bars.evaluate_all("els => els.map(e => e.dataset.count)")) == LISTENS
    shot(page, "timeline-after-lastfm-import", full_page=False)
    print(f"\nLast.fm import of {LISTENS:,} listens in the browser: {elapsed:.1f}s from click to the final state, "
          f"{len(states)} states seen, bar values {below_100}")


def test_without_lastfm_settings_the_card_says_what_is_missing(server_factory, page):
    # Empty values count as missing, whatever the developer's environment holds.
    server = server_factory(env={"LASTFM_API_KEY": "", "LASTFM_API_SECRET": "", "LASTFM_USERNAME": ""})
    page.goto(server.url + "/settings")
    missing = page.locator("#lastfm-missing")
    assert missing.is_visible()
    text = missing.inner_text()
    for name in ("LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME"):
        assert name in text, text
    assert page.locator("#lastfm-import-form").count() == 0
    assert page.get_by_role("button", name="Start Last.fm import").count() == 0
    assert page.locator("#lastfm-progress").is_hidden()
    assert page.locator("#tracker-start").is_disabled()
    shot(page, "settings-lastfm-not-configured")


def test_a_refused_api_key_shows_the_error_and_starts_nothing(server_factory, page, fm):
    fm.add_listens("rj", generate_listens(50, start_uts=1_600_000_000))
    server = server_factory(env=lastfm_env(fm, LASTFM_API_KEY="wrong"))
    page.goto(server.url + "/settings")
    page.get_by_role("button", name="Start Last.fm import").click()
    error = page.locator("#lastfm-error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert re.search(r"API key", text), text
    assert page.locator("#lastfm-progress").is_hidden()
    assert page.locator("#lastfm-start").is_enabled()
    assert urlpath(page.url) == "/settings"
    assert api_jobs(server) == []
    assert any(r.params.get("api_key") == "wrong" for r in fm.requests), "the server never asked Last.fm"
    shot(page, "settings-lastfm-wrong-key", full_page=False)


def test_the_tracker_card_starts_shows_and_stops(server_factory, page, fm):
    now = int(time.time())
    fm.add_listens("rj", [
        {"uts": now - 3000, "artist": "Portishead", "title": "Roads", "album": "Dummy"},
        {"uts": now - 2000, "artist": "Massive Attack", "title": "Teardrop", "album": "Mezzanine"},
        {"uts": now - 1000, "artist": "Björk", "title": "Jóga", "album": "Homogenic"},
    ])
    fm.set_now_playing("rj", {"artist": "Sigur Rós", "title": "Hoppípolla", "album": "Takk…"})
    server = server_factory(env=lastfm_env(fm))
    page.goto(server.url + "/settings")
    state = page.locator("#tracker-running")
    assert state.inner_text() == "stopped"
    assert page.locator("#tracker-now-playing").inner_text() == "–"

    clicked = time.monotonic()
    page.locator("#tracker-start").click()
    page.wait_for_function("""() =>
        document.getElementById('tracker-running').textContent === 'running' &&
        document.getElementById('tracker-now-playing').textContent === 'Sigur Rós — Hoppípolla' &&
        document.getElementById('tracker-last-track').textContent === 'Björk — Jóga'""",
                           timeout=TRACKER_WAIT_MS)
    shown_after = time.monotonic() - clicked
    assert page.locator("#tracker-start").is_hidden() and page.locator("#tracker-stop").is_visible()
    assert page.locator("#tracker-last-poll").inner_text() != "–"
    assert page.locator("#tracker-last-error").inner_text() == "–"
    shot(page, "settings-tracker-running", full_page=False)

    page.locator("#tracker-stop").click()
    page.wait_for_function("() => document.getElementById('tracker-running').textContent === 'stopped'",
                           timeout=TRACKER_WAIT_MS)
    assert page.locator("#tracker-start").is_visible() and page.locator("#tracker-stop").is_hidden()
    assert requests.get(server.url + "/api/v1/services/tracker/status", timeout=30).json()["running"] is False

    # 5 s is under the minimum: the browser's own check stops it (min="10"), nothing is sent...
    interval = page.locator("#tracker-interval")
    sent = []
    page.on("request", lambda req: sent.append(req.url) if "/tracker/interval" in req.url else None)
    interval.fill("5")
    page.get_by_role("button", name="Save interval").click()
    assert interval.evaluate("el => el.validity.rangeUnderflow")
    assert "10" in interval.evaluate("el => el.validationMessage")
    page.wait_for_timeout(300)
    assert sent == []
    # ...and without that check (an older browser, or the attribute gone) the server's message shows.
    interval.evaluate("el => el.removeAttribute('min')")
    interval.fill("5")
    page.get_by_role("button", name="Save interval").click()
    message = page.locator("#tracker-message")
    page.wait_for_function("() => /from 10 to/.test(document.getElementById('tracker-message').textContent)")
    assert len(sent) == 1
    assert requests.get(server.url + "/api/v1/services/tracker/status", timeout=30).json()["interval_seconds"] != 5

    interval.fill("30")
    page.get_by_role("button", name="Save interval").click()
    page.wait_for_function("() => /saved/i.test(document.getElementById('tracker-message').textContent)")
    assert "30" in message.inner_text()
    assert requests.get(server.url + "/api/v1/services/tracker/status", timeout=30).json()["interval_seconds"] == 30
    page.reload()
    assert page.locator("#tracker-interval").input_value() == "30"
    print(f"\ntracker card showed the poll {shown_after:.1f}s after the click")


def test_journal_filters_covers_and_names_made_of_html(server_factory, page, fm):
    # 5 artists, 240 listens each, an hour apart; three older listens named with HTML, no cover.
    fm.add_listens("rj", generate_listens(1200, start_uts=1_600_000_000, step_seconds=3600, artists=5))
    fm.add_listens("rj", [{"uts": 1_599_990_000 + i, "artist": XSS, "title": f"{XSS_TITLE} {i}", "album": XSS}
                          for i in range(3)])
    server = server_factory(env=lastfm_env(fm))
    # Oldest first: a limit of 1,000 takes the 3 HTML listens and the 997 oldest generated ones.
    final = start_import_in_page(page, server, limit=1000)
    assert final["status"] == "completed", final
    assert final["counters"]["imported"] == 1000

    assert journal_total(page, server) == 1000
    covers = page.locator("img.cover")
    assert covers.count() > 0
    first = page.locator("ol.listens > li").first
    artist, album = first.locator(".artist").inner_text(), first.locator(".album").inner_text()
    assert first.locator("img.cover").get_attribute("src") == cover_url(artist, album)
    assert all(re.match(r"^https?://", src) for src in covers.evaluate_all("els => els.map(e => e.src)"))

    # The artist filter is a form GET, so the URL carries it. "Artist 03" made the generated
    # listens 3, 8, ..., 993 of the 997 imported: 199, two pages of 100.
    page.locator("input[name=artist]").fill("Artist 03")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/journal\?.*artist=Artist(\+|%20)03"))
    assert int(page.locator("span#listen-total").get_attribute("data-total")) == 199
    artists = set(page.locator("ol.listens .artist").all_inner_texts())
    assert artists == {"Artist 03"}, artists
    assert page.locator("ol.listens > li").count() == 100
    assert "Page 1 of 2" in page.locator("nav.pager").inner_text()
    older = page.locator("nav.pager a[rel=next]")
    assert "artist=Artist" in older.get_attribute("href")
    older.click()
    page.wait_for_url(re.compile(r"/journal\?.*page=2"))
    assert re.search(r"artist=Artist(\+|%20)03", page.url), page.url
    assert "Page 2 of 2" in page.locator("nav.pager").inner_text()
    assert set(page.locator("ol.listens .artist").all_inner_texts()) == {"Artist 03"}
    assert page.locator("ol.listens > li").count() == 99
    assert page.locator("input[name=artist]").input_value() == "Artist 03"
    newer = page.locator("nav.pager a[rel=prev]")
    assert "artist=Artist" in newer.get_attribute("href")
    shot(page, "journal-filtered-page-2", full_page=False)

    # Names made of HTML are text: no element from them, no dialog, the literal string shown.
    page.locator("input[name=artist]").fill("onerror")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"artist=onerror"))
    assert int(page.locator("span#listen-total").get_attribute("data-total")) == 3
    items = page.locator("ol.listens > li")
    assert items.count() == 3
    for i in range(3):
        item = items.nth(i)
        assert item.locator(".artist").text_content() == XSS
        assert item.locator(".album").text_content() == XSS
        assert item.locator(".title").text_content().startswith(XSS_TITLE)
        assert item.locator("img.cover").count() == 0 and item.locator("span.cover-none").count() == 1
    assert page.locator("main img:not(.cover), main script").count() == 0
    assert XSS in page.locator("main").text_content()
    assert page.get_by_role("link", name="Clear").count() == 1
    page.wait_for_timeout(300)  # an onerror would fire by now
    assert page.dialogs == [], page.dialogs
    shot(page, "journal-names-made-of-html", full_page=False)
    assert not [url for url in page.requested if urlpath(url) == "/x"], "an <img src=x> from a name was loaded"
    assert page.outside, "the covers were never requested (the route that blocks them is untested)"


def test_phone_width_has_no_horizontal_scroll(server_factory, phone, fm):
    fm.add_listens("rj", generate_listens(300, start_uts=1_600_000_000, step_seconds=3600, artists=7))
    fm.add_listens("rj", [{"uts": 1_600_000_000 + 400 * 3600, "artist": "Godspeed You! Black Emperor",
                           "title": "Storm: Lift Yr. Skinny Fists Like Antennas to Heaven",
                           "album": "Lift Your Skinny Fists Like Antennas to Heaven!"}])
    server = server_factory(env=lastfm_env(fm))
    final = start_import_in_page(phone, server)  # leaves the inline progress shown at its end
    assert final["status"] == "completed", final
    phone.evaluate("document.getElementById('tracker-message').textContent = 'Interval saved: every 30 s.'")
    no_horizontal_scroll(phone)
    shot(phone, "settings-phone")

    assert journal_total(phone, server) == 301
    no_horizontal_scroll(phone)
    shot(phone, "journal-phone", full_page=False)
    phone.goto(server.url + "/journal?artist=Artist+01&from=2020-01-01")
    no_horizontal_scroll(phone)


LONG_ARTIST = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
LONG_TITLE = "Taumatawhakatangihangakoauauotamateaturipukakapikimaungahoronukupokaiwhenuakitanatahu"


def test_phone_width_long_names_wrap(server_factory, phone, fm):
    fm.add_listens("rj", [{"uts": 1_600_000_000, "artist": LONG_ARTIST, "title": LONG_TITLE, "album": "Cymru"}])
    fm.set_now_playing("rj", {"artist": LONG_ARTIST, "title": LONG_TITLE})
    server = server_factory(env=lastfm_env(fm))
    final = start_import_in_page(phone, server)
    assert final["status"] == "completed" and final["counters"]["imported"] == 1, final
    phone.locator("#tracker-start").click()
    phone.wait_for_function("(t) => document.getElementById('tracker-now-playing').textContent.endsWith(t)",
                            arg=LONG_TITLE, timeout=TRACKER_WAIT_MS)
    phone.locator("#tracker-stop").click()
    phone.wait_for_function("() => document.getElementById('tracker-running').textContent === 'stopped'")
    phone.reload()  # the last listen stays shown once stopped
    assert phone.locator("#tracker-last-track").inner_text().endswith(LONG_TITLE)
    shot(phone, "settings-phone-long-names")
    phone.goto(server.url + "/journal")
    assert phone.locator("ol.listens .artist").inner_text() == LONG_ARTIST
    shot(phone, "journal-phone-long-names")
    no_horizontal_scroll(phone)
    phone.goto(server.url + "/settings")
    no_horizontal_scroll(phone)
