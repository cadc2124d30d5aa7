"""The Discogs card and the collection pages in a real browser (headless Debian chromium driven by
Playwright) against a real gunicorn talking to the Discogs emulator (tests/emulators/discogs.py).

- a Discogs sync started on /settings is followed inline to its end, the page stays put;
- /collection then shows the grid (48 a page), search narrows it, the format, genre and decade
  filters and the sort work through the form, covers load from the emulator's image stand-in;
- a record leads to its album page: cover, the copies on the shelf (two copies of one release are
  two records and one album), and a description written by the person, shown as theirs;
- an empty shelf leads to the settings' Discogs card;
- at phone width (390 px) /settings (with the finished sync), /collection and album pages do not
  scroll sideways, even with very long names; a rate-limited Discogs is shown as waited for.

Every state the inline progress renders is reported to the test by a MutationObserver installed
before the page's own script, so fast changes are not missed between two looks from Python.
Requests to anything but 127.0.0.1 are aborted (the emulator's covers are on 127.0.0.1).
Screenshots go to tests/artifacts/ (gitignored).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.browsing import inline_recorder, needs_chromium, only_local
from tests.emulators.discogs import DiscogsEmulator, generate_items

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TIMEOUT_MS = 20_000       # one page action or expectation
JOB_TIMEOUT_MS = 30_000   # a whole sync of ~120 items (a second or two here)
FINAL = ("completed", "error", "cancelled", "interrupted")
ITEMS = 120
PAGE_SIZE = 48            # the collection page's grid
DUPLICATE_EVERY = 10      # items 9, 19, ...: a second copy of the release before them

pytestmark = needs_chromium

# Reports every distinct rendered state of the inline Discogs progress (div#discogs-progress) to
# window.__inlineState (a Playwright binding).
RECORDER = inline_recorder("discogs-progress")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def dc():
    with DiscogsEmulator() as emulator:  # user "collector", token "test-token"
        yield emulator


def discogs_env(dc, **overrides):
    return {"DISCOGS_API_URL": dc.url, "DISCOGS_TOKEN": "test-token", "DISCOGS_USERNAME": "",
            "DISCOGS_RETRY_BASE_SECONDS": "1", "TRACKER_AUTOSTART": "false", **overrides}


def open_page(browser, viewport):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    outside = only_local(context)
    page = context.new_page()
    page.console_lines, page.dialogs, page.states, page.outside = [], [], [], outside
    page.on("console", lambda msg: page.console_lines.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page.console_lines.append(f"pageerror: {exc}"))
    page.on("requestfailed", lambda req: page.console_lines.append(f"requestfailed: {req.url} {req.failure}"))

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
    assert not page.dialogs, f"the page opened dialogs: {page.dialogs}"
    assert not page.outside, f"the pages asked for something outside 127.0.0.1: {page.outside[:5]}"


@pytest.fixture
def page(browser, request):
    failures_before = request.session.testsfailed
    context, page = open_page(browser, {"width": 1100, "height": 900})
    yield page
    close_page(context, page, request, failures_before)


@pytest.fixture
def phone(browser, request):
    failures_before = request.session.testsfailed
    context, page = open_page(browser, {"width": 390, "height": 844})
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


def params(url):
    """The query's non-empty parameters (the form sends its empty fields too)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sync_in_page(page, server):
    """Open /settings, click "Sync Discogs" and wait for the inline progress's final state."""
    page.goto(server.url + "/settings")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads or navigates
    assert page.locator("#discogs-progress").is_hidden()
    page.locator("#discogs-sync-form").get_by_role("button", name="Sync Discogs").click()
    page.wait_for_function("""(FINAL) => {
        const box = document.getElementById('discogs-progress');
        return box && !box.hidden && FINAL.includes(box.dataset.status);
    }""", arg=list(FINAL), timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded or navigated"
    return page.states[-1]


def total_shown(page):
    return int(page.locator("span#collection-total").get_attribute("data-total"))


def titles(page):
    return page.locator("li.record .r-title").all_inner_texts()


def submit_filters(page, **fields):
    """Set the collection form's fields (q as text, the others as selects) and press "Show"."""
    form = page.locator("form.filters")
    for name, value in fields.items():
        if name == "q":
            form.locator("input[name=q]").fill(value)
        else:
            form.locator(f"select[name={name}]").select_option(value)
    with page.expect_navigation():
        form.get_by_role("button", name="Show").click()


def loaded(img):
    """Wait until an <img> has loaded (decoded with a size), and return its src."""
    img.scroll_into_view_if_needed()
    img.evaluate("""(el) => new Promise((resolve, reject) => {
        if (el.complete && el.naturalWidth > 0) return resolve();
        el.addEventListener('load', () => resolve(), {once: true});
        el.addEventListener('error', () => reject(new Error('image failed: ' + el.src)), {once: true});
    })""")
    assert img.evaluate("el => el.naturalWidth") > 0
    return img.get_attribute("src")


def no_horizontal_scroll(page):
    sizes = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
                                     client: document.documentElement.clientWidth})""")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                         (el.className ? '.' + String(el.className).replace(/ /g, '.') : ''))""")
    assert sizes["scroll"] <= sizes["client"] + 1, f"{page.url} scrolls sideways: {sizes}, too wide: {wide}"


