"""The Last.fm emulator, driven by the real pylast library (never the real Last.fm)."""
from __future__ import annotations

import threading
import time
import types

import httpx2 as httpx
import pylast
import pytest

from tests.emulators.lastfm import EmulatorTransport, LastfmEmulator, generate_listens

T0 = 1_700_000_000

TRICKY = [
    {"uts": T0 + 10, "artist": "Sigur Rós", "title": "Hoppípolla", "album": "Takk…"},
    {"uts": T0 + 20, "artist": "坂本龍一", "title": "戦場のメリークリスマス", "album": "音楽図鑑"},
    {"uts": T0 + 30, "artist": "🎸 Guitar Hero 🔥", "title": "Smile 😀 now", "album": "Emoji 🎵"},
    {"uts": T0 + 40, "artist": "AC/DC & <Friends>", "title": 'Say "Hello" & <Bye>', "album": "Rock & Roll <Live>"},
    {"uts": T0 + 50, "artist": "Beyoncé", "title": "Déjà Vu", "album": "B'Day", "artist_mbid": "859d0860-d480-4efd-970c-c05d5f1776b8",
     "mbid": "track-mbid", "album_mbid": "album-mbid"},
]


@pytest.fixture
def fm():
    with LastfmEmulator() as emulator:
        yield emulator


@pytest.fixture
def network(fm):
    return fm.network()


def raw(network, method, **params):
    """One request through pylast's own _Request (no retry, no cache): the parsed minidom document."""
    return pylast._Request(network, method, params).execute()


def recenttracks(doc):
    node = doc.getElementsByTagName("recenttracks")[0]
    return node, node.getElementsByTagName("track")


def ws_error(callable_, *args, **kwargs) -> pylast.WSError:
    with pytest.raises(pylast.WSError) as info:
        callable_(*args, **kwargs)
    return info.value


def test_url_and_transport_route_pylast_to_the_emulator(fm, network):
    assert fm.url == f"http://127.0.0.1:{fm.port}/2.0/"
    assert network.ws_server == ("ws.audioscrobbler.com", "/2.0/")  # pylast still believes it talks to Last.fm
    assert isinstance(network.proxy["https://"], EmulatorTransport)  # passed through unchanged
    network.get_user("rj").get_playcount()
    assert fm.count("user.getInfo") == 1


def test_user_playcount_and_info(fm, network):
    fm.add_listens("rj", generate_listens(123, T0))
    user = network.get_user("RJ")  # names are case-insensitive, like on Last.fm
    assert user.get_playcount() == 123
    assert user.get_name(properly_capitalized=True) == "rj"
    assert user.get_unixtime_registered() == 1037793040
    assert user.get_country() is None  # Last.fm says "None"
    fm.set_playcount("rj", 5000)
    assert user.get_playcount() == 5000


def test_recent_tracks_names_are_escaped_and_decoded(fm, network):
    fm.add_listens("rj", TRICKY)
    played = network.get_user("rj").get_recent_tracks(limit=10)
    expected = sorted(TRICKY, key=lambda listen: -listen["uts"])
    assert [(p.track.artist.name, p.track.title, p.album, p.timestamp) for p in played] == [
        (listen["artist"], listen["title"], listen["album"], str(listen["uts"])) for listen in expected
    ]
    assert played[0].playback_date == "14 Nov 2023, 22:14"
    # the raw document carries the mbids, url and 4 image sizes
    track = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=1))[1][0]
    assert track.getElementsByTagName("artist")[0].getAttribute("mbid") == "859d0860-d480-4efd-970c-c05d5f1776b8"
    assert track.getElementsByTagName("album")[0].getAttribute("mbid") == "album-mbid"
    assert track.getElementsByTagName("mbid")[0].firstChild.data == "track-mbid"
    assert track.getElementsByTagName("url")[0].firstChild.data == "https://www.last.fm/music/Beyonc%C3%A9/_/D%C3%A9j%C3%A0+Vu"
    assert [i.getAttribute("size") for i in track.getElementsByTagName("image")] == ["small", "medium", "large", "extralarge"]


