"""The Discogs emulator, driven by the real python3-discogs-client library (never the real Discogs).

How the library is pointed at the emulator: ``Client`` has no base-URL argument; every URL it builds starts
with the ``_base_url`` class attribute, so the instance attribute is overridden
(``client._base_url = fm.url``, which ``fm.client()`` does). URLs found in answers (``resource_url``,
``collection_folders_url``...) are followed as they are; the emulator makes them point at itself. The
autouse ``only_the_emulator`` fixture fails any test in which the library tries another host.
"""
from __future__ import annotations

import threading
import time

import discogs_client
import discogs_client.fetchers
import discogs_client.utils
import pytest
import requests
from discogs_client.exceptions import ConfigurationError, HTTPError, MalformedResponseError

from tests.emulators.discogs import JPEG_BYTES, DiscogsEmulator, generate_items

UA = "SillonTests/1.0 +https://example.invalid/sillon"
FOLDER_RELEASES = "/users/collector/collection/folders/0/releases"


@pytest.fixture
def fm():
    with DiscogsEmulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def only_the_emulator(monkeypatch):
    """discogs_client sends every request through ``requests.api.request`` imported into its fetchers module."""
    real_request = discogs_client.fetchers.request

    def guarded(method, url, **kwargs):
        assert url.startswith("http://127.0.0.1:"), f"discogs_client tried to reach {url}"
        return real_request(method, url, **kwargs)

    monkeypatch.setattr(discogs_client.fetchers, "request", guarded)


@pytest.fixture
def client(fm):
    """A real client with the library's defaults except the base URL (backoff stays enabled)."""
    c = discogs_client.Client(UA, user_token=fm.token)
    c._base_url = fm.url
    return c


@pytest.fixture
def strict(fm):
    """A real client that does not retry 429 on its own."""
    return fm.client(UA, backoff_enabled=False)


def api_get(fm, path, token="test-token", **params):
    if token is not None:
        params["token"] = token
    return requests.get(fm.url + path, params=params, headers={"User-Agent": UA}, timeout=5)


# ----------------------------------------------------------------- pointing, auth, identity

def test_client_is_pointed_by_overriding_base_url(fm, client):
    assert discogs_client.Client._base_url == "https://api.discogs.com"  # class attribute untouched
    assert client._base_url == fm.url
    me = client.identity()
    assert (me.id, me.username) == (fm.user_id, "collector")
    assert me.data["consumer_name"] == fm.consumer_name
    assert me.data["resource_url"] == f"{fm.url}/users/collector"
    (req,) = fm.requests
    assert (req.method, req.path) == ("GET", "/oauth/identity")
    # user-token auth travels as a query parameter, not as an Authorization header
    assert req.query == {"token": "test-token"}
    assert req.header("Authorization") is None
    assert req.user_agent == UA == req.headers["User-Agent"]
    assert req.header("accept-encoding") == "gzip"
    # the fetcher keeps the rate-limit headers of the last answer (strings)
    fetcher = client._fetcher
    assert (fetcher.rate_limit, fetcher.rate_limit_used, fetcher.rate_limit_remaining) == ("60", "1", "59")


def test_authorization_header_is_accepted_too(fm):
    r = requests.get(fm.url + "/oauth/identity", headers={"Authorization": "Discogs token=test-token"}, timeout=5)
    assert r.status_code == 200 and r.json()["username"] == "collector"
    assert r.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_missing_or_wrong_token_is_401(fm, token):
    r = api_get(fm, "/oauth/identity", token=token)
    assert r.status_code == 401
    assert r.json() == {"message": "You must authenticate to access this resource."}
    assert r.headers["X-Discogs-Ratelimit-Used"] == "1"  # counted like any call


def test_wrong_token_raises_plain_http_error(fm):
    bad = fm.client(UA, token="not-the-token")
    with pytest.raises(HTTPError) as info:
        bad.identity()
    assert type(info.value) is HTTPError  # not AuthorizationError (only used by the OAuth request-token step)
    assert info.value.status_code == 401
    assert str(info.value) == "401: You must authenticate to access this resource."
    assert fm.count() == 1  # 401 is not retried, even with backoff enabled


