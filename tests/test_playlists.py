"""Playlists: the generators against a real database holding hand-built listens and records (the
expected answers are computed here from the same hand-built data, in plain Python), edits through
the pages and the API, exports parsed back (XSPF with an XML parser, CSV with csv, M3U by lines),
hostile names, 404s and bad input."""
from __future__ import annotations

import csv
import io
import random
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest

from modules import playlists
from modules.db import db
from modules.models import Album, Artist, CollectionItem, Listen, Playlist, PlaylistItem, Track
from modules.names import name_key
from modules.playlists import formats as playlist_formats

DAY = 86400
NOW = int(datetime(2026, 3, 15, 12, 0, tzinfo=UTC).timestamp())
MARCH_1 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
XSPF = "{http://xspf.org/ns/0/}"
XSS = "<img src=x onerror=alert(1)>"
HOSTILE = f'Ça & "co" \'q\' {XSS}\nsecond line ✓ 🎵'


class Library:
    """Builds artists, albums, tracks, listens and collection items row by row, and remembers them."""

    def __init__(self):
        self.artists, self.albums, self.tracks, self.plays, self._uts = {}, {}, {}, [], set()

    def artist(self, name):
        if name not in self.artists:
            row = Artist(name=name, name_key=name_key(name))
            db.session.add(row)
            db.session.flush()
            self.artists[name] = row.id
        return self.artists[name]

    def album(self, artist, title):
        if (artist, title) not in self.albums:
            row = Album(artist_id=self.artist(artist), title=title, title_key=name_key(title))
            db.session.add(row)
            db.session.flush()
            self.albums[(artist, title)] = row.id
        return self.albums[(artist, title)]

    def track(self, artist, title):
        if (artist, title) not in self.tracks:
            row = Track(artist_id=self.artist(artist), title=title, title_key=name_key(title))
            db.session.add(row)
            db.session.flush()
            self.tracks[(artist, title)] = row.id
        return self.tracks[(artist, title)]

    def listen(self, artist, title, played_at, album=None):
        while (played_at, artist, title) in self._uts:
            played_at += 1
        self._uts.add((played_at, artist, title))
        db.session.add(Listen(played_at=played_at, artist_key=name_key(artist), title_key=name_key(title),
                              artist_id=self.artist(artist), track_id=self.track(artist, title),
                              album_id=self.album(artist, album) if album else None, source="test"))
        self.plays.append((artist, title, album, played_at))

    def record(self, artist, title, instance_id, year=None, date_added=None, linked=True):
        db.session.add(CollectionItem(instance_id=instance_id, release_id=instance_id, artist=artist, title=title,
                                      year=year, date_added=date_added,
                                      album_id=self.album(artist, title) if linked else None))

    def done(self):
        db.session.commit()
        return self


def expected_top(plays, tracks, start, end, count):
    """The ranking as the generator promises it: plays, then the latest play, then track id."""
    window = [p for p in plays if start <= p[3] <= end]
    counts = Counter((a, t) for a, t, _al, _p in window)
    last = {}
    album = {}
    for a, t, al, p in sorted(window, key=lambda p: p[3]):
        last[(a, t)] = p
        if al:
            album[(a, t)] = al
    order = sorted(counts, key=lambda k: (-counts[k], -last[k], tracks[k]))[:count]
    return [(a, t, album.get((a, t))) for a, t in order]


def names(items):
    return [(i["artist"], i["title"], i["album"]) for i in items]


# ----------------------------------------------------------------------------- generators


@pytest.fixture
def history(app):
    """About 600 listens of 14 tracks over five months, in a pseudo-random but fixed pattern."""
    rng = random.Random(7)
    songs = [(f"Artist {i % 5}", f"Song {i}") for i in range(14)]
    with app.app_context():
        lib = Library()
        for n in range(600):
            index = rng.randrange(4 + n % 10)  # early songs are played more
            artist, title = songs[index]
            album = rng.choice([None, f"Album {title[-1]}", f"Live {title[-1]}"])
            # Songs 9 and up were last played three months ago or more.
            ago = rng.randrange(150 * DAY) if index < 9 else 90 * DAY + rng.randrange(60 * DAY)
            lib.listen(artist, title, NOW - ago, album)
        lib.listen("Artist 0", "Future", NOW + DAY)  # after "now": outside every window
        yield lib.done()


