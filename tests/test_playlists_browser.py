"""Playlists in a real browser (headless Debian chromium driven by Playwright) against a real gunicorn:

- with nothing imported, /playlists says so and a generator answers with the way to the import;
- with listens (written straight into the server's database), a playlist is generated from the form,
  renamed, reordered with the move buttons from the keyboard alone (the moved item's button keeps
  the focus), an item removed, a track added by searching the listens, each export link downloads
  a file that parses back, and deleting asks for confirmation first;
- a name made of HTML stays text (no dialog opens), and at phone width nothing scrolls sideways.

A screenshot of each state is saved to tests/artifacts/screenshots/playlists-*.png (gitignored).
Requests to anything but 127.0.0.1 are aborted.
"""
from __future__ import annotations

import csv
import io
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from modules.db import db
from tests.browsing import needs_chromium, only_local
from tests.conftest import make_app
from tests.test_playlists import Library

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
TIMEOUT_MS = 20_000
XSPF = "{http://xspf.org/ns/0/}"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = needs_chromium


def open_page(browser, viewport):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    outside = only_local(context)
    page = context.new_page()
    page.console_lines, page.dialogs, page.outside = [], [], outside
    page.on("pageerror", lambda exc: page.console_lines.append(f"pageerror: {exc}"))

    def on_dialog(dialog):
        page.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()
    page.on("dialog", on_dialog)
    return context, page


@pytest.fixture
def page(browser, request):
    failures_before = request.session.testsfailed
    context, page = open_page(browser, {"width": 1100, "height": 900})
    yield page
    if request.session.testsfailed > failures_before:
        shot(page, f"{request.node.name}-failure")
    context.close()
    assert not page.console_lines, page.console_lines
    assert not page.dialogs, f"the page opened dialogs (injected script ran?): {page.dialogs}"
    assert not page.outside, f"the pages asked for something outside 127.0.0.1: {page.outside[:5]}"


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"playlists-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def seed(instance, migrated_template):
    """Listens of the last hour, written into the server's own database (SQLite file or PostgreSQL)."""
    app = make_app(instance, migrated_template)
    now = int(time.time())
    with app.app_context():
        lib = Library()
        for n, title in enumerate(["One", "Two", "Three", "Four"]):
            for k in range(4 - n):  # One 4 plays, Two 3, Three 2, Four 1
                lib.listen("Band", title, now - 600 - 60 * k - n, "LP")
        lib.listen("Soloist", "Encore", now - 4000, "Live")
        lib.done()
        db.engine.dispose()


def navigates(page, action):
    """Do `action` (a click, a key press) and wait for the page it leads to."""
    with page.expect_navigation():
        action()


def urlpath(url):
    return re.sub(r"^https?://[^/]+", "", url).split("?")[0]


def item_titles(page):
    return page.locator("#playlist-items li .title").all_text_contents()


def focused_label(page):
    return page.evaluate("document.activeElement && document.activeElement.getAttribute('aria-label')")