def test_user_agent_is_required_by_the_library_and_recorded(fm):
    with pytest.raises(ConfigurationError):
        fm.client(user_agent="").identity()
    assert fm.count() == 0  # refused before sending
    fm.client("Other/2.0").identity()
    assert [r.user_agent for r in fm.requests] == ["Other/2.0"]


# ----------------------------------------------------------------- folders

def test_collection_folders_costs_profile_and_folders_requests(fm, client):
    fm.add_items(generate_items(3))
    custom = fm.add_folder("Keepers")
    fm.add_item(42, folder_id=custom, title="Kept")
    me = client.identity()
    folders = me.collection_folders  # 'collection_folders_url' is not in identity: the profile is fetched
    assert [(f.id, f.name, f.count) for f in folders] == [(0, "All", 4), (1, "Uncategorized", 3),
                                                          (custom, "Keepers", 1)]
    assert [r.path for r in fm.requests] == ["/oauth/identity", "/users/collector",
                                             "/users/collector/collection/folders"]
    fm.reset_counters()
    assert [f.id for f in client.user("collector").collection_folders] == [0, 1, custom]
    assert fm.count() == 2  # profile + folders
    one = api_get(fm, "/users/collector/collection/folders/1").json()
    assert one == {"id": 1, "name": "Uncategorized", "count": 3,
                   "resource_url": f"{fm.url}/users/collector/collection/folders/1"}


def test_unknown_user_and_folder_are_404(fm, strict):
    r = api_get(fm, "/users/someone-else/collection/folders")
    assert r.status_code == 404 and r.json() == {"message": "User does not exist or may have been deleted."}
    assert api_get(fm, "/users/collector/collection/folders/99/releases").status_code == 404
    assert api_get(fm, "/no/such/path").json() == {"message": "The requested resource was not found."}
    release = strict.release(123)  # no request yet
    with pytest.raises(HTTPError) as info:
        _ = release.title  # unknown release: the lazy refresh raises from the attribute access
    assert info.value.status_code == 404 and str(info.value) == "404: Release not found."


# ----------------------------------------------------------------- listing and pagination

def test_iterating_250_items_per_page_100_is_exactly_three_requests(fm, client):
    fm.add_items(generate_items(250, duplicate_every=10, image_base=fm.image_base))
    folder = client.user("collector").collection_folders[0]
    fm.reset_counters()
    releases = folder.releases
    releases.per_page = 100
    seen = []
    for item in releases:
        release = item.release  # Release built from basic_information
        seen.append((item.id, item.instance_id, item.folder_id, item.rating, item.date_added, item.notes,
                     release.id, release.title, release.year, release.thumb, release.formats, release.genres,
                     release.styles, release.data["cover_image"], release.data["master_id"],
                     [(a.id, a.name, a.join, a.role, a.data["anv"]) for a in release.artists],
                     [(lb.id, lb.name, lb.catno) for lb in release.labels]))
        if release.data["master_id"]:
            assert release.master.id == release.data["master_id"]  # a Master stub: no request yet
    assert len(seen) == 250 == releases.count == len(releases)
    assert releases.pages == 3
    reqs = fm.requests
    assert [(r.path, r.query["page"], r.query["per_page"]) for r in reqs] == [
        (FOLDER_RELEASES, "1", "100"), (FOLDER_RELEASES, "2", "100"), (FOLDER_RELEASES, "3", "100")]
    assert fm.count("/releases") == fm.count("/artists") == fm.count("/labels") == fm.count("/masters") == 0
    # default order: newest first (generate_items adds one item per hour), instance ids all distinct
    dates = [row[4] for row in seen]
    assert dates == sorted(dates, reverse=True)
    assert len({row[1] for row in seen}) == 250
    assert len({row[0] for row in seen}) == 225  # every 10th item is a second copy of the previous release
    assert all(row[5] is None for row in seen)  # no notes: None, and no request (items have no resource_url)
    first = seen[-1]
    assert first[7] == "Album 00000" and first[10] == [{"name": "Vinyl", "qty": "1", "descriptions": ["LP", "Album"]}]
    assert first[13].startswith(fm.image_base)