@pytest.mark.parametrize("period, start", [("month", MARCH_1), ("30days", NOW - 30 * DAY)])
def test_top_tracks_of_the_month_and_of_30_days(app, history, period, start):
    with app.app_context():
        name, items, params = playlists.generate("this_month_top", {"count": 8, "period": period}, now=NOW)
    assert params == {"count": 8, "period": period}
    assert names(items) == expected_top(history.plays, history.tracks, start, NOW, 8)
    assert all(i["track_id"] == history.tracks[(i["artist"], i["title"])] for i in items)
    assert all(i["album_id"] == (history.albums[(i["artist"], i["album"])] if i["album"] else None) for i in items)
    assert ("March 2026" in name) if period == "month" else ("2026-03-15" in name)


def test_top_defaults_and_a_quiet_month(app):
    with app.app_context():
        lib = Library()
        for n in range(30):
            lib.listen("A", f"T{n}", MARCH_1 + n * 3600)
        lib.listen("A", "Old", MARCH_1 - 1)  # February: not this month
        lib.done()
        _name, items, params = playlists.generate("this_month_top", {}, now=NOW)
        assert params == {"count": 25, "period": "month"} and len(items) == 25
        assert "Old" not in [i["title"] for i in items]
        with pytest.raises(playlists.NothingFound, match=r"No listens this month yet \(since 2026-04-01\)"):
            playlists.generate("this_month_top", {}, now=NOW + 30 * DAY)


def test_forgotten_favourites(app):
    cutoff = NOW - 365 * DAY
    with app.app_context():
        lib = Library()
        for n in range(12):
            lib.listen("Old Love", "Twelve plays", cutoff - 400 * DAY + n * DAY, "First")
        for n in range(20):
            lib.listen("Old Love", "Twenty plays", cutoff - 100 * DAY + n * DAY)
        for n in range(10):  # exactly the threshold, last play one second before the cutoff
            lib.listen("Edge", "Ten plays", cutoff - 1 - n * DAY)
        for n in range(10):  # last play exactly at the cutoff: played within the last 365 days
            lib.listen("Edge", "At the cutoff", cutoff - n * DAY)
        for n in range(9):
            lib.listen("Few", "Nine plays", cutoff - 50 * DAY - n)
        for n in range(30):  # many plays, one of them recent
            lib.listen("Still", "Loved", cutoff - 200 * DAY + n * DAY)
        lib.listen("Still", "Loved", NOW - DAY)
        lib.done()
        name, items, params = playlists.generate("forgotten_favourites", {}, now=NOW)
        assert params == {"count": 50, "min_plays": 10, "away_days": 365} and name == "Forgotten favourites"
        assert names(items) == [("Old Love", "Twenty plays", None), ("Old Love", "Twelve plays", "First"),
                                ("Edge", "Ten plays", None)]
        _n, items, _p = playlists.generate("forgotten_favourites", {"min_plays": "9", "count": "2"}, now=NOW)
        assert [i["title"] for i in items] == ["Twenty plays", "Twelve plays"]
        _n, items, _p = playlists.generate("forgotten_favourites", {"min_plays": 9}, now=NOW)
        assert [i["title"] for i in items] == ["Twenty plays", "Twelve plays", "Ten plays", "Nine plays"]
        with pytest.raises(playlists.NothingFound, match="21 plays or more"):
            playlists.generate("forgotten_favourites", {"min_plays": 21}, now=NOW)


def test_forgotten_favourites_on_random_history(app, history):
    with app.app_context():
        _n, items, _p = playlists.generate("forgotten_favourites", {"min_plays": 5, "away_days": 60, "count": 500},
                                           now=NOW)
    counts = Counter((a, t) for a, t, _al, _p in history.plays)
    last = {}
    for a, t, _al, p in history.plays:
        last[(a, t)] = max(last.get((a, t), 0), p)
    wanted = [k for k in counts if counts[k] >= 5 and last[k] < NOW - 60 * DAY]
    wanted.sort(key=lambda k: (-counts[k], -last[k], history.tracks[k]))
    assert len(wanted) >= 3
    assert [(i["artist"], i["title"]) for i in items] == wanted


