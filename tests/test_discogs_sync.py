"""The Discogs collection sync (job kind `discogs_sync`), end to end against the Discogs emulator.

The app's REAL python3-discogs-client talks to a local emulator of the Discogs API
(tests/emulators/discogs.py) through DISCOGS_API_URL; nothing is mocked. Retries are made fast
(DISCOGS_RETRY_BASE_SECONDS=0.01) except where a test wants to watch the job wait. Jobs run in
threads of this process; `wait_for_job` joins them.
"""
from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from tests.conftest import make_app, wait_for_job
from tests.emulators.discogs import DiscogsEmulator, generate_items

SYNC = "/api/v1/services/discogs/sync"
PROGRESS = "/api/v1/services/discogs/sync/progress"
LISTING = "/users/collector/collection/folders/0/releases"
PER_ITEM_PATHS = ("/releases/", "/masters/", "/artists/", "/labels/", "/users/collector/collection/releases/")


class Emulator(DiscogsEmulator):
    """The emulator plus `on_arrival(path_with_query)`, called as each request arrives (before the
    emulator's fault check), so a test can inject a fault at an exact page."""

    on_arrival = None

    def _handle(self, handler, method, raw_path):
        if self.on_arrival is not None:
            self.on_arrival(raw_path)
        return super()._handle(handler, method, raw_path)

    def api_calls(self):
        """Requests other than the image CDN's."""
        return [r for r in self.requests if not r.path.startswith("/images/")]


@pytest.fixture
def dc():
    with Emulator() as emulator:
        yield emulator


def discogs_environ(dc, **extra):
    environ = {"DISCOGS_API_URL": dc.url, "DISCOGS_TOKEN": "test-token", "DISCOGS_RETRY_BASE_SECONDS": 0.01}
    environ.update(extra)
    return {k: v for k, v in environ.items() if v is not None}


@pytest.fixture
def new_app(tmp_path, migrated_template, dc):
    """new_app(name="instance", **environ): an app on its own instance folder, discogs_client on the emulator."""
    apps = []

    def build(name="instance", **environ):
        application = make_app(tmp_path / name, migrated_template, environ=discogs_environ(dc, **environ))
        apps.append(application)
        return application

    yield build
    for application in apps:
        end_jobs(application)
        with application.app_context():
            from modules.db import db
            db.engine.dispose()


def end_jobs(app):
    from modules.db import db
    from modules.models import Job

    with app.app_context():
        active = db.session.execute(sa.select(Job.id).where(Job.active_kind.isnot(None))).scalars().all()
        db.session.remove()
    client = app.test_client()
    for job_id in active:
        client.post(f"/api/v1/jobs/{job_id}/cancel")
    for job_id in list(app.extensions["sillon"]["runner"].threads):
        app.extensions["sillon"]["runner"].join(job_id, 10)


def start(client, **query):
    resp = client.post(SYNC, query_string=query)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert set(body) >= {"job_id", "progress_url", "events_url", "status_url"}
    return body["job_id"]


def run_sync(app, **query):
    snap = wait_for_job(app, start(app.test_client(), **query), timeout=60)
    assert snap["status"] == "completed", snap
    return snap


def stored_items(app):
    """{instance_id: row as a dict} of every stored collection item."""
    from modules.db import db
    from modules.models import CollectionItem

    with app.app_context():
        rows = db.session.execute(sa.select(CollectionItem)).scalars().all()
        out = {r.instance_id: {c.name: getattr(r, c.name) for c in CollectionItem.__table__.columns} for r in rows}
        db.session.remove()
    return out


def count(app, model):
    from modules.db import db

    with app.app_context():
        n = db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar()
        db.session.remove()
    return n


def listing_ids(dc):
    return {item["instance_id"] for item in dc.items()}


def assert_no_per_item_calls(dc):
    per_item = [r.path for r in dc.api_calls() if r.path.startswith(PER_ITEM_PATHS)]
    assert per_item == []