def test_attributes_missing_from_basic_information_cost_one_request_per_object(fm, client):
    fm.add_item(7, title="Seven", artists=["Someone"], labels=[{"name": "Lbl", "catno": "L-7"}], master_id=70,
                country="France", tracklist=[{"position": "A1", "title": "Intro", "duration": "1:00"}])
    item = client.user("collector").collection_folders[0].releases.page(1)[0]
    fm.reset_counters()
    release = item.release
    assert (release.title, release.year, release.genres) == ("Seven", 0, [])
    assert fm.count() == 0
    assert release.country == "France"  # not in basic_information -> GET /releases/7 (refresh)
    assert [r.path for r in fm.requests] == ["/releases/7"]
    assert [t.title for t in release.tracklist] == ["Intro"]  # now cached
    assert release.url == "https://www.discogs.com/release/7"
    assert release.notes == "" and release.data_quality == "Correct"
    assert fm.count() == 1
    again = item.release
    assert again is not release and again.data is release.data  # a new Release on the SAME dict, which ...
    assert again.country == "France" and fm.count() == 1  # ... the refresh updated in place: no new request
    artist, label = release.artists[0], release.labels[0]
    assert artist.name == "Someone" and label.catno == "L-7"
    assert fm.count() == 1
    assert artist.profile == "" and label.profile == ""  # GET /artists/{id}, GET /labels/{id}
    assert release.master.title == "Seven"  # GET /masters/70
    assert [r.path for r in fm.requests][1:] == [f"/artists/{artist.id}", f"/labels/{label.id}", "/masters/70"]


def test_pagination_document_matches_discogs(fm):
    fm.add_items(generate_items(250))
    doc = api_get(fm, FOLDER_RELEASES, page=2, per_page=100).json()
    base = fm.url + FOLDER_RELEASES
    assert doc["pagination"] == {
        "page": 2, "pages": 3, "per_page": 100, "items": 250,
        "urls": {"first": f"{base}?page=1&per_page=100", "prev": f"{base}?page=1&per_page=100",
                 "next": f"{base}?page=3&per_page=100", "last": f"{base}?page=3&per_page=100"}}
    item = doc["releases"][0]
    assert set(item) == {"id", "instance_id", "date_added", "rating", "basic_information", "folder_id"}
    assert set(item["basic_information"]) == {"id", "master_id", "master_url", "resource_url", "thumb", "cover_image",
                                              "title", "year", "formats", "labels", "artists", "genres", "styles"}
    assert set(item["basic_information"]["artists"][0]) == {"name", "anv", "join", "role", "tracks", "id",
                                                             "resource_url"}
    assert item["date_added"].endswith(("-08:00", "-07:00"))
    first = api_get(fm, FOLDER_RELEASES).json()["pagination"]
    assert (first["per_page"], first["pages"], set(first["urls"])) == (50, 5, {"next", "last"})
    last = api_get(fm, FOLDER_RELEASES, page=3, per_page=100).json()
    assert len(last["releases"]) == 50 and set(last["pagination"]["urls"]) == {"first", "prev"}
    past = api_get(fm, FOLDER_RELEASES, page=9, per_page=100).json()
    assert past["releases"] == [] and past["pagination"]["page"] == 9
    sorted_doc = api_get(fm, FOLDER_RELEASES, sort="year", sort_order="asc", per_page=10).json()
    assert sorted_doc["pagination"]["urls"]["next"] == f"{base}?sort=year&sort_order=asc&page=2&per_page=10"