def test_pylast_text_quirks(fm, network):
    """pylast strips surrounding spaces, html-unescapes text a second time, and gives None for an empty album."""
    fm.add_listens("rj", [{"uts": T0, "artist": "Tom &amp; Jerry", "title": "  padded  ", "album": ""}])
    (played,) = network.get_user("rj").get_recent_tracks(limit=1)
    assert (played.track.artist.name, played.track.title, played.album) == ("Tom & Jerry", "padded", None)


def test_time_range_is_inclusive_on_both_ends(fm, network):
    fm.add_listens("rj", [{"uts": T0 + i, "artist": "A", "title": f"t{i}"} for i in range(10)])
    played = network.get_user("rj").get_recent_tracks(limit=None, time_from=T0 + 2, time_to=T0 + 5)
    assert [int(p.timestamp) for p in played] == [T0 + 5, T0 + 4, T0 + 3, T0 + 2]
    node, _ = recenttracks(raw(network, "user.getRecentTracks", user="rj", **{"from": T0 + 2, "to": T0 + 5}))
    assert node.getAttribute("total") == "4"


def test_time_range_exclusive_switches():
    with LastfmEmulator(from_inclusive=False, to_inclusive=False) as fm:
        fm.add_listens("rj", [{"uts": T0 + i, "artist": "A", "title": f"t{i}"} for i in range(10)])
        played = fm.network().get_user("rj").get_recent_tracks(limit=None, time_from=T0 + 2, time_to=T0 + 5)
        assert [int(p.timestamp) for p in played] == [T0 + 4, T0 + 3]


def test_same_second_listens_page_in_a_stable_order(fm, network):
    listens = generate_listens(25, T0, step_seconds=30, same_second_every=3)
    fm.add_listens("rj", listens)
    assert sum(1 for a, b in zip(listens, listens[1:], strict=False) if a["uts"] == b["uts"]) == 8
    expected = [listen["title"] for listen in reversed(listens)]  # newest first; same second: last added first
    assert [listen["title"] for listen in fm.listens("rj")] == expected
    seen = []
    for page in range(1, 6):
        node, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=6, page=page))
        assert (node.getAttribute("page"), node.getAttribute("totalPages"), node.getAttribute("total")) == (str(page), "5", "25")
        seen += [t.getElementsByTagName("name")[0].firstChild.data for t in tracks]
    assert seen == expected
    played = network.get_user("rj").get_recent_tracks(limit=None)  # pylast's own paging (50 a page)
    assert [p.track.title for p in played] == expected


def test_raw_page_fetch_with_to(fm, network):
    listens = generate_listens(700, T0)  # one a minute
    fm.add_listens("rj", listens)
    cutoff = listens[599]["uts"]  # 600 listens at or before `to`
    node, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=200, page=2, to=cutoff))
    attrs = {name: node.getAttribute(name) for name in ("user", "page", "perPage", "totalPages", "total")}
    assert attrs == {"user": "rj", "page": "2", "perPage": "200", "totalPages": "3", "total": "600"}
    uts = [int(t.getElementsByTagName("date")[0].getAttribute("uts")) for t in tracks]
    assert uts == [listen["uts"] for listen in reversed(listens[200:400])]
    node, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=5000, page=9))
    assert (node.getAttribute("perPage"), node.getAttribute("totalPages"), len(tracks)) == ("200", "4", 0)
    node, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=0))
    assert (node.getAttribute("perPage"), len(tracks)) == ("50", 50)