def expected_fields(listed):
    """What the sync should store for one item of the emulator's listing."""
    info = listed["basic_information"]
    return {"release_id": listed["id"], "title": info["title"], "artist": info["artists"][0]["name"],
            "year": info["year"] or None, "formats": info["formats"], "labels": info["labels"],
            "genres": info["genres"], "styles": info["styles"], "cover_url": info["cover_image"] or None,
            "thumb_url": info["thumb"] or None, "date_added": listed["date_added"],
            "rating": listed["rating"] or None, "folder_id": listed["folder_id"], "source": "discogs"}


# ---------------------------------------------------------------------------------------------- first sync
def test_first_sync_stores_every_item_with_the_listing_fields(new_app, dc):
    from modules.models import Album, CollectionItem

    dc.add_items(generate_items(250, duplicate_every=10, image_base=dc.image_base))
    app = new_app(PROGRESS_PUBLISH_INTERVAL=0.005)
    client = app.test_client()
    assert client.get(PROGRESS).get_json()["status"] == "idle"
    from tests.test_lastfm_import import record_snapshots, step_of

    snaps = record_snapshots(app)
    snap = run_sync(app)
    result = snap["result"]
    assert result["added"] == 250 and result["skipped"] == 0 and result["errors"] == 0
    # The read step's message is the current one: its pages and added agree with the counters
    # (the count is set just before the message, so a snapshot may see it one page ahead).
    for s in snaps:
        if step_of(s, "read")["status"] == "in_progress":
            m = re.fullmatch(r"(\d+)/3 pages read(?:, (\d+) added)?", step_of(s, "read")["message"])
            assert m, step_of(s, "read")["message"]
            shown, added = int(m.group(2) or 0), s["counters"].get("added", 0)
            assert shown <= added <= shown + 100 and s["done"] - 100 <= min(100 * int(m.group(1)), 250) <= s["done"], s
    assert step_of(snap, "read")["message"] == "250 added"
    assert result["total"] == 250 and result["gone_from_discogs"] == 0 and result["gone"] == []
    assert result["user"] == "collector"
    assert snap["counters"]["added"] == 250 and snap["counters"]["errors"] == 0
    assert snap["redirect_url"] == "/collection"
    assert "Added 250" in snap["message"]

    stored = stored_items(app)
    listed = {item["instance_id"]: item for item in dc.items()}
    assert set(stored) == set(listed)
    for instance_id, item in listed.items():
        row = stored[instance_id]
        assert {k: row[k] for k in expected_fields(item)} == expected_fields(item), instance_id
        assert row["album_id"] is not None

    # Albums created and linked: one per release (the two copies of a release share one album).
    releases = {item["id"] for item in listed.values()}
    assert count(app, Album) == len(releases) == 250 - 250 // 10
    from modules.db import db
    with app.app_context():
        linked = db.session.execute(
            sa.select(CollectionItem.title, Album.title).join(Album, Album.id == CollectionItem.album_id)).all()
        db.session.remove()
    assert len(linked) == 250 and all(a == b for a, b in linked)

    # Three pages of 100: identity, folder list (+ profile), and one call per page; nothing per item.
    assert dc.count(LISTING) == 3
    assert all(r.query.get("per_page") == "100" for r in dc.requests if r.path == LISTING)
    assert_no_per_item_calls(dc)

    progress = client.get(PROGRESS).get_json()
    assert {k: progress[k] for k in ("status", "total", "processed", "added", "skipped", "errors")} == {
        "status": "completed", "total": 250, "processed": 250, "added": 250, "skipped": 0, "errors": 0}

    page = client.get("/api/v1/collection/albums", query_string={"page": 1, "page_size": 20}).get_json()
    assert set(page) == {"total", "page", "page_size", "items"}
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (250, 1, 20, 20)
    first = page["items"][0]
    assert first["instance_id"] == max(listed, key=lambda i: listed[i]["date_added"])  # newest first
    assert {"title", "artist", "year", "formats", "genres", "cover_url", "album_id"} <= set(first)
    last = client.get("/api/v1/collection/albums", query_string={"page": 13, "page_size": 20}).get_json()
    assert len(last["items"]) == 10

    # The collection page lists the shelf.
    html = client.get("/collection").get_data(as_text=True)
    assert "Album 00000" in html or "250" in html