def test_per_page_is_clamped_to_100(fm, client):
    fm.add_items(generate_items(150))
    assert api_get(fm, FOLDER_RELEASES, per_page=500).json()["pagination"]["per_page"] == 100
    assert api_get(fm, FOLDER_RELEASES, per_page=0).json()["pagination"]["per_page"] == 50
    releases = client.user("collector").collection_folders[0].releases
    releases.per_page = 500
    assert releases.pages == 2 and len(list(releases)) == 150  # iteration follows the server's pages
    with pytest.raises(IndexError):  # ... but indexing trusts the client's per_page (500) and misses
        releases[120]


def test_empty_collection(fm, client):
    releases = client.user("collector").collection_folders[0].releases
    assert (releases.count, releases.pages, list(releases)) == (0, 1, [])


def test_sort_and_stable_ties(fm, client):
    same = "2022-03-01T10:00:00-08:00"
    fm.add_item(3, title="b", artists=["Zed"], year=1990, date_added=same, instance_id=30)
    fm.add_item(1, title="C", artists=["alpha"], year=1970, date_added=same, instance_id=10)
    fm.add_item(2, title="a", artists=["Mid"], year=1980, date_added="2022-01-01T00:00:00Z", instance_id=20)
    folder = client.user("collector").collection_folders[0]
    assert [i.instance_id for i in folder.releases] == [30, 10, 20]  # added desc, ties by instance_id desc
    assert [i.instance_id for i in folder.releases.sort("added", "asc")] == [20, 10, 30]
    assert [i.release.title for i in folder.releases.sort("title")] == ["a", "b", "C"]
    assert [i.release.year for i in folder.releases.sort("year", "desc")] == [1990, 1980, 1970]
    assert [i.release.artists[0].name for i in folder.releases.sort("artist")] == ["alpha", "Mid", "Zed"]
    assert fm.requests[-1].query["sort"] == "artist" and fm.requests[-1].query["sort_order"] == "asc"
    assert [i["instance_id"] for i in fm.items()] == [30, 10, 20]
    assert fm.items()[2]["date_added"] == "2021-12-31T16:00:00-08:00"  # rendered in Pacific time


def test_two_copies_and_removal(fm, client):
    a = fm.add_item(555, title="Twice", artists=["Duo"], year=2001, genres=["Pop"])
    b = fm.add_item(555, rating=5)  # same release: metadata kept
    assert a != b
    listed = list(client.user("collector").collection_folders[0].releases)
    assert [(i.id, i.release.title) for i in listed] == [(555, "Twice"), (555, "Twice")]
    assert {i.instance_id for i in listed} == {a, b}
    copies = client.user("collector").collection_items(555)  # /users/{u}/collection/releases/{id}
    assert sorted(i.instance_id for i in copies) == [a, b]
    fm.remove_item(a)
    assert [i.instance_id for i in client.user("collector").collection_items(555)] == [b]
    assert [f.count for f in client.user("collector").collection_folders] == [1, 1]
    with pytest.raises(KeyError):
        fm.remove_item(a)


def test_generate_items_is_deterministic():
    assert generate_items(30, duplicate_every=4) == generate_items(30, duplicate_every=4)
    items = generate_items(8, duplicate_every=4)
    assert items[3]["release_id"] == items[2]["release_id"] and items[3]["date_added"] != items[2]["date_added"]
    assert items[0]["cover_image"].startswith("https://i.discogs.invalid/")


def test_images_are_served_without_auth(fm):
    fm.add_items(generate_items(1, image_base=fm.image_base))
    cover = fm.items()[0]["basic_information"]["cover_image"]
    r = requests.get(cover, timeout=5)
    assert (r.status_code, r.headers["Content-Type"], r.content[:2]) == (200, "image/jpeg", b"\xff\xd8")
    assert r.content == JPEG_BYTES and "X-Discogs-Ratelimit" not in r.headers


# ----------------------------------------------------------------- rate limiting and faults

def test_429_surfaces_as_http_error_when_backoff_is_disabled(fm, strict):
    fm.fail_next(1, 429)
    with pytest.raises(HTTPError) as info:
        strict.identity()
    assert type(info.value) is HTTPError and info.value.status_code == 429
    assert str(info.value) == "429: You are making requests too quickly."
    assert strict.identity().username == "collector"  # the fault is used up
    assert fm.count() == 2


