"""The live journal in a real browser (headless Debian chromium via Playwright) on a real gunicorn.

A script scrobbles (the way a player would, with the ListenBrainz API) while the journal is open:
the listen appears on the first page, then the now-playing banner, and an upload's listens too,
all without a reload (a mark set on the page's window before any of it is still there at the end).
A second tab reading page 2 is not moved. Names made of HTML stay text.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tests.browsing import needs_chromium, only_local

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TOKEN = "browser-live-token-7"
AUTH = {"Authorization": f"Token {TOKEN}"}
TIMEOUT_MS = 30_000
XSS_ARTIFACT = "<img src=x onerror=window.__pwned=1>"

pytestmark = needs_chromium


def submit(server, listen_type, payload):
    response = requests.post(f"{server.url}/1/submit-listens", headers=AUTH, timeout=60,
                             data=json.dumps({"listen_type": listen_type, "payload": payload}))
    assert response.status_code == 200, response.text


def test_the_journal_moves_without_a_reload(browser, server_factory):
    from playwright.sync_api import expect

    server = server_factory(env={"API_TOKEN": TOKEN})
    now = int(time.time())
    backlog = [{"listened_at": now - 200_000 + i * 600, "track_metadata": {
        "artist_name": "Backlog Artist", "track_name": f"Old Song {i:03d}"}} for i in range(120)]
    submit(server, "import", backlog)

    context = browser.new_context()
    outside = only_local(context)
    page = context.new_page()
    page.goto(f"{server.url}/journal")
    expect(page.locator("#listen-total")).to_have_attribute("data-total", "120")
    page.evaluate("window.__sameDocument = 'still here'")
    older = context.new_page()
    older.goto(f"{server.url}/journal?page=2")
    older_text = older.locator("main").inner_text()
    older.evaluate("window.__sameDocument = 'still here'")

    # A scrobble from a script, with a name that is HTML.
    submit(server, "single", [{"listened_at": now - 300, "track_metadata": {
        "artist_name": XSS_ARTIFACT, "track_name": "Live Scrobble", "release_name": "Mezzanine"}}])
    first = page.locator("ol.listens li").first
    expect(first.locator(".title")).to_have_text("Live Scrobble", timeout=TIMEOUT_MS)
    expect(first.locator(".artist")).to_have_text(XSS_ARTIFACT)  # shown as text, not run
    expect(page.locator("#listen-total")).to_have_attribute("data-total", "121")

    # Now playing: the banner.
    submit(server, "playing_now", [{"track_metadata": {
        "artist_name": "Portishead", "track_name": "Roads", "release_name": "Dummy",
        "additional_info": {"duration_ms": 305_000, "submission_client": "Navidrome"}}}])
    banner = page.locator("#now-playing")
    expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    expect(banner.locator(".title")).to_have_text("Roads")
    expect(banner).to_contain_text("Navidrome")

    # An upload's listens arrive the same way. The CSV has minutes only: `now` rounded down to its
    # minute is still after the scrobble above, so the upload's listen comes first.
    upload = requests.post(f"{server.url}/api/v1/imports", timeout=60,
                           files={"files": ("scrobbles.csv", f"Björk,Homogenic,Jóga,{time.strftime('%d %b %Y %H:%M', time.gmtime(now))}\n")})
    assert upload.status_code == 202, upload.text
    expect(page.locator("ol.listens li").first.locator(".title")).to_have_text("Jóga", timeout=TIMEOUT_MS)
    expect(page.locator("#listen-total")).to_have_attribute("data-total", "122")
    expect(banner).to_be_visible()  # still playing

    assert page.evaluate("window.__sameDocument") == "still here"  # no reload
    assert page.evaluate("window.__pwned === undefined")
    assert older.evaluate("window.__sameDocument") == "still here"
    assert older.locator("main").inner_text() == older_text  # page 2 did not move
    assert outside == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "journal-live.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("language", ["fr"])
def test_the_banner_speaks_the_page_language(browser, server_factory, language):
    from playwright.sync_api import expect

    server = server_factory(env={"API_TOKEN": TOKEN})
    context = browser.new_context(locale="fr-FR", extra_http_headers={"Accept-Language": "fr"})
    page = context.new_page()
    page.goto(f"{server.url}/journal")
    submit(server, "playing_now", [{"track_metadata": {"artist_name": "Air", "track_name": "Playground Love"}}])
    expect(page.locator("#now-playing")).to_contain_text("En cours d’écoute", timeout=TIMEOUT_MS)
    context.close()