def no_horizontal_scroll(page):
    sizes = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
                                     client: document.documentElement.clientWidth})""")
    assert sizes["scroll"] <= sizes["client"] + 1, f"{page.url} scrolls sideways: {sizes}"


def download(page, link_id):
    with page.expect_download() as info:
        page.click(f"#{link_id}")
    dl = info.value
    return dl.suggested_filename, Path(dl.path()).read_bytes()


def test_playlists_from_empty_to_generated_edited_exported_and_deleted(server_factory, migrated_template, page):
    server = server_factory(env={"TRACKER_AUTOSTART": "false"})

    # Nothing imported yet.
    page.goto(server.url + "/playlists")
    assert page.locator("nav a[aria-current=page]").inner_text() == "Playlists"
    assert page.locator("#no-playlists").is_visible()
    shot(page, "empty")
    navigates(page, page.locator("form.generator").filter(has_text="This month's top").get_by_role(
        "button", name="Make this playlist").click)
    nothing = page.locator("#nothing-found")
    assert "You have no listens yet: import your Last.fm history first" in nothing.inner_text()
    assert nothing.get_by_role("link", name="Import your history").get_attribute("href") == "/settings"
    shot(page, "nothing-found")

    seed(server_factory.instance, migrated_template)

    # Generate: top of the last 30 days, three tracks.
    page.goto(server.url + "/playlists")
    form = page.locator("form.generator").filter(has_text="This month's top")
    form.get_by_label("Tracks").fill("3")
    form.get_by_label("Period").select_option("30days")
    navigates(page, form.get_by_role("button", name="Make this playlist").click)
    assert re.fullmatch(r"/playlists/\d+", urlpath(page.url)), page.url
    playlist_url = page.url
    assert item_titles(page) == ["One", "Two", "Three"]
    assert page.locator("#playlist-name").inner_text().startswith("Top of the last 30 days")
    shot(page, "generated")

    # Rename, from the keyboard.
    page.locator("#rename").fill("Evening, side A")
    navigates(page, lambda: page.locator("#rename").press("Enter"))
    assert page.locator("#playlist-name").inner_text() == "Evening, side A"
    shot(page, "renamed")

    # Reorder with the keyboard only: the moved item's button keeps the focus.
    page.get_by_role("button", name="Move “One” down").focus()
    navigates(page, lambda: page.keyboard.press("Enter"))
    page.wait_for_function("document.activeElement && document.activeElement.tagName === 'BUTTON'")
    assert item_titles(page) == ["Two", "One", "Three"]
    assert focused_label(page) == "Move “One” down"
    navigates(page, lambda: page.keyboard.press("Enter"))  # again: One reaches the end, "up" takes the focus
    page.wait_for_function("document.activeElement && document.activeElement.tagName === 'BUTTON'")
    assert item_titles(page) == ["Two", "Three", "One"]
    assert focused_label(page) == "Move “One” up"
    navigates(page, lambda: page.keyboard.press("Enter"))
    page.wait_for_function("document.activeElement && document.activeElement.tagName === 'BUTTON'")
    assert item_titles(page) == ["Two", "One", "Three"]
    page.keyboard.press("Shift+Tab")  # back to the item above, with the keyboard
    assert focused_label(page) == "Remove “Two”"
    page.keyboard.press("Shift+Tab")  # the first item's "up" button is disabled: not in the way
    assert focused_label(page) == "Move “Two” down"
    shot(page, "reordered")

    # Remove an item; add a track found by searching the listens.
    navigates(page, page.get_by_role("button", name="Remove “Three”").click)
    assert item_titles(page) == ["Two", "One"]
    page.locator("#track-search").fill("encore")
    navigates(page, lambda: page.locator("#track-search").press("Enter"))
    navigates(page, page.get_by_role("button", name="Add “Encore”").click)
    assert item_titles(page) == ["Two", "One", "Encore"]
    shot(page, "edited")

    # Every export link downloads a file named after the playlist, which parses back.
    name, body = download(page, "export-xspf")
    assert name == "Evening, side A.xspf"
    root = ET.fromstring(body)
    assert root.findtext(XSPF + "title") == "Evening, side A"
    assert [t.findtext(XSPF + "title") for t in root.iter(XSPF + "track")] == ["Two", "One", "Encore"]
    name, body = download(page, "export-csv")
    assert name == "Evening, side A.csv"
    assert list(csv.reader(io.StringIO(body.decode()))) == [
        ["artist", "title", "album", "duration"], ["Band", "Two", "LP", ""], ["Band", "One", "LP", ""],
        ["Soloist", "Encore", "Live", ""]]
    name, body = download(page, "export-m3u")
    assert name == "Evening, side A.m3u"
    assert [line for line in body.decode().splitlines() if line.startswith("#EXTINF")] == [
        "#EXTINF:-1,Band - Two", "#EXTINF:-1,Band - One", "#EXTINF:-1,Soloist - Encore"]

    # A name made of HTML stays text.
    page.locator("#rename").fill(XSS)
    navigates(page, page.get_by_role("button", name="Rename").click)
    assert page.locator("#playlist-name").inner_text() == XSS
    assert page.locator("main img").count() == 0
    page.goto(server.url + "/playlists")
    assert page.locator("#playlist-list a").all_text_contents() == [XSS]

    # Phone width: no sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    for url in (server.url + "/playlists", playlist_url):
        page.goto(url)
        no_horizontal_scroll(page)
    shot(page, "phone")
    page.set_viewport_size({"width": 1100, "height": 900})

    # Delete: a confirmation first; keeping it changes nothing.
    page.goto(playlist_url)
    navigates(page, lambda: page.click("#delete-link"))
    assert page.get_by_role("heading", name="Delete this playlist?").is_visible()
    shot(page, "confirm-delete")
    navigates(page, page.get_by_role("link", name="Keep it").click)
    assert item_titles(page) == ["Two", "One", "Encore"]
    navigates(page, lambda: page.click("#delete-link"))
    navigates(page, lambda: page.click("#confirm-delete"))
    assert urlpath(page.url) == "/playlists"
    assert "Deleted the playlist" in page.locator("main").inner_text()
    assert page.locator("#no-playlists").is_visible()
    shot(page, "deleted")
    assert page.goto(playlist_url).status == 404
