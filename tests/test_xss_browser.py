"""Names made of HTML stay text on every page, in a real browser (Debian chromium via Playwright)
against a real gunicorn.

Hostile strings go in through the real paths where there is one (a Last.fm CSV upload: artist,
album and track names, a file name, an unreadable date that lands in the error sample) and straight
into the database for the rest (album links and images set to `javascript:` URLs, descriptions,
collection records, job messages, a running job's steps and errors, the live tracker's state).
Then every page is loaded, the server-rendered ones and the parts scripts render (progress page,
inline progress on the settings page, tracker card), and the test checks that no dialog opened, no
injected element or `javascript:` link exists, nothing requested `/x`, and the text shows as text.
"""
from __future__ import annotations

import csv
import io
import os
import re
import socket
import time
import uuid

import pytest
import requests

from tests.browsing import needs_chromium
from tests.conftest import make_app

pytestmark = needs_chromium

IMG = "<img src=x onerror=alert(1)>"
ATTR = '"><script>alert(2)</script>'
BREAK = "</script><svg onload=alert(3)>"
QUOTE = "'><img src=x onerror=alert(4)>"
JS_URL = "javascript:alert(5)"
ARTIST, ALBUM, TRACK = f"{IMG} artist", f"{ATTR} album", f"{BREAK}{QUOTE} track"
TIMEOUT_MS = 30_000

# Run in each page once it has loaded: what an injection would have left behind.
INJECTED = """() => {
  const found = [];
  document.querySelectorAll("*").forEach((el) => {
    for (const attr of el.getAttributeNames()) {
      if (/^on/i.test(attr)) found.push(el.tagName + " " + attr);
    }
  });
  document.querySelectorAll("img").forEach((el) => {
    const src = el.getAttribute("src") || "";
    if (src === "x" || /^\\s*javascript:/i.test(src)) found.push("img src=" + src);
  });
  document.querySelectorAll("a[href], iframe, object, embed").forEach((el) => {
    const href = el.getAttribute("href") || el.getAttribute("src") || el.getAttribute("data") || "";
    if (/^\\s*javascript:/i.test(href) || el.tagName !== "A") found.push(el.tagName + " " + href);
  });
  document.querySelectorAll("svg, script").forEach((el) => {
    if (el.tagName.toLowerCase() === "svg" || /alert\\(/.test(el.textContent) && el.type !== "application/json") {
      found.push(el.tagName + " " + el.textContent.slice(0, 40));
    }
  });
  return found;
}"""


def _csv(rows):
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode()


def _wait_job(server, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = requests.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10).json()
        if snap["status"] in ("completed", "error", "cancelled", "interrupted"):
            return snap
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end: {snap}")


def _seed(instance, migrated_template):
    """What an upload cannot bring: links, descriptions, records, job messages, a running job."""
    from flask_jobprogress import ProgressTracker

    from modules.db import db
    from modules.models import Album, Artist, CollectionItem, Job

    app = make_app(instance, migrated_template)
    ids = {}
    with app.app_context():
        artist = db.session.query(Artist).filter_by(name=ARTIST).one()
        artist.image_url, artist.spotify_url = JS_URL, JS_URL
        album = db.session.query(Album).filter_by(title=ALBUM).one()
        album.image_url, album.spotify_url = JS_URL, JS_URL
        album.description = f"{IMG}\n\n{ATTR}"
        album.description_model, album.description_language = BREAK, QUOTE
        db.session.add(CollectionItem(
            instance_id=1, release_id=1, album_id=album.id, title=f"{IMG} record", artist=ATTR, year=1970,
            formats=[{"name": BREAK, "qty": "1"}], labels=[{"name": QUOTE, "catno": IMG}], genres=[IMG],
            styles=[ATTR], cover_url=JS_URL, thumb_url=JS_URL, date_added=IMG))
        db.session.add(CollectionItem(
            instance_id=2, release_id=2, album_id=album.id, title=f"{ATTR} other", artist=IMG, year=1980,
            formats=[{"name": IMG}], labels=[], genres=[ATTR], styles=[], cover_url=JS_URL, thumb_url=JS_URL))
        now = time.time()
        failed = Job(id=uuid.uuid4().hex, kind="discogs_sync", status="error", params={}, message=f"{IMG} failed",
                     created_at=now - 10, started_at=now - 10, finished_at=now - 9)
        tracker_job = Job(id=uuid.uuid4().hex, kind="lastfm_tracker", status="error", params={},
                          message=ATTR, created_at=now - 8, started_at=now - 8, finished_at=now - 7,
                          checkpoint={"last_track": {"artist": IMG, "title": ATTR}, "last_error": BREAK})
        running = Job(id=uuid.uuid4().hex, kind="enrich", status="running", active_kind="enrich", params={},
                      owner=f"{socket.gethostname()}:{os.getpid()}", heartbeat_at=now + 3600,
                      created_at=now, started_at=now)
        db.session.add_all([failed, tracker_job, running])
        db.session.commit()
        ids.update(album=album.id, failed=failed.id, running=running.id)
        store = app.extensions["sillon"]["progress_store"]
        live = None
        for job_id, final in ((failed.id, True), (running.id, False)):
            tracker = ProgressTracker(job_id, "enrich", steps=[("spotify", IMG), ("ai", ATTR)], publish=store.publish)
            tracker.start(BREAK)
            tracker.start_step("spotify", QUOTE)
            tracker.start_substep("spotify", "s1", name=IMG, message=ATTR, total=3)
            tracker.incr(IMG)
            tracker.add_error(f"{IMG} not found", album=ATTR, file=BREAK, line=QUOTE)
            if final:
                tracker.complete(result={"note": IMG}, redirect_url=JS_URL, message=f"{IMG} done")
            else:
                tracker.set_message(f"{QUOTE} running")
                live = tracker
            tracker.flush()
        db.session.remove()
    return ids, app, live