def test_records_never_played(app):
    with app.app_context():
        lib = Library()
        lib.listen("Played", "Heard", NOW - DAY, "Heard record")
        lib.record("Played", "Heard record", 1, 1970, "2020-01-01T00:00:00-08:00")
        lib.record("Zed", "Never", 2, 1999, "2021-05-01T00:00:00+02:00")
        lib.record("Zed", "Never", 3, 1999, "2019-01-01T00:00:00+00:00")  # a second copy: one entry
        lib.record("Abba", "Silent", 4, 1975, "2020-01-01T10:00:00+00:00")
        lib.record("Moon", "Unlinked", 5, None, None, linked=False)
        lib.listen("Abba", "Some song", NOW - DAY, "Another record")  # the artist is played, not this record
        lib.done()
        name, items, params = playlists.generate("unplayed_records", {}, now=NOW)
        assert params == {"count": 30, "order": "added"} and name == "Owned records never played"
        # Longest on the shelf first (the second copy of "Never" was added in 2019), undated last.
        assert names(items) == [("Zed", "Never", "Never"), ("Abba", "Silent", "Silent"),
                                ("Moon", "Unlinked", "Unlinked")]
        assert items[0]["album_id"] == lib.albums[("Zed", "Never")] and items[0]["track_id"] is None
        assert items[2]["album_id"] is None
        by = {order: [i["artist"] for i in playlists.generate("unplayed_records", {"order": order}, now=NOW)[1]]
              for order in ("artist", "year")}
        assert by == {"artist": ["Abba", "Moon", "Zed"], "year": ["Abba", "Zed", "Moon"]}
        assert len(playlists.generate("unplayed_records", {"count": 1}, now=NOW)[1]) == 1


def test_every_record_played_and_empty_shelf(app):
    with app.app_context():
        with pytest.raises(playlists.NothingFound, match="record shelf is empty") as empty:
            playlists.generate("unplayed_records", {}, now=NOW)
        assert empty.value.link_endpoint == "pages.settings"
        lib = Library()
        lib.listen("A", "x", NOW, "Rec")
        lib.record("A", "Rec", 1)
        lib.done()
        with pytest.raises(playlists.NothingFound, match="played at least once"):
            playlists.generate("unplayed_records", {}, now=NOW)


@pytest.mark.parametrize("kind", ["this_month_top", "forgotten_favourites"])
def test_no_listens_says_import_first(app, client, kind):
    with app.app_context():
        with pytest.raises(playlists.NothingFound, match="You have no listens yet: import your Last.fm history first"):
            playlists.generate(kind, {})
    r = client.post("/api/v1/playlists", json={"kind": kind})
    assert r.status_code == 422 and r.get_json() == {
        "error": "You have no listens yet: import your Last.fm history first.", "link": "/settings"}
    page = client.post("/playlists/generate", data={"kind": kind})
    text = page.get_data(as_text=True)
    assert page.status_code == 422 and "import your Last.fm history first" in text
    assert re.search(r'<a class="button" href="/settings">Import your history</a>', text)
    assert client.get("/api/v1/playlists").get_json()["items"] == []


# ----------------------------------------------------------------------------- API


@pytest.fixture
def small(app):
    """A few listens of the last hour (the API's generators run at the real time)."""
    now = int(time.time())
    with app.app_context():
        lib = Library()
        for n, title in enumerate(["One", "Two", "Three"]):
            for k in range(3 - n):
                lib.listen("Band", title, now - 600 - k * 60 - n, "LP")
        lib.listen(XSS, HOSTILE, now - 3000, HOSTILE)
        yield lib.done()