def test_library_backoff_retries_429_silently_ignoring_retry_after(fm, client, monkeypatch):
    slept = []
    monkeypatch.setattr(discogs_client.utils, "sleep", slept.append)  # the backoff's own time.sleep
    fm.fail_next(3, 429, retry_after=30)
    assert client.backoff_enabled is True  # the library default
    assert client.identity().username == "collector"
    assert fm.count("/oauth/identity") == 4  # 3 x 429 + the success, all inside one identity() call
    assert len(slept) == 3  # jittered: uniform(0, 2**attempt), Retry-After is not read
    assert all(0 <= s <= 2 ** i for i, s in enumerate(slept))


def test_backoff_gives_up_with_too_many_attempts(fm, client, monkeypatch):
    monkeypatch.setattr(discogs_client.utils, "sleep", lambda s: None)
    fm.fail_next(100, 429)
    with pytest.raises(discogs_client.exceptions.TooManyAttemptsError):
        client.identity()
    assert fm.count() == 100 and fm.pending_faults == 0


def test_sliding_window_rate_limit(fm, strict):
    fm.rate_limit_per_minute = 3
    fm.rate_limit_window = 0.5
    fm.rate_limit_retry_after = True
    answers = [api_get(fm, "/oauth/identity") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-Discogs-Ratelimit-Used"] for r in answers] == ["1", "2", "3", "3"]
    assert [r.headers["X-Discogs-Ratelimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(r.headers["X-Discogs-Ratelimit"] == "3" for r in answers)
    assert answers[3].json() == {"message": "You are making requests too quickly."}
    assert answers[3].headers["Retry-After"] == "1"
    with pytest.raises(HTTPError) as info:
        strict.identity()
    assert info.value.status_code == 429
    deadline = time.monotonic() + 5
    while not fm.has_room():  # the oldest counted request leaves the window
        assert time.monotonic() < deadline, "the rate-limit window never made room"
        time.sleep(0.02)
    assert strict.identity().username == "collector"


def test_server_errors_are_not_retried(fm, client):
    fm.fail_next(1, 500)
    with pytest.raises(HTTPError) as info:
        client.identity()
    assert info.value.status_code == 500
    fm.fail_next(1, 502)  # HTML body from the proxy: the library cannot parse it
    with pytest.raises(MalformedResponseError) as bad:
        client.identity()
    assert bad.value.status_code == 502 and b"502 Bad Gateway" in bad.value.content
    assert fm.count() == 2  # backoff only retries 429


def test_fault_can_target_a_path(fm, strict):
    fm.add_items(generate_items(120))
    fm.fail_next(1, 429, path_prefix=FOLDER_RELEASES)
    folder = strict.user("collector").collection_folders[0]  # profile + folders: not affected
    releases = folder.releases
    releases.per_page = 100
    with pytest.raises(HTTPError):
        list(releases)
    assert len(list(releases)) == 120  # a retry by the caller works (pages are cached once fetched)


def test_latency_and_client_timeouts(fm, strict):
    assert (strict.connection_timeout, strict.read_timeout) == (None, None)  # the library default: wait forever
    fm.latency = 0.3
    strict.set_timeout(connect=1, read=0.1)
    with pytest.raises(requests.exceptions.ReadTimeout):  # not wrapped by discogs_client
        strict.identity()
    fm.latency = 0.05
    start = time.monotonic()
    strict.identity()
    assert time.monotonic() - start >= 0.05


def test_concurrent_clients_are_served_in_parallel(fm):
    fm.latency = 0.2
    clients = [fm.client(f"Worker/{i}") for i in range(6)]
    threads = [threading.Thread(target=c.identity) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    deadline = time.monotonic() + 5  # a client may have its answer before the server thread counts itself out
    while fm.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fm.max_in_flight > 1 and fm.in_flight == 0  # served side by side, not one at a time
    assert sorted(r.user_agent for r in fm.requests) == [f"Worker/{i}" for i in range(6)]