def test_now_playing_is_in_raw_page_one_but_skipped_by_pylast(fm, network):
    fm.add_listens("rj", generate_listens(30, T0))
    fm.set_now_playing("rj", {"artist": "Live & <Loud>", "title": "Now 🎶", "album": "Ö"})
    _, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=10))
    assert len(tracks) == 11  # the now-playing row comes on top of `limit` dated rows
    assert tracks[0].getAttribute("nowplaying") == "true"
    assert not tracks[0].getElementsByTagName("date")
    assert all(not t.hasAttribute("nowplaying") for t in tracks[1:])
    _, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=10, page=2))
    assert len(tracks) == 10 and not tracks[0].hasAttribute("nowplaying")
    _, tracks = recenttracks(raw(network, "user.getRecentTracks", user="rj", limit=10, to=T0 + 3600))
    assert not tracks[0].hasAttribute("nowplaying")  # a bounded `to` hides it

    user = network.get_user("rj")
    played = user.get_recent_tracks(limit=10)
    assert len(played) == 10 and all(p.timestamp is not None for p in played)
    with_np = user.get_recent_tracks(limit=3, now_playing=True)
    assert (with_np[0].track.title, with_np[0].timestamp, len(with_np)) == ("Now 🎶", None, 3)
    assert str(user.get_now_playing()) == "Live & <Loud> - Now 🎶"
    fm.set_now_playing("rj", None)
    assert user.get_now_playing() is None


@pytest.mark.parametrize(
    ("code", "http_status"),
    [(8, 400), (11, 400), (16, 400), (29, 429)],
)
def test_injected_error_codes_surface_as_wserror(fm, network, code, http_status):
    fm.fail_next(1, code=code)
    error = ws_error(network.get_user("rj").get_playcount)
    assert error.get_id() == str(code)  # pylast keeps Last.fm's code as a str
    fm.fail_next(1, code=code)
    response = httpx.post(fm.url, data={"method": "user.getInfo", "user": "rj", "api_key": "test-key"})
    assert response.status_code == http_status
    assert f'<error code="{code}">' in response.text
    assert network.get_user("rj").get_playcount() == 0  # the fault was used up


def test_natural_errors(fm, network):
    assert ws_error(raw, network, "user.getInfo", user="nobody").get_id() == "6"
    assert str(ws_error(raw, network, "user.getInfo", user="nobody")) == "User not found"
    assert ws_error(raw, fm.network(api_key="wrong"), "user.getInfo", user="rj").get_id() == "10"
    assert ws_error(raw, network, "user.getWeeklyChartList", user="rj").get_id() == "3"
    fm.add_user("hidden", private=True)
    assert raw(network, "user.getInfo", user="hidden")  # profile visible...
    error = ws_error(network.get_user("hidden").get_recent_tracks, limit=5)  # ...history is not; no retry for 17
    assert (error.get_id(), str(error)) == ("17", "Login: User required to be logged in")
    assert fm.count("user.getRecentTracks") == 1
    fm.suspend_key()
    assert ws_error(raw, network, "user.getInfo", user="rj").get_id() == "26"
    fm.suspend_key(False)
    assert raw(network, "user.getInfo", user="rj")


def test_http_errors_and_bad_bodies(fm, network):
    fm.fail_next(1, http_status=503)
    error = ws_error(network.get_user("rj").get_playcount)
    assert error.get_id() == 503  # an int here, unlike Last.fm codes
    fm.fail_next(1, code=8, http_status=500)  # an error document behind an HTTP 500: pylast never reads it
    assert ws_error(network.get_user("rj").get_playcount).get_id() == 500
    fm.fail_next(1, body="<html>not xml")
    with pytest.raises(pylast.MalformedResponseError):
        network.get_user("rj").get_playcount()


def test_faults_can_target_one_method(fm, network):
    fm.fail_next(2, code=16, method="user.getRecentTracks")
    user = network.get_user("rj")
    assert user.get_playcount() == 0  # user.getInfo is not affected
    assert ws_error(raw, network, "user.getRecentTracks", user="rj").get_id() == "16"
    assert fm.pending_faults == 1