# ----------------------------------------------------------------------------------- nothing new: cheap
def test_second_sync_with_nothing_new_costs_a_call_per_page(new_app, dc):
    dc.add_items(generate_items(250))
    app = new_app()
    run_sync(app)
    before = stored_items(app)
    dc.reset_counters()

    snap = run_sync(app)
    assert snap["result"]["added"] == 0 and snap["result"]["skipped"] == 250
    calls = dc.api_calls()
    pages = [r for r in calls if r.path == LISTING]
    others = [r.path for r in calls if r.path != LISTING]
    assert len(pages) == 3
    assert others.count("/oauth/identity") == 1
    assert len(others) <= 3, others  # identity + at most two to find the folder
    assert len(calls) <= 1 + 2 + 3
    assert_no_per_item_calls(dc)
    assert stored_items(app) == before


def test_two_thousand_items_with_nothing_new_cost_at_most_23_calls(new_app, dc):
    dc.add_items(generate_items(2000, duplicate_every=25))
    app = new_app()
    first = run_sync(app)
    assert first["result"]["added"] == 2000
    dc.reset_counters()

    snap = run_sync(app)
    assert snap["result"]["added"] == 0 and snap["result"]["skipped"] == 2000
    calls = dc.api_calls()
    assert len(calls) <= 23, [r.path for r in calls]
    assert sum(1 for r in calls if r.path == LISTING) == 20
    assert_no_per_item_calls(dc)


# ------------------------------------------------------------------------------------------ what changed
def test_new_items_on_a_later_page_are_the_only_ones_added(new_app, dc):
    dc.add_items(generate_items(150))
    app = new_app()
    run_sync(app)
    before = stored_items(app)
    # Added later on Discogs: oldest-first listing puts them on page 2 and a new page 3.
    new_ids = set(dc.add_items(generate_items(80, start_release_id=2_000_001, start_date="2024-01-01T12:00:00-08:00",
                                              title_prefix="Later")))
    dc.reset_counters()

    snap = run_sync(app)
    assert snap["result"]["added"] == 80 and snap["result"]["skipped"] == 150
    after = stored_items(app)
    assert set(after) - set(before) == new_ids
    assert {k: after[k] for k in before} == before
    assert all(after[i]["title"].startswith("Later") for i in new_ids)
    assert dc.count(LISTING) == 3
    assert_no_per_item_calls(dc)


def test_two_copies_of_one_release_are_two_items(new_app, dc):
    first = dc.add_item(7001, title="Kind of Blue", artists=["Miles Davis"], year=1959, rating=5)
    second = dc.add_item(7001)
    dc.add_item(7002, title="Blue Train", artists=["John Coltrane"], year=1957)
    app = new_app()
    snap = run_sync(app)
    assert snap["result"]["added"] == 3
    stored = stored_items(app)
    assert stored[first]["release_id"] == stored[second]["release_id"] == 7001
    assert stored[first]["title"] == stored[second]["title"] == "Kind of Blue"
    assert stored[first]["album_id"] == stored[second]["album_id"]  # one album, two copies
    assert stored[first]["rating"] == 5 and stored[second]["rating"] is None
    # The album page says two copies.
    html = app.test_client().get(f"/albums/{stored[first]['album_id']}").get_data(as_text=True)
    assert "2 copies" in html

    third = dc.add_item(7001)  # a third copy bought later
    snap = run_sync(app)
    assert snap["result"]["added"] == 1
    assert stored_items(app)[third]["release_id"] == 7001


def test_several_artists_are_joined_as_discogs_shows_them(new_app, dc):
    instance = dc.add_item(8001, title="Déjà Vu", year=1970, artists=[
        {"name": "David Crosby", "anv": "Crosby", "join": ","}, {"name": "Stephen Stills (2)", "join": ","},
        {"name": "Graham Nash", "anv": "Nash", "join": "&"}, {"name": "Neil Young"}])
    app = new_app()
    run_sync(app)
    assert stored_items(app)[instance]["artist"] == "Crosby, Stephen Stills, Nash & Neil Young"