def create(client, **body):
    r = client.post("/api/v1/playlists", json={"kind": "this_month_top", "params": {"period": "30days"}, **body})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_api_create_get_patch_delete(small, client):
    made = create(client)
    assert [i["title"] for i in made["items"]] == ["One", "Two", "Three", HOSTILE]  # 3, 2, 1, 1 (latest first)
    assert made["kind"] == "this_month_top" and made["params"] == {"count": 25, "period": "30days"}
    assert made["item_count"] == 4 and made["exports"]["xspf"] == f"/playlists/{made['id']}.xspf"
    pid = made["id"]
    assert client.get(f"/api/v1/playlists/{pid}").get_json()["items"] == made["items"]
    assert [p["id"] for p in client.get("/api/v1/playlists").get_json()["items"]] == [pid]

    items = made["items"]
    reordered = [items[2], items[0], {"track_id": small.tracks[("Band", "Two")]},
                 {"artist": "Someone", "title": "By hand", "duration": 215}]
    r = client.patch(f"/api/v1/playlists/{pid}", json={"name": "  Renamed ✓ ", "items": reordered})
    body = r.get_json()
    assert r.status_code == 200 and body["name"] == "Renamed ✓"
    assert [(i["position"], i["title"], i["duration"]) for i in body["items"]] == [
        (0, "Three", None), (1, "One", None), (2, "Two", None), (3, "By hand", 215)]
    assert body["items"][2]["album"] == "LP" and body["items"][2]["artist"] == "Band"  # from its latest play
    assert client.get(f"/api/v1/playlists/{pid}").get_json() == body

    assert client.delete(f"/api/v1/playlists/{pid}").status_code == 204
    assert client.get(f"/api/v1/playlists/{pid}").status_code == 404
    assert client.get("/api/v1/playlists").get_json()["items"] == []
    with client.application.app_context():
        assert db.session.query(PlaylistItem).count() == 0


def test_manual_playlist_and_generators_listing(small, client):
    r = client.post("/api/v1/playlists", json={"kind": "manual", "name": "Mine", "items": [
        {"artist": "X", "title": "Y", "album": "Z", "duration": 61}]})
    assert r.status_code == 201 and r.get_json()["items"][0]["album"] == "Z"
    kinds = [g["kind"] for g in client.get("/api/v1/playlists/generators").get_json()["items"]]
    assert kinds == ["this_month_top", "forgotten_favourites", "unplayed_records"]
    found = client.get("/api/v1/playlists/tracks?q=BAND").get_json()["items"]
    assert [(t["title"], t["plays"]) for t in found] == [("One", 3), ("Two", 2), ("Three", 1)]
    assert client.get("/api/v1/playlists/tracks?q=%25").get_json()["items"] == []  # LIKE wildcards are text


@pytest.mark.parametrize("body, message", [
    ({"kind": "nope"}, "kind must be one of"),
    ({}, "kind must be one of"),
    ({"kind": "this_month_top", "params": {"count": 0}}, "count must be between 1 and 500"),
    ({"kind": "this_month_top", "params": {"count": "many"}}, "count must be a whole number"),
    ({"kind": "this_month_top", "params": {"count": True}}, "count must be a whole number"),
    ({"kind": "this_month_top", "params": {"period": "year"}}, "period must be one of: month, 30days"),
    ({"kind": "this_month_top", "params": {"colour": 1}}, "unknown parameter colour"),
    ({"kind": "this_month_top", "params": [1]}, "params must be an object"),
    ({"kind": "this_month_top", "name": ""}, "name must not be empty"),
    ({"kind": "this_month_top", "name": "x" * 201}, "longer than 200"),
    ({"kind": "this_month_top", "items": []}, "items can only be given with kind manual"),
    ({"kind": "manual", "items": []}, "name is required"),
    ({"kind": "manual", "name": "m", "params": {"count": 3}}, "params can only be given with a generator"),
    ({"kind": "manual", "name": "m", "items": [{"title": "no artist"}]}, "items[0].artist is required"),
])
def test_api_create_bad_input_is_400(small, client, body, message):
    r = client.post("/api/v1/playlists", json=body)
    assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()
    assert client.get("/api/v1/playlists").get_json()["items"] == []


def test_api_create_needs_a_json_object(small, client):
    for data, kind in (("not json", "application/json"), ("[1]", "application/json"), ("kind=x", "text/plain")):
        r = client.post("/api/v1/playlists", data=data, content_type=kind)
        assert r.status_code == 400 and r.get_json()["error"] == "the body must be a JSON object"


