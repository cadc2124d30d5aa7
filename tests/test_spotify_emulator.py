"""The Spotify emulator driven by the real spotipy 2.26 (and by raw requests for the wire details).

Also pins spotipy's own retry behaviour, which the app inherits:

* ``spotipy.Spotify`` mounts a urllib3 ``Retry(total=retries, status=status_retries, read=False,
  backoff_factor=0.3, status_forcelist=(429, 500, 502, 503, 504), allowed_methods={GET, POST, PUT, DELETE})``
  (``retries`` = ``status_retries`` = 3 by default). urllib3 sleeps for the Retry-After header when it is
  present (429/413/503, whole seconds or an HTTP date, capped only by ``retry_after_max`` = 6 hours), else
  ``backoff_factor * 2 ** (n - 1)`` from the second retry on (0, 0.6, 1.2 s). When retries run out spotipy
  raises ``SpotifyException(http_status=429, msg="...Max Retries")`` WHATEVER the status (500s too) and
  without the response headers.
* ``SpotifyClientCredentials`` posts to the token URL with a plain ``requests.Session`` (no retries): any
  error there is a ``SpotifyOauthError`` at once.
"""
from __future__ import annotations

import base64
import time

import pytest
import requests
import spotipy
import urllib3
from spotipy.oauth2 import SpotifyOauthError

from tests.emulators.spotify import SpotifyEmulator, parse_search_query

ABBEY_COVER = "https://i.scdn.co/image/abbey-road"
BEATLES_PHOTO = "https://i.scdn.co/image/the-beatles"


@pytest.fixture
def fm():
    with SpotifyEmulator() as emulator:
        emulator.add_album("The Beatles", "Abbey Road", ABBEY_COVER, release_date="1969-09-26", total_tracks=17)
        emulator.add_album("The Beatles", "Let It Be", "https://i.scdn.co/image/let-it-be", release_date="1970-05-08")
        emulator.add_album("Radiohead", "OK Computer", "https://i.scdn.co/image/ok-computer")
        emulator.add_artist("The Beatles", BEATLES_PHOTO, genres=["rock", "british invasion"])
        yield emulator


def _token(fm: SpotifyEmulator) -> str:
    return requests.post(fm.token_url, data={"grant_type": "client_credentials"},
                         auth=("test-id", "test-secret"), timeout=5).json()["access_token"]