def test_a_discogs_disambiguation_number_is_dropped_from_the_artist(new_app, dc):
    instance = dc.add_item(8002, title="Bleach", artists=["Nirvana (2)"])
    app = new_app()
    run_sync(app)
    assert stored_items(app)[instance]["artist"] == "Nirvana"


def test_an_item_removed_on_discogs_is_kept_and_listed_as_gone(new_app, dc):
    ids = dc.add_items(generate_items(120))
    app = new_app()
    run_sync(app)
    removed = ids[5]
    removed_title = stored_items(app)[removed]["title"]
    dc.remove_item(removed)

    snap = run_sync(app)
    result = snap["result"]
    assert result["added"] == 0 and result["gone_from_discogs"] == 1
    assert result["gone"] == [{"instance_id": removed, "artist": stored_items(app)[removed]["artist"],
                               "title": removed_title}]
    assert "no longer on Discogs" in snap["message"] and "kept" in snap["message"]
    assert removed in stored_items(app) and len(stored_items(app)) == 120


def test_nothing_already_stored_is_rewritten(new_app, dc):
    from modules.db import db
    from modules.models import CollectionItem

    ids = dc.add_items(generate_items(30))
    app = new_app()
    run_sync(app)
    target = ids[3]
    release_id = stored_items(app)[target]["release_id"]
    # The person edits a stored row here...
    with app.app_context():
        db.session.execute(sa.update(CollectionItem).where(CollectionItem.instance_id == ids[4]).values(rating=1))
        db.session.commit()
        db.session.remove()
    before = stored_items(app)
    # ...and on Discogs the release's title changes (another copy of it, bought later, brings the new title).
    new_copy = dc.add_item(release_id, title="Retitled on Discogs", rating=4)
    listed = {i["instance_id"]: i for i in dc.items()}
    assert listed[target]["basic_information"]["title"] == "Retitled on Discogs"

    snap = run_sync(app)
    assert snap["result"]["added"] == 1
    after = stored_items(app)
    assert {k: after[k] for k in before} == before  # the stored rows are untouched
    assert after[ids[4]]["rating"] == 1
    assert after[new_copy]["title"] == "Retitled on Discogs"


def test_limit_adds_exactly_that_many_then_the_rest(new_app, dc):
    dc.add_items(generate_items(250))
    app = new_app()
    snap = run_sync(app, limit=5)
    assert snap["result"]["added"] == 5 and snap["result"]["limit"] == 5
    assert "limit" in snap["message"]
    assert len(stored_items(app)) == 5
    snap = run_sync(app)
    assert snap["result"]["added"] == 245
    assert set(stored_items(app)) == listing_ids(dc)


def test_the_limit_message_does_not_call_unadded_items_already_there(new_app, dc):
    dc.add_items(generate_items(250))
    app = new_app()
    snap = run_sync(app, limit=5)
    assert snap["result"]["added"] == 5
    assert "245 were already in your collection" not in snap["message"], snap["message"]
    assert snap["result"]["skipped"] == 0


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_limit_is_refused(new_app, dc, value):
    from modules.models import Job

    app = new_app()
    resp = app.test_client().post(SYNC, query_string={"limit": value})
    assert resp.status_code == 400 and "limit" in resp.get_json()["error"]
    assert count(app, Job) == 0


# ------------------------------------------------------------------------------------- faults and waits
def test_429_bursts_and_a_502_page_are_waited_out(new_app, dc):
    dc.add_items(generate_items(250))
    dc.fail_next(3, status=429)  # the first calls (identity) are refused three times
    injected = []

    def on_arrival(raw_path):
        if "page=2" in raw_path and not injected:  # mid-listing: a burst then a proxy's HTML error page
            injected.append(raw_path)
            dc.fail_next(3, status=429, path_prefix=LISTING)
            dc.fail_next(1, status=502, path_prefix=LISTING)

    dc.on_arrival = on_arrival
    app = new_app()
    snap = run_sync(app)
    assert injected
    assert snap["result"]["added"] == 250 and snap["result"]["errors"] == 0
    assert snap["counters"]["retries"] >= 7
    assert set(stored_items(app)) == listing_ids(dc)
    assert dc.pending_faults == 0