@pytest.mark.parametrize("body, message", [
    ({"name": None}, "name is required"),
    ({"name": "   "}, "name must not be empty"),
    ({"name": "a\x00b"}, "NUL"),
    ({"name": 5}, "name must be text"),
    ({"kind": "manual"}, "only name and items can be changed, not kind"),
    ({"items": {"a": 1}}, "items must be a list"),
    ({"items": [1]}, "items[0] must be an object"),
    ({"items": [{"track_id": 999999}]}, "items[0]: no track 999999"),
    ({"items": [{"artist": "a", "title": "b", "album_id": 999999}]}, "no album 999999"),
    ({"items": [{"artist": "a", "title": "b", "duration": -1}]}, "items[0].duration must be a whole number"),
    ({"items": [{"artist": "a", "title": "b", "duration": "3:00"}]}, "items[0].duration"),
    ({"items": [{"artist": "a", "titel": "b"}]}, "unknown fields titel"),
    ({"items": [{"artist": "a", "title": ""}]}, "items[0].title must not be empty"),
    ({"items": [{"artist": "a", "title": "b"}] * 1001}, "at most 1000 items"),
])
def test_api_patch_bad_input_is_400_and_keeps_the_playlist(small, client, body, message):
    made = create(client)
    r = client.patch(f"/api/v1/playlists/{made['id']}", json=body)
    assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()
    assert client.get(f"/api/v1/playlists/{made['id']}").get_json() == made


def test_api_patch_lone_surrogate_is_400(small, client):
    made = create(client)
    r = client.patch(f"/api/v1/playlists/{made['id']}", data='{"name": "a\\ud800b"}', content_type="application/json")
    assert r.status_code == 400 and "not valid Unicode" in r.get_json()["error"]


def test_unknown_playlists_are_404(app, client):
    for method, path in [("get", "/api/v1/playlists/7"), ("patch", "/api/v1/playlists/7"),
                         ("delete", "/api/v1/playlists/7")]:
        r = getattr(client, method)(path, json={"name": "x"})
        assert r.status_code == 404 and r.get_json() == {"error": "no playlist 7"}
    for path in ["/playlists/7", "/playlists/7.m3u", "/playlists/7.xspf", "/playlists/7.csv", "/playlists/7/delete"]:
        assert client.get(path).status_code == 404
    for path in ["/playlists/7/rename", "/playlists/7/items/0/move", "/playlists/7/items/0/remove",
                 "/playlists/7/items", "/playlists/7/delete"]:
        assert client.post(path, data={"name": "x"}).status_code == 404


# ----------------------------------------------------------------------------- pages


def page_version(client, pid):
    return re.search(r'name="version" value="([^"]+)"', client.get(f"/playlists/{pid}").get_data(as_text=True))[1]


def titles(client, pid):
    return [i["title"] for i in client.get(f"/api/v1/playlists/{pid}").get_json()["items"]]


def test_generate_and_edit_through_the_pages(small, client):
    assert "No playlists yet" in client.get("/playlists").get_data(as_text=True)
    r = client.post("/playlists/generate", data={"kind": "this_month_top", "count": "3", "period": "30days"})
    assert r.status_code == 303
    pid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert titles(client, pid) == ["One", "Two", "Three"]

    v = page_version(client, pid)
    r = client.post(f"/playlists/{pid}/items/0/move", data={"direction": "down", "version": v})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/playlists/{pid}?focus=down-1")
    assert titles(client, pid) == ["Two", "One", "Three"]
    assert 'autofocus' in client.get(f"/playlists/{pid}?focus=down-1").get_data(as_text=True)
    client.post(f"/playlists/{pid}/items/2/move", data={"direction": "up", "version": page_version(client, pid)})
    assert titles(client, pid) == ["Two", "Three", "One"]
    client.post(f"/playlists/{pid}/items/0/move", data={"direction": "up", "version": page_version(client, pid)})
    assert titles(client, pid) == ["Two", "Three", "One"]  # the first stays first

    client.post(f"/playlists/{pid}/items/1/remove", data={"version": page_version(client, pid)})
    assert titles(client, pid) == ["Two", "One"]
    assert "Removed “Three”." in client.get(f"/playlists/{pid}").get_data(as_text=True)

    search = client.get(f"/playlists/{pid}?q=thr").get_data(as_text=True)
    assert 'id="search-results"' in search and "Three" in search
    assert "No track of your listens matches" in client.get(f"/playlists/{pid}?q=zzz").get_data(as_text=True)
    client.post(f"/playlists/{pid}/items", data={"track_id": small.tracks[("Band", "Three")],
                                                 "version": page_version(client, pid)})
    assert titles(client, pid) == ["Two", "One", "Three"]

    client.post(f"/playlists/{pid}/rename", data={"name": "Évening <mix>", "version": page_version(client, pid)})
    assert client.get(f"/api/v1/playlists/{pid}").get_json()["name"] == "Évening <mix>"

    confirm = client.get(f"/playlists/{pid}/delete")
    assert confirm.status_code == 200 and "Delete this playlist?" in confirm.get_data(as_text=True)
    assert client.get(f"/api/v1/playlists/{pid}").status_code == 200  # asking is not deleting
    r = client.post(f"/playlists/{pid}/delete")
    assert r.status_code == 303 and r.headers["Location"].endswith("/playlists")
    assert "Deleted the playlist “Évening &lt;mix&gt;”." in client.get("/playlists").get_data(as_text=True)
    assert client.get(f"/api/v1/playlists/{pid}").status_code == 404