# ----------------------------------------------------------------------------- wire level
def test_token_endpoint_issues_bearer_tokens(fm):
    answer = requests.post(fm.token_url, data={"grant_type": "client_credentials"},
                           auth=("test-id", "test-secret"), timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert fm.issued_tokens == [body["access_token"]]
    recorded = fm.requests[-1]
    assert (recorded.method, recorded.path, recorded.form) == ("POST", "/api/token",
                                                               {"grant_type": "client_credentials"})
    assert recorded.headers["authorization"] == "Basic " + base64.b64encode(b"test-id:test-secret").decode()


@pytest.mark.parametrize("auth, data, error", [
    (("test-id", "nope"), {"grant_type": "client_credentials"}, "invalid_client"),
    (("other-id", "test-secret"), {"grant_type": "client_credentials"}, "invalid_client"),
    (None, {"grant_type": "client_credentials"}, "invalid_client"),
    (("test-id", "test-secret"), {}, "unsupported_grant_type"),
])
def test_token_endpoint_errors(fm, auth, data, error):
    answer = requests.post(fm.token_url, data=data, auth=auth, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"] == error
    assert fm.issued_tokens == []


def test_token_endpoint_accepts_credentials_in_the_body(fm):
    answer = requests.post(fm.token_url, data={"grant_type": "client_credentials", "client_id": "test-id",
                                               "client_secret": "test-secret"}, timeout=5)
    assert answer.status_code == 200


def test_web_api_requires_a_valid_bearer_token(fm):
    for headers, message in (({}, "No token provided"), ({"Authorization": "Bearer forged"}, "Invalid access token")):
        answer = requests.get(fm.api_prefix + "search", params={"q": "abbey", "type": "album"},
                              headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json() == {"error": {"status": 401, "message": message}}
    token = _token(fm)
    answer = requests.get(fm.api_prefix + "search", params={"q": "abbey", "type": "album"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 200
    fm.expire_tokens()
    answer = requests.get(fm.api_prefix + "search", params={"q": "abbey", "type": "album"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert answer.status_code == 401 and answer.json()["error"]["message"] == "The access token expired"


def test_search_validation_and_paging(fm):
    headers = {"Authorization": f"Bearer {_token(fm)}"}

    def search(**params):
        return requests.get(fm.api_prefix + "search", params=params, headers=headers, timeout=5)

    assert search(type="album").json()["error"] == {"status": 400, "message": "No search query"}
    assert search(q="x").json()["error"]["message"] == "Missing parameter type"
    assert search(q="x", type="vinyl").status_code == 400
    assert search(q="x", type="album", limit="51").json()["error"]["message"] == "Invalid limit"
    page = search(q="artist:beatles", type="album", limit=1).json()["albums"]
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (2, 1, 0, 1)
    assert page["next"] and page["previous"] is None
    page2 = requests.get(page["next"], headers=headers, timeout=5).json()["albums"]
    assert [a["name"] for a in page2["items"]] == ["Let It Be"] and page2["next"] is None
    assert search(q="abbey", type="track").json()["tracks"]["items"] == []


def test_unknown_ids_and_paths(fm):
    headers = {"Authorization": f"Bearer {_token(fm)}"}
    assert requests.get(fm.api_prefix + "albums/not-an-id", headers=headers, timeout=5).status_code == 400
    missing = requests.get(fm.api_prefix + "albums/" + "0" * 22, headers=headers, timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Resource not found"
    assert requests.get(fm.api_prefix + "playlists/x", headers=headers, timeout=5).status_code == 404


def test_query_syntax_parsing():
    assert parse_search_query("album:Abbey Road artist:The Beatles") == ([], {"album": "Abbey Road",
                                                                               "artist": "The Beatles"})
    assert parse_search_query('album:"Let It Be" naked artist:beatles year:1970') == (
        ["naked"], {"album": "Let It Be", "artist": "beatles", "year": "1970"})
    assert parse_search_query("radiohead") == (["radiohead"], {})


# ----------------------------------------------------------------------------- real spotipy
def test_spotipy_searches_an_album(fm):
    sp = fm.client()
    result = sp.search(q="album:abbey road artist:the beatles", type="album", limit=1)
    items = result["albums"]["items"]
    assert len(items) == 1
    album = items[0]
    assert album["name"] == "Abbey Road"
    assert [a["name"] for a in album["artists"]] == ["The Beatles"]
    assert album["images"][0] == {"url": ABBEY_COVER, "height": 640, "width": 640}
    assert album["external_urls"]["spotify"] == f"https://open.spotify.com/album/{album['id']}"
    assert album["uri"] == f"spotify:album:{album['id']}"
    assert (album["release_date"], album["total_tracks"]) == ("1969-09-26", 17)
    # the query went out in Spotify's syntax, to the emulator only
    search = [r for r in fm.requests if r.path == "/v1/search"][0]
    assert search.query == {"q": "album:abbey road artist:the beatles", "type": "album", "limit": "1",
                            "offset": "0"}
    assert sp.search(q="album:Abbey Road artist:Radiohead", type="album")["albums"]["items"] == []
    assert sp.search(q="beatles 1970", type="album")["albums"]["total"] == 0  # free words must all match
    assert [a["name"] for a in sp.search(q="year:1969-1970", type="album")["albums"]["items"]] == [
        "Abbey Road", "Let It Be"]


def test_spotipy_gets_an_album_by_id(fm):
    album_id = fm.add_album("Pink Floyd", "The Dark Side of the Moon", "https://i.scdn.co/image/dsotm",
                            spotify_id="4LH4d3cOWNNsVw41Gqt2kv")
    assert album_id == "4LH4d3cOWNNsVw41Gqt2kv"
    sp = fm.client()
    for ref in (album_id, f"spotify:album:{album_id}", f"https://open.spotify.com/album/{album_id}"):
        album = sp.album(ref)
        assert album["id"] == album_id and album["name"] == "The Dark Side of the Moon"
        assert album["artists"][0]["name"] == "Pink Floyd"
        assert album["images"][0]["url"] == "https://i.scdn.co/image/dsotm"
    assert [a["id"] if a else None for a in sp.albums([album_id, "0" * 22])["albums"]] == [album_id, None]
    with pytest.raises(spotipy.SpotifyException) as caught:
        sp.album("1" * 22)
    assert caught.value.http_status == 404


def test_spotipy_finds_an_artist_image(fm):
    sp = fm.client()
    found = sp.search(q="artist:the beatles", type="artist", limit=1)["artists"]["items"]
    assert found[0]["name"] == "The Beatles"
    assert found[0]["images"][0]["url"] == BEATLES_PHOTO
    assert found[0]["genres"] == ["rock", "british invasion"]
    artist = sp.artist(found[0]["id"])
    assert artist["images"] == [{"url": BEATLES_PHOTO, "height": s, "width": s} for s in (640, 320, 160)]
    assert artist["external_urls"]["spotify"].endswith("/artist/" + found[0]["id"])
    # an artist created by add_album has no image until add_artist gives one
    radiohead = sp.search(q="radiohead", type="artist")["artists"]["items"][0]
    assert radiohead["images"] == []
    fm.add_artist("Radiohead", "https://i.scdn.co/image/radiohead")
    assert sp.artist(radiohead["id"])["images"][0]["url"] == "https://i.scdn.co/image/radiohead"


def test_spotipy_fetches_the_token_once_and_reuses_it(fm):
    sp = fm.client()
    sp.search(q="abbey", type="album")
    sp.search(q="radiohead", type="artist")
    sp.album(fm.add_album("The Beatles", "Abbey Road"))
    assert fm.count("/api/token") == 1
    assert fm.count("/v1/") == 3
    token = fm.issued_tokens[0]
    assert {r.headers["authorization"] for r in fm.requests if r.path.startswith("/v1/")} == {f"Bearer {token}"}


def test_spotipy_wrong_credentials_raise_spotify_oauth_error(fm):
    sp = fm.client(auth_manager=fm.auth_manager(client_secret="wrong"))
    with pytest.raises(SpotifyOauthError) as caught:
        sp.search(q="abbey", type="album")
    assert caught.value.error == "invalid_client"
    assert caught.value.error_description == "Invalid client secret"
    assert not isinstance(caught.value, spotipy.SpotifyException)  # separate branches of SpotifyBaseException
    assert fm.count("/v1/") == 0


# ----------------------------------------------------------------------------- 429 and retries
def test_spotipy_waits_for_retry_after_and_retries(fm):
    sp = fm.client()
    sp.search(q="abbey", type="album")  # token fetched
    fm.reset_counters()
    fm.fail_next(1, status=429, retry_after=1, path_prefix="/v1/")
    result = sp.search(q="abbey", type="album")
    assert result["albums"]["items"][0]["name"] == "Abbey Road"
    first, second = fm.requests
    assert 0.95 <= second.time - first.time < 1.8  # urllib3 slept Retry-After seconds
    assert fm.count("/api/token") == 0


def test_spotipy_out_of_retries_raises_429_without_headers(fm):
    sp = fm.client(retries=0)  # status_forcelist still has 429: no retry, then MaxRetryError
    sp.search(q="abbey", type="album")
    fm.reset_counters()
    fm.fail_next(1, status=429, retry_after=30, path_prefix="/v1/")
    with pytest.raises(spotipy.SpotifyException) as caught:
        sp.search(q="abbey", type="album")
    assert fm.count("/v1/") == 1  # refused once, not tried again after Retry-After
    assert caught.value.http_status == 429 and "Max Retries" in caught.value.msg
    assert caught.value.headers == {}  # the Retry-After value is lost on this path
    assert fm.count("/v1/") == 1


def test_spotipy_with_a_plain_session_surfaces_the_429_and_retry_after(fm):
    sp = fm.client(requests_session=requests.Session())  # no urllib3 Retry mounted at all
    sp.search(q="abbey", type="album")
    fm.reset_counters()
    fm.fail_next(1, status=429, retry_after=30, path_prefix="/v1/")
    with pytest.raises(spotipy.SpotifyException) as caught:
        sp.search(q="abbey", type="album")
    assert caught.value.http_status == 429
    assert caught.value.headers["Retry-After"] == "30"
    assert caught.value.msg.endswith("API rate limit exceeded")
    assert fm.count("/v1/") == 1


def test_spotipy_retry_after_can_be_capped_with_an_own_session(fm):
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=urllib3.Retry(
        total=1, status=1, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,
        retry_after_max=1, backoff_factor=0)))
    sp = fm.client(requests_session=session)
    sp.search(q="abbey", type="album")
    fm.reset_counters()
    fm.fail_next(1, status=429, retry_after=3600, path_prefix="/v1/")
    assert sp.search(q="abbey", type="album")["albums"]["total"] == 1
    first, second = fm.requests
    assert 0.95 <= second.time - first.time < 1.8  # slept retry_after_max, not an hour


def test_spotipy_exhausted_5xx_retries_are_reported_as_429(fm):
    sp = fm.client(status_retries=1, backoff_factor=0)
    sp.search(q="abbey", type="album")
    fm.reset_counters()
    fm.fail_next(5, status=500, path_prefix="/v1/")
    with pytest.raises(spotipy.SpotifyException) as caught:
        sp.search(q="abbey", type="album")
    assert caught.value.http_status == 429  # spotipy maps every RetryError to 429
    assert str(caught.value.reason) == "too many 500 error responses"  # a urllib3 ResponseError
    assert fm.count("/v1/") == 2  # first try + status_retries
    fm.clear_faults()


def test_spotipy_returns_none_on_a_fractional_retry_after(fm):
    """urllib3 only parses whole seconds: "0.2" raises requests.InvalidHeader, a ValueError, which spotipy's
    ``except ValueError: results = None`` swallows. Real Spotify sends whole seconds."""
    sp = fm.client()
    sp.search(q="abbey", type="album")
    fm.reset_counters()
    fm.fail_next(1, status=429, retry_after=0.2, path_prefix="/v1/")
    assert sp.search(q="abbey", type="album") is None
    assert fm.count("/v1/") == 1


def test_token_endpoint_failures_are_not_retried(fm):
    fm.fail_next(1, status=429, retry_after=1, path_prefix="/api/token")
    sp = fm.client()
    with pytest.raises(SpotifyOauthError):
        sp.search(q="abbey", type="album")
    assert fm.count() == 1
    assert sp.search(q="abbey", type="album")["albums"]["total"] == 1  # next call fetches a token


# ----------------------------------------------------------------------------- emulator controls
def test_latency_log_and_reset(fm):
    fm.latency = 0.2
    started = time.monotonic()
    requests.get(fm.api_prefix + "search", timeout=5)
    assert time.monotonic() - started >= 0.2
    fm.latency = 0
    assert fm.count() == 1 and fm.count("/v1/search") == 1 and fm.count("/api") == 0
    recorded = fm.requests[0]
    assert recorded.method == "GET" and recorded.json is None and recorded.query == {}
    fm.reset_counters()
    assert fm.requests == [] and fm.count() == 0


def test_fail_next_applies_in_order_and_only_to_its_prefix(fm):
    fm.fail_next(1, status=503, path_prefix="/v1/")
    fm.fail_next(1, status=502)
    assert requests.post(fm.token_url, timeout=5).status_code == 502  # the /v1/ fault does not match
    answer = requests.get(fm.api_prefix + "search", timeout=5)
    assert answer.status_code == 503 and answer.json() == {"error": {"status": 503,
                                                                      "message": "Service unavailable"}}
    assert requests.get(fm.api_prefix + "search", timeout=5).status_code == 401  # faults used up
    fm.fail_next(1, status=429, retry_after=2)
    answer = requests.get(fm.api_prefix + "search", timeout=5)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "2"