def sync_by_api(server):
    r = requests.post(server.url + "/api/v1/services/discogs/sync", timeout=30)
    if r.status_code != 202:  # not an AssertionError: the strict xfail below expects only its own
        raise RuntimeError(f"POST sync: {r.status_code} {r.text}")
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state = requests.get(server.url + "/api/v1/services/discogs/sync/progress", timeout=30).json()
        if state["status"] in FINAL:
            return state
        time.sleep(0.2)
    raise RuntimeError(f"the sync did not end: {state}")


# What the shelf holds, from the same generated items the emulator serves.
def fmt(item):
    return item["formats"][0]["name"]


# ----------------------------------------------------------------------------- tests
def test_sync_inline_then_grid_search_filters_sort_and_album_page(server_factory, dc, page):
    items = generate_items(ITEMS, duplicate_every=DUPLICATE_EVERY, image_base=dc.image_base)
    dc.add_items(items)
    dc.latency = 0.3  # 5 calls (identity, profile, folders, 2 pages): the run lasts long enough to be seen
    server = server_factory(env=discogs_env(dc))

    final = sync_in_page(page, server)
    shot(page, "settings-discogs-sync-done", full_page=False)
    states = [s for s in page.states if s["url"] == "/settings" and not s["hidden"] and s["value"] is not None]
    assert states, "the inline progress never showed"
    assert final["status"] == "completed", final
    assert final["value"] == 100
    assert final["counters"].get("added") == ITEMS and final["counters"].get("skipped") == 0, final
    assert f"Added {ITEMS:,} new items" in final["text"], final["text"]
    assert any(s["status"] in ("queued", "running") for s in states), "never seen running"
    values = [s["value"] for s in states]
    assert values == sorted(values), f"the bar went backwards: {values}"
    added = [s["counters"].get("added", 0) for s in states]
    assert added == sorted(added), f"the added counter went backwards: {added}"
    assert {s["transport"] for s in states if s["transport"]} == {"sse"}
    # Inline: still on /settings (the progress page itself would move on to /collection).
    page.wait_for_timeout(1000)
    assert urlpath(page.url) == "/settings" and page.evaluate("window.__sameDocument") is True
    box = page.locator("#discogs-progress")
    assert box.is_visible()
    assert box.locator('[data-part="cancel-button"]').is_hidden()
    assert box.get_by_role("link", name="See the result").get_attribute("href") == "/collection"
    assert re.fullmatch(r"/progress/[0-9a-f]+", box.get_by_role("link", name="Full progress page").get_attribute("href"))
    assert page.locator("#discogs-error").is_hidden()
    calls = [r.path for r in dc.requests if not r.path.startswith("/images/")]
    assert len(calls) == 5, calls  # identity, profile, folder list, 2 pages of 100: nothing per item

    # The grid: newest first, 48 a page, covers from the emulator.
    page.goto(server.url + "/collection")
    assert total_shown(page) == ITEMS
    assert page.locator("li.record").count() == PAGE_SIZE
    assert f"of {ITEMS} records" in page.locator("p.summary").inner_text()
    assert "Page 1 of 3" in page.locator("nav.pager").inner_text()
    newest = items[-1]
    assert titles(page)[0] == newest["title"]
    first_cover = page.locator("li.record img").first
    assert loaded(first_cover) == newest["cover_image"]
    assert first_cover.get_attribute("src").startswith(dc.image_base)
    shot(page, "collection-grid", full_page=False)
    page.locator("nav.pager a[rel=next]").click()
    page.wait_for_url(re.compile(r"/collection\?.*page=2"))
    assert page.locator("li.record").count() == PAGE_SIZE

    # Search: a title held twice (two copies of one release), both linking to one album.
    page.goto(server.url + "/collection")
    twice = items[DUPLICATE_EVERY - 1]  # item 9: the second copy of item 8's release
    assert twice["title"] == items[DUPLICATE_EVERY - 2]["title"]
    submit_filters(page, q=twice["title"])
    assert params(page.url) == {"q": twice["title"], "sort": "added"}, page.url
    assert total_shown(page) == 2
    assert titles(page) == [twice["title"]] * 2
    hrefs = page.locator("li.record a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert len(set(hrefs)) == 1 and re.fullmatch(r"/albums/\d+", hrefs[0]), hrefs
    album_href = hrefs[0]
    assert page.locator("input[name=q]").input_value() == twice["title"]
    page.get_by_role("link", name="Clear").click()
    page.wait_for_url(re.compile(r"/collection$"))
    assert total_shown(page) == ITEMS

    # Format, genre, decade: each through the form, against what the emulator holds.
    submit_filters(page, format="CD")
    assert params(page.url) == {"format": "CD", "sort": "added"}, page.url
    assert total_shown(page) == sum(1 for i in items if fmt(i) == "CD") > 0
    metas = page.locator("li.record .r-meta").all_inner_texts()
    assert metas and all("CD" in m and "Vinyl" not in m for m in metas), metas
    submit_filters(page, format="", genre="Jazz")
    assert params(page.url) == {"genre": "Jazz", "sort": "added"}, page.url
    jazz = [i for i in items if "Jazz" in i["genres"] or "Jazz" in i["styles"]]
    assert total_shown(page) == len(jazz) > 0
    assert set(titles(page)) == {i["title"] for i in jazz}
    submit_filters(page, genre="", decade="1970")
    seventies = [i for i in items if 1970 <= i["year"] < 1980]
    assert params(page.url) == {"decade": "1970", "sort": "added"}, page.url
    assert total_shown(page) == len(seventies) > 0
    years = [int(m.split()[0]) for m in page.locator("li.record .r-meta").all_inner_texts()]
    assert years and all(1970 <= y < 1980 for y in years), years
    assert page.locator("select[name=decade] option:checked").inner_text() == "1970s"

    # Sort by title (ascending), on the whole shelf.
    submit_filters(page, decade="", sort="title")
    assert params(page.url) == {"sort": "title"}, page.url
    assert total_shown(page) == ITEMS
    shown = titles(page)
    expected = sorted(i["title"] for i in items)[:PAGE_SIZE]
    assert shown == expected, shown[:6]
    shot(page, "collection-sorted-by-title", full_page=False)

    # The album page: cover, two copies on the shelf, no listens yet.
    page.goto(server.url + "/collection?q=" + twice["title"].replace(" ", "+"))
    page.locator("li.record a").first.click()
    page.wait_for_url(re.compile(re.escape(album_href) + "$"))
    assert page.locator("h1").inner_text() == twice["title"]
    assert page.locator("p.album-artist").inner_text() == twice["artists"][0]
    cover = page.locator("img.album-cover")
    assert loaded(cover) == twice["cover_image"]
    head = page.locator(".album-head").inner_text()
    assert "2 copies on your shelf" in head, head
    shelf = page.locator("section[aria-labelledby=copies-title] li")
    assert shelf.count() == 2
    label = twice["labels"][0]
    for text in shelf.all_inner_texts():
        assert str(twice["year"]) in text and fmt(twice) in text, text
        assert f"{label['name']} {label['catno']}" in text, text
        assert "added 2020-01-01" in text, text
    assert page.locator("#album-listen-count").get_attribute("data-count") == "0"
    assert page.locator("#album-description").count() == 0

    # "Edit the description": saved, then shown as the person's, as text.
    description = "First paragraph, by me.\n\nSecond one, with <b>markup</b> kept as text."
    page.get_by_text("Edit the description").click()
    page.locator("textarea#description").fill(description)
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert urlpath(page.url) == album_href
    shown = page.locator("#album-description")
    for paragraph in description.split("\n\n"):
        assert paragraph in shown.inner_text(), shown.inner_text()
    assert page.locator("#album-description b").count() == 0
    assert "Written by you." in page.locator("section[aria-labelledby=desc-title]").inner_text()
    page.reload()
    for paragraph in description.split("\n\n"):
        assert paragraph in page.locator("#album-description").inner_text()
    assert page.locator("textarea#description").input_value() == description
    shot(page, "album-with-own-description")


def test_empty_collection_leads_to_settings(server_factory, dc, page):
    server = server_factory(env=discogs_env(dc))
    page.goto(server.url + "/collection")
    empty = page.locator("section.empty")
    assert empty.is_visible()
    assert page.locator("#collection-grid").count() == 0 and page.locator("form.filters").count() == 0
    link = empty.get_by_role("link", name="Sync my Discogs collection")
    assert link.get_attribute("href") == "/settings#discogs-card"
    shot(page, "collection-empty", full_page=False)
    link.click()
    page.wait_for_url(re.compile(r"/settings#discogs-card$"))
    card = page.locator("#discogs-card")
    assert card.is_visible()
    assert card.get_by_role("button", name="Sync Discogs").is_visible()
    assert page.locator("#discogs-missing").count() == 0
    in_view = card.evaluate("el => { const r = el.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; }")
    assert in_view, "the Discogs card is not scrolled into view"
    assert dc.count() == 0, "opening the pages called Discogs"


LONG_ARTIST = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch"
LONG_TITLE = "Taumatawhakatangihangakoauauotamateaturipukakapikimaungahoronukupokaiwhenuakitanatahu"
LONG_ITEM = {"release_id": 9_000_001, "title": LONG_TITLE, "artists": [LONG_ARTIST], "year": 1999,
             "labels": [{"name": "A Label With A Rather Long Name Indeed", "catno": "CATNO-0123456789-ABCDEFGHIJ"}],
             "genres": ["Folk, World, & Country"], "date_added": "2020-02-01T12:00:00-08:00"}


def test_phone_width_settings_collection_and_album_do_not_scroll_sideways(server_factory, dc, phone):
    items = generate_items(ITEMS, duplicate_every=DUPLICATE_EVERY, image_base=dc.image_base)
    dc.add_items(items)
    dc.add_item(**LONG_ITEM, cover_image=f"{dc.image_base}/long.jpg")
    # The first call is refused once: the card says it waits for Discogs, then goes on.
    dc.fail_next(1, 429, path_prefix="/oauth/identity")
    server = server_factory(env=discogs_env(dc))

    final = sync_in_page(phone, server)
    assert final["status"] == "completed", final
    assert final["counters"].get("added") == ITEMS + 1, final
    waiting = [s["text"] for s in phone.states if re.search(r"Discogs: .*, waiting \d", s["text"], re.I)]
    assert waiting, f"the wait for Discogs was never shown: {[s['text'] for s in phone.states]}"
    no_horizontal_scroll(phone)
    shot(phone, "settings-discogs-phone")

    phone.goto(server.url + "/collection")
    assert total_shown(phone) == ITEMS + 1
    assert titles(phone)[0] == LONG_TITLE  # the newest, its name wrapped in the grid
    no_horizontal_scroll(phone)
    shot(phone, "collection-phone", full_page=False)
    phone.goto(server.url + "/collection?genre=Jazz&sort=year")
    no_horizontal_scroll(phone)

    # An album page (two copies of one release), with the description form open.
    phone.goto(server.url + "/collection?q=" + items[DUPLICATE_EVERY - 1]["title"].replace(" ", "+"))
    phone.locator("li.record a").first.click()
    phone.wait_for_url(re.compile(r"/albums/\d+$"))
    assert "2 copies on your shelf" in phone.locator(".album-head").inner_text()
    loaded(phone.locator("img.album-cover"))
    phone.get_by_text("Edit the description").click()
    no_horizontal_scroll(phone)
    shot(phone, "album-phone")


# ----------------------------------------------------------------------------- known bugs (strict xfail)
@pytest.fixture(scope="module")
def small_shelf(tmp_path_factory, migrated_template):
    """One gunicorn for the known-bug tests: a shelf of one generated record and one with long names."""
    import shutil

    from tests.conftest import Server

    instance = tmp_path_factory.mktemp("small-shelf")
    shutil.copy(migrated_template, instance / "sillon.db")
    with DiscogsEmulator() as emulator:
        emulator.add_items(generate_items(1, image_base=emulator.image_base))
        emulator.add_item(**LONG_ITEM, cover_image=f"{emulator.image_base}/long.jpg")
        server = Server(instance, env=discogs_env(emulator))
        try:
            state = sync_by_api(server)
            if state["added"] != 2:
                raise RuntimeError(f"the sync did not add the 2 records: {state}")
            yield server
        finally:
            server.stop()


def open_album(page, server, title):
    page.goto(server.url + "/collection?q=" + title.replace(" ", "+"))
    page.locator("li.record a").first.click()
    page.wait_for_url(re.compile(r"/albums/\d+$"))


def test_paragraphs_of_a_description_typed_in_the_browser_are_kept(small_shelf, page):
    open_album(page, small_shelf, "Album 00000")
    page.get_by_text("Edit the description").click()
    page.locator("textarea#description").fill("One.\n\nTwo.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert page.locator("#album-description p").all_inner_texts() == ["One.", "Two."]


def test_phone_width_album_page_with_long_names_does_not_scroll_sideways(small_shelf, phone):
    open_album(phone, small_shelf, LONG_TITLE)
    assert phone.locator("h1").inner_text() == LONG_TITLE
    shot(phone, "album-phone-long-names")
    no_horizontal_scroll(phone)