def test_page_edits_refuse_bad_or_stale_input_and_keep_the_playlist(small, client):
    made = create(client)
    pid = made["id"]
    v = page_version(client, pid)
    cases = [
        (f"/playlists/{pid}/rename", {"name": "  ", "version": v}, 400, "The name was not changed"),
        (f"/playlists/{pid}/items/9/move", {"direction": "up", "version": v}, 400, "no item at position 9"),
        (f"/playlists/{pid}/items/0/move", {"direction": "sideways", "version": v}, 400, "direction must be up or down"),
        (f"/playlists/{pid}/items/9/remove", {"version": v}, 400, "no item at position 9"),
        (f"/playlists/{pid}/items", {"track_id": "999999", "version": v}, 400, "not among your listens"),
        (f"/playlists/{pid}/items", {"track_id": "abc", "version": v}, 400, "not among your listens"),
        (f"/playlists/{pid}/items/0/remove", {"version": "1.5"}, 409, "changed since the page was loaded"),
    ]
    for path, data, status, message in cases:
        r = client.post(path, data=data)
        assert r.status_code == status and message in r.get_data(as_text=True), (path, data)
        assert client.get(f"/api/v1/playlists/{pid}").get_json() == made


def test_generate_form_bad_parameters_are_400(small, client):
    r = client.post("/playlists/generate", data={"kind": "this_month_top", "count": "0"})
    assert r.status_code == 400 and "count must be between 1 and 500" in r.get_data(as_text=True)
    assert 'value="0"' in r.get_data(as_text=True)  # the form keeps what was typed
    r = client.post("/playlists/generate", data={"kind": "bogus"})
    assert r.status_code == 400 and "kind must be one of" in r.get_data(as_text=True)
    assert client.get("/api/v1/playlists").get_json()["items"] == []


def test_hostile_names_are_escaped_on_every_page(small, client):
    made = create(client, name=HOSTILE)
    pid = made["id"]
    pages = [client.get("/playlists"), client.get(f"/playlists/{pid}"), client.get(f"/playlists/{pid}/delete"),
             client.get(f"/playlists/{pid}?q=img")]
    for r in pages:
        text = r.get_data(as_text=True)
        assert r.status_code == 200
        assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "Add “Ça &amp; &#34;co&#34;" in pages[3].get_data(as_text=True)  # attributes too


# ----------------------------------------------------------------------------- exports


@pytest.fixture
def hostile_playlist(small, client):
    items = [{"artist": XSS, "title": HOSTILE, "album": "A\x01lbum & <b>", "duration": 215},
             {"artist": "#EXTM3U", "title": "plain", "album": None},
             {"track_id": small.tracks[("Band", "One")]}]
    r = client.post("/api/v1/playlists", json={"kind": "manual", "name": f'../{HOSTILE}\r\n"x";y', "items": items})
    assert r.status_code == 201
    return r.get_json()