def test_pylast_retries_transient_errors_in_paged_calls(fm, network, monkeypatch):
    sleeps = []
    monkeypatch.setattr(pylast, "time", types.SimpleNamespace(sleep=sleeps.append, time=time.time))
    fm.add_listens("rj", generate_listens(3, T0))
    user = network.get_user("rj")

    fm.fail_next(2, code=8)
    assert len(user.get_recent_tracks(limit=10)) == 3  # 3rd try succeeds
    assert (fm.count("user.getRecentTracks"), sleeps) == (3, [1, 1])

    fm.reset_counters()
    fm.fail_next(3, http_status=503)
    assert ws_error(user.get_recent_tracks, limit=10).get_id() == 503  # gives up after 3 tries
    assert fm.count() == 3

    fm.reset_counters()
    fm.fail_next(1, code=29)
    with pytest.raises(pylast.WSError):
        user.get_playcount()  # plain (non-paged) calls never retry
    assert fm.count() == 1


def test_latency_is_applied(fm, network):
    user = network.get_user("rj")
    fm.latency = 0.3
    started = time.monotonic()
    user.get_playcount()
    assert time.monotonic() - started >= 0.3


def test_max_in_flight_counts_concurrent_requests(fm, network):
    fm.latency = 0.3
    barrier = threading.Barrier(5)
    errors = []

    def worker():
        barrier.wait()
        try:
            network.get_user("rj").get_playcount()  # one network (and transport) shared by all threads
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert errors == []
    assert (fm.max_in_flight, fm.count(), fm.in_flight) == (5, 5, 0)
    fm.reset_counters()
    assert (fm.max_in_flight, fm.requests) == (0, [])


def test_rate_limit(fm, network):
    fm.rate_limit_per_second = 3
    outcomes = []
    for _ in range(5):
        try:
            raw(network, "user.getInfo", user="rj")
            outcomes.append("ok")
        except pylast.WSError as error:
            outcomes.append(error.get_id())
    assert outcomes == ["ok", "ok", "ok", "29", "29"]
    assert httpx.post(fm.url, data={"method": "user.getInfo", "user": "rj", "api_key": "test-key"}).status_code == 429
    fm.rate_limit_per_second = None
    assert raw(network, "user.getInfo", user="rj")


def test_requests_are_recorded(fm, network):
    network.get_user("rj").get_recent_tracks(limit=5, time_from=T0, time_to=T0 + 60)
    ((at, method, params),) = fm.requests
    assert at <= time.monotonic()
    assert method == "user.getRecentTracks"
    assert params == {"user": "rj", "limit": "6", "from": str(T0), "to": str(T0 + 60), "page": "1",
                      "api_key": "test-key", "method": "user.getRecentTracks"}  # pylast asks limit + 1


def test_album_and_track_info(fm, network):
    cover = "https://lastfm.freetls.fastly.net/i/u/300x300/abc.png"
    fm.add_listens("rj", [{"uts": T0, "artist": "Björk", "title": "Jóga", "album": "Homogenic", "image_url": cover,
                           "duration_ms": 305000},
                          {"uts": T0 + 1, "artist": "Björk", "title": "Bachelorette", "album": "Homogenic"}])
    album = network.get_album("björk", "homogenic")
    assert album.get_cover_image() == cover
    assert album.get_cover_image(pylast.SIZE_SMALL) == "https://lastfm.freetls.fastly.net/i/u/34s/abc.png"
    assert [t.title for t in album.get_tracks()] == ["Jóga", "Bachelorette"]
    assert album.get_userplaycount() == 2
    error = ws_error(network.get_album("Björk", "Vespertine").get_cover_image)
    assert (error.get_id(), str(error)) == ("6", "Album not found")
    assert network.get_track("Björk", "Jóga").get_duration() == 305000
    assert ws_error(network.get_track("Björk", "Hyperballad").get_duration).get_id() == "6"
    fm.add_album("Björk", "Vespertine", cover)
    assert network.get_album("Björk", "Vespertine").get_cover_image() == cover


def test_generate_listens_is_deterministic():
    first = generate_listens(10, T0, step_seconds=10, same_second_every=4)
    assert first == generate_listens(10, T0, step_seconds=10, same_second_every=4)
    assert [listen["uts"] - T0 for listen in first] == [0, 10, 20, 20, 30, 40, 50, 50, 60, 70]
    assert len({listen["title"] for listen in first}) == 10