@pytest.fixture
def hostile_server(server_factory, migrated_template):
    server = server_factory(env={"JOB_STALE_SECONDS": "3600"})
    rows = [[ARTIST, ALBUM, TRACK, "09 Jun 2008 17:16"], [ARTIST, ALBUM, f"{TRACK} 2", "10 Jun 2008 17:16"],
            [ARTIST, ALBUM, TRACK, f"{IMG} date"]]
    files = [("files", (f'{ATTR}.csv', _csv(rows), "text/csv")),
             ("files", (f"{IMG}.json", b'{"not": "an export"}', "application/json"))]
    resp = requests.post(server.url + "/api/v1/imports", files=files, timeout=60)
    assert resp.status_code == 202, resp.text
    upload_id = resp.json()["job_id"]
    snap = _wait_job(server, upload_id)
    assert snap["counters"]["imported"] == 2, snap
    assert any(IMG in e["message"] for e in snap["errors_sample"]), snap["errors_sample"]
    ids, app, live = _seed(server_factory.instance, migrated_template)
    ids["upload"] = upload_id
    server.ids = ids
    yield server
    live.cancelled("the test is over")
    live._flusher.join(10)
    with app.app_context():
        from modules.db import db
        db.engine.dispose()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route("**/*", lambda r: r.continue_() if re.match(r"^https?://127\.0\.0\.1[:/]", r.request.url)
                  else r.abort())
    page = context.new_page()
    page.dialogs, page.requested, page.errors = [], [], []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda req: page.requested.append(req.url))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def visit(page, url, wait_for=None):
    page.goto(url)
    if wait_for:
        page.wait_for_selector(wait_for, state="attached")
    page.wait_for_timeout(300)  # an onerror or onload would have fired by now
    injected = page.evaluate(INJECTED)
    assert injected == [], (url, injected)
    assert page.dialogs == [], (url, page.dialogs)
    assert not [u for u in page.requested if re.search(r"127\.0\.0\.1:\d+/x$", u)], url
    assert page.errors == [], (url, page.errors)
    return page.locator("body").inner_text()


def test_every_page_shows_names_made_of_html_as_text(hostile_server, page):
    base, ids = hostile_server.url, hostile_server.ids

    text = visit(page, base + "/journal")
    assert ARTIST in text and ALBUM in text and TRACK in text

    text = visit(page, base + "/journal?artist=" + requests.utils.quote(IMG))
    assert ARTIST in text
    assert page.locator('input[name="artist"]').input_value() == IMG

    text = visit(page, base + "/collection")
    assert f"{IMG} record" in text and ATTR in text and BREAK in text
    text = visit(page, base + "/collection?q=" + requests.utils.quote(ATTR) + "&genre=" + requests.utils.quote(IMG))
    assert page.locator('input[name="q"]').input_value() == ATTR

    text = visit(page, base + f"/albums/{ids['album']}")
    assert ALBUM in text and ARTIST in text and IMG in text and ATTR in text
    assert page.locator("#spotify-link").count() == 0  # a javascript: link is dropped, not shown
    assert page.locator("textarea#description").input_value() == f"{IMG}\n\n{ATTR}"

    visit(page, base + "/timeline")

    text = visit(page, base + "/jobs")
    assert f"{IMG} failed" in text

    # The settings page: the running job's inline progress and the tracker card are drawn by scripts.
    visit(page, base + "/settings", wait_for='#enrich-progress [data-part="status-text"]')
    assert f"{QUOTE} running" in page.locator("#enrich-progress").inner_text()
    assert page.locator("#tracker-last-track").inner_text() == f"{IMG} — {ATTR}"
    assert page.locator("#tracker-last-error").inner_text() == BREAK

    # Progress pages, rendered by progress.js from the snapshot and the stream.
    for job_id, expect in ((ids["upload"], [f"{IMG}.json", f"unreadable date '{IMG} date'"]), (ids["failed"], [f"{IMG} done", QUOTE, IMG]),
                           (ids["running"], [f"{QUOTE} running", IMG, ATTR])):
        visit(page, base + f"/progress/{job_id}", wait_for="#steps li")
        shown = page.locator("#progress").inner_text()
        for piece in expect:
            assert piece in shown, (job_id, piece, shown)
    visit(page, base + f"/progress/{ids['failed']}", wait_for="#steps li")
    assert page.locator("#result-link").get_attribute("hidden") is not None  # javascript: redirect dropped
    assert page.url.endswith(f"/progress/{ids['failed']}")