def test_xspf_parses_back_with_its_namespace(client, hostile_playlist):
    r = client.get(f"/playlists/{hostile_playlist['id']}.xspf")
    assert r.status_code == 200 and r.mimetype == "application/xspf+xml"
    root = ET.fromstring(r.data)
    assert root.tag == XSPF + "playlist" and root.get("version") == "1"
    # XML parsers read a CR LF line end as LF; everything else comes back as it was.
    assert root.findtext(XSPF + "title") == hostile_playlist["name"].replace("\r\n", "\n")
    assert root.findtext(XSPF + "creator") == "Sillon"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", root.findtext(XSPF + "date"))
    # XSPF 1: only the spec's elements, one trackList, tracks' children from the track element's list.
    playlist_children = {"title", "creator", "annotation", "info", "location", "identifier", "image", "date",
                         "license", "attribution", "link", "meta", "extension", "trackList"}
    track_children = {"location", "identifier", "title", "creator", "annotation", "info", "image", "album",
                      "trackNum", "duration", "link", "meta", "extension"}
    assert {child.tag.removeprefix(XSPF) for child in root} <= playlist_children
    assert len(root.findall(XSPF + "trackList")) == 1
    for track in root.iter(XSPF + "track"):
        assert {child.tag.removeprefix(XSPF) for child in track} <= track_children
        assert all(child.text.isdigit() for child in track.findall(XSPF + "duration"))
    tracks = root.findall(f"{XSPF}trackList/{XSPF}track")
    got = [(t.findtext(XSPF + "creator"), t.findtext(XSPF + "title"), t.findtext(XSPF + "album"),
            t.findtext(XSPF + "duration"), t.find(XSPF + "location")) for t in tracks]
    assert got == [(XSS, HOSTILE, "Album & <b>", "215000", None),  # \x01 cannot be XML: dropped
                   ("#EXTM3U", "plain", None, None, None),
                   ("Band", "One", "LP", None, None)]


def test_csv_parses_back(client, hostile_playlist):
    r = client.get(f"/playlists/{hostile_playlist['id']}.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows == [["artist", "title", "album", "duration"], [XSS, HOSTILE, "A\x01lbum & <b>", "215"],
                    ["#EXTM3U", "plain", "", ""], ["Band", "One", "LP", ""]]


def test_m3u_lines(client, hostile_playlist):
    r = client.get(f"/playlists/{hostile_playlist['id']}.m3u")
    assert r.status_code == 200 and r.mimetype == "audio/x-mpegurl"
    lines = r.get_data(as_text=True).split("\n")
    flat = HOSTILE.replace("\n", " ")
    assert lines == ["#EXTM3U", "#PLAYLIST:" + re.sub(r"\r?\n", " ", hostile_playlist["name"]),
                     f"#EXTINF:215,{XSS} - {flat}", "#EXTALB:A\x01lbum & <b>", f"{XSS} - {flat}",
                     "#EXTINF:-1,#EXTM3U - plain", "./#EXTM3U - plain",
                     "#EXTINF:-1,Band - One", "#EXTALB:LP", "Band - One", ""]


def test_download_names_are_sanitised(client, hostile_playlist):
    for ext in ("m3u", "xspf", "csv"):
        header = client.get(f"/playlists/{hostile_playlist['id']}.{ext}").headers["Content-Disposition"]
        assert "\n" not in header and "\r" not in header
        plain = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', header)
        assert plain, header
        assert plain[1] == f"Ca & co 'q' img src=x onerror=alert(1) second line x y.{ext}"
        assert unquote(plain[2]) == f"Ça & co 'q' img src=x onerror=alert(1) second line ✓ 🎵 x y.{ext}"
    assert playlist_formats.download_name("../..", "playlist-3") == ("playlist-3", "playlist-3")
    assert playlist_formats.download_name("Plain name", "f") == ("Plain name", "Plain name")


def test_items_keep_their_names_when_tracks_change(app, small, client):
    made = create(client)
    with app.app_context():
        track = db.session.get(Track, small.tracks[("Band", "One")])
        track.title = "Renamed later"
        db.session.commit()
    assert titles(client, made["id"])[0] == "One"
    with app.app_context():
        assert db.session.query(Playlist).count() == 1


def test_an_empty_playlist_exports_and_shows_its_empty_state(app, client):
    r = client.post("/api/v1/playlists", json={"kind": "manual", "name": "Nothing yet"})
    assert r.status_code == 201 and r.get_json()["items"] == []
    pid = r.get_json()["id"]
    assert "This playlist is empty" in client.get(f"/playlists/{pid}").get_data(as_text=True)
    assert client.get(f"/playlists/{pid}.m3u").get_data(as_text=True) == "#EXTM3U\n#PLAYLIST:Nothing yet\n"
    assert client.get(f"/playlists/{pid}.csv").get_data(as_text=True).splitlines() == ["artist,title,album,duration"]
    root = ET.fromstring(client.get(f"/playlists/{pid}.xspf").data)
    assert root.find(XSPF + "trackList") is not None and root.findall(f"{XSPF}trackList/{XSPF}track") == []