def test_while_rate_limited_the_job_says_it_waits_for_discogs(new_app, dc):
    dc.add_items(generate_items(120))
    dc.fail_next(3, status=429, path_prefix=LISTING)
    app = new_app(DISCOGS_RETRY_BASE_SECONDS=0.3)  # waits 0.3 + 0.6 + 1.2 s
    client = app.test_client()
    job_id = start(client)
    messages = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snap = client.get(f"/api/v1/jobs/{job_id}").get_json()
        messages.add(snap["message"])
        if snap["status"] not in ("queued", "running"):
            break
        time.sleep(0.03)
    waiting = [m for m in messages if m and "waiting" in m.lower()]
    assert waiting and all("Discogs" in m for m in waiting), messages
    final = wait_for_job(app, job_id)
    assert final["status"] == "completed" and final["result"]["added"] == 120
    assert final["counters"]["retries"] == 3


def test_a_discogs_that_keeps_failing_ends_the_job_with_a_message(new_app, dc):
    dc.add_items(generate_items(50))
    dc.fail_next(100, status=503)
    app = new_app(DISCOGS_MAX_ATTEMPTS=3)
    snap = wait_for_job(app, start(app.test_client()))
    assert snap["status"] == "error"
    assert "Discogs" in snap["message"] and "again" in snap["message"]
    assert stored_items(app) == {}


def test_a_wrong_token_ends_with_a_message_naming_the_setting(new_app, dc):
    from modules.models import Album

    dc.add_items(generate_items(20))
    app = new_app(DISCOGS_TOKEN="wrong-token")
    snap = wait_for_job(app, start(app.test_client()))
    assert snap["status"] == "error"
    assert "DISCOGS_TOKEN" in snap["message"]
    assert stored_items(app) == {} and count(app, Album) == 0
    progress = app.test_client().get(PROGRESS).get_json()
    assert progress["status"] == "error" and progress["added"] == 0
    assert dc.count(LISTING) == 0


def test_no_token_answers_400_and_starts_nothing(new_app, dc):
    from modules.models import Job

    app = new_app(DISCOGS_TOKEN=None)
    resp = app.test_client().post(SYNC)
    assert resp.status_code == 400
    assert "DISCOGS_TOKEN" in resp.get_json()["error"]
    assert count(app, Job) == 0
    assert dc.requests == []


def test_a_second_sync_while_one_runs_answers_409(new_app, dc):
    dc.add_items(generate_items(250))
    dc.latency = 0.2
    app = new_app()
    client = app.test_client()
    job_id = start(client)
    resp = client.post(SYNC)
    assert resp.status_code == 409
    assert resp.get_json()["job_id"] == job_id
    running = client.get(PROGRESS).get_json()
    assert running["status"] in ("queued", "running")
    dc.latency = 0
    assert wait_for_job(app, job_id)["status"] == "completed"


def test_the_user_agent_names_the_app_and_its_version(new_app, dc):
    from modules import VERSION

    dc.add_items(generate_items(5))
    app = new_app()
    run_sync(app)
    agents = {r.user_agent for r in dc.api_calls()}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith(f"Sillon/{VERSION}")


def test_a_record_without_an_album_is_listed_without_a_link(app, client):
    """Records stored before they had an album (album_id NULL) still show on the collection page."""
    from modules.db import db
    from modules.models import CollectionItem

    with app.app_context():
        db.session.add(CollectionItem(instance_id=77, release_id=7, title="Loose Record", artist="Nobody",
                                      album_id=None, source="discogs"))
        db.session.commit()
    resp = client.get("/collection")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Loose Record" in page and '<div class="record-body">' in page
