"""Last.fm through pylast: one network per job, pages of recent tracks, and errors worded for people.

pylast has no URL setting: it always POSTs to https://<ws_server host><path>. `LASTFM_API_URL`
is honoured here, in one place, by mounting an httpx transport through pylast's `proxy` argument
that sends each request to the configured server instead (http or https).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2 as httpx
import pylast

from .errors import SourceError

DEFAULT_API_URL = "https://ws.audioscrobbler.com/2.0/"
PAGE_SIZE = 200
# Errors worth waiting out (operation failed, offline, temporarily unavailable, rate limit).
RETRYABLE_CODES = {8, 11, 16, 29}
RETRYABLE_HTTP = {500, 502, 503, 504}
RATE_LIMIT_CODE = 29


class LastfmSettingsError(SourceError):
    """Credentials missing or refused: nothing can be fetched until the settings are fixed."""


class LastfmFatalError(SourceError):
    """Last.fm refused in a way that waiting will not fix."""


class LastfmTemporaryError(Exception):
    """Last.fm failed in a way worth retrying (rate limit, 5xx, network)."""

    def __init__(self, message, code=None, rate_limited=False, unreachable=False):
        super().__init__(message)
        self.code = code
        self.rate_limited = rate_limited
        self.unreachable = unreachable  # no answer at all: refused, timed out, name not found


FATAL_MESSAGES = {
    6: "Last.fm does not know the user {user!r}. Check LASTFM_USERNAME on the settings page.",
    10: ("Last.fm refused the API key (invalid key). Check LASTFM_API_KEY: create one at "
         "https://www.last.fm/api/account/create and put it in the settings."),
    17: ("The Last.fm profile {user!r} hides its recent listens, so they cannot be read. On Last.fm, "
         "open Settings > Privacy and turn off 'Hide recent listening information', then start again."),
    26: ("Last.fm has suspended this API key. Create a new key at https://www.last.fm/api/account/create, then put "
         "it in LASTFM_API_KEY (or secrets.lastfm.api_key in config.json)."),
}


def missing_settings(settings):
    """The names of the Last.fm settings still missing (empty when all are there)."""
    return [name for name in ("LASTFM_API_KEY", "LASTFM_API_SECRET", "LASTFM_USERNAME") if not settings.get(name)]


class _RedirectTransport(httpx.BaseTransport):
    """Sends pylast's https://ws.audioscrobbler.com/2.0/ requests to the configured API URL."""

    def __init__(self, api_url):
        parts = urlsplit(api_url)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._inner = httpx.HTTPTransport(retries=0)

    def handle_request(self, request):
        request.url = request.url.copy_with(scheme=self._scheme, host=self._host, port=self._port)
        request.headers["Host"] = self._host + (f":{self._port}" if self._port else "")
        return self._inner.handle_request(request)

    def close(self):
        # pylast makes a client per request and closes it after; keep the pool for the next one.
        pass


def make_network(settings):
    """A pylast network for the configured user, server and credentials."""
    missing = missing_settings(settings)
    if missing:
        raise LastfmSettingsError(
            f"Last.fm is not configured: {', '.join(missing)} missing. Set them on the settings page "
            "or in config.json (secrets.lastfm.api_key, api_secret, username).")
    api_url = settings.get("LASTFM_API_URL") or DEFAULT_API_URL
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LastfmSettingsError(f"LASTFM_API_URL must be an http(s) URL like {DEFAULT_API_URL}")
    network = pylast.LastFMNetwork(api_key=settings["LASTFM_API_KEY"], api_secret=settings["LASTFM_API_SECRET"],
                                   username=settings["LASTFM_USERNAME"],
                                   proxy={"https://": _RedirectTransport(api_url)})
    network.ws_server = (parts.hostname, parts.path or "/2.0/")
    network.disable_rate_limit()  # the importer paces requests itself, several in flight
    return network


def check_credentials(settings):
    """None when Last.fm answers with these settings, else the message saying what to fix.

    Costs one user.getInfo request; a Last.fm outage is not a settings problem, so it passes.
    """
    try:
        fetch_playcount(make_network(settings), settings["LASTFM_USERNAME"])
    except (LastfmSettingsError, LastfmFatalError) as exc:
        return str(exc)
    except LastfmTemporaryError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class Scrobble:
    played_at: int
    artist: str
    album: str
    title: str
    image_url: str | None = None


@dataclass
class RecentPage:
    page: int
    total_pages: int
    total: int
    scrobbles: list
    now_playing: Scrobble | None


def call(network, method, params, user=None):
    """One request through pylast; Last.fm errors become LastfmFatalError, LastfmSettingsError or
    LastfmTemporaryError."""
    try:
        return pylast._Request(network, method, params).execute()
    except pylast.WSError as exc:
        raise classify(exc, user) from None
    except pylast.NetworkError as exc:
        raise LastfmTemporaryError(f"could not reach Last.fm ({exc.underlying_error})", unreachable=True) from None
    except pylast.MalformedResponseError as exc:
        raise LastfmTemporaryError(f"Last.fm answered something unreadable ({exc})") from None
    except IndexError:  # well-formed XML that is not a Last.fm answer (a maintenance page)
        raise LastfmTemporaryError("Last.fm answered with a page that is not an API answer") from None


def classify(exc, user=None):
    try:
        code = int(exc.status)
    except (TypeError, ValueError):
        code = None
    if code in RETRYABLE_CODES or code in RETRYABLE_HTTP:
        return LastfmTemporaryError(f"Last.fm error {code}: {exc.details}", code, rate_limited=code == RATE_LIMIT_CODE)
    if code in (10, 26):
        return LastfmSettingsError(FATAL_MESSAGES[code])
    if code in FATAL_MESSAGES:
        return LastfmFatalError(FATAL_MESSAGES[code].format(user=user))
    return LastfmFatalError(f"Last.fm answered error {code}: {exc.details}")


def _text(node, tag):
    found = node.getElementsByTagName(tag)
    if not found or not found[0].firstChild:
        return ""
    return "".join(child.data for child in found[0].childNodes if child.nodeType == child.TEXT_NODE).strip()


def _image(node):
    best = None
    for image in node.getElementsByTagName("image"):
        if image.firstChild and image.firstChild.data.strip():
            best = image.firstChild.data.strip()  # sizes come small to extralarge
    return best


def fetch_playcount(network, username):
    doc = call(network, "user.getInfo", {"user": username}, username)
    return int(_text(doc, "playcount") or 0)


def album_image(network, artist, album):
    """The largest cover Last.fm has for an album, or None (also when Last.fm does not know it)."""
    try:
        doc = call(network, "album.getInfo", {"artist": artist, "album": album})
    except LastfmFatalError:
        return None  # error 6: album not found
    albums = doc.getElementsByTagName("album")
    return _image(albums[0]) if albums else None


def fetch_recent_page(network, username, page, time_from=None, time_to=None, limit=PAGE_SIZE):
    """One page of a user's listens, newest first, within [time_from, time_to]."""
    params = {"user": username, "limit": limit, "page": page}
    if time_from is not None:
        params["from"] = int(time_from)
    if time_to is not None:
        params["to"] = int(time_to)
    doc = call(network, "user.getRecentTracks", params, username)
    found = doc.getElementsByTagName("recenttracks")
    if not found:
        raise LastfmTemporaryError("Last.fm answered without a list of recent tracks")
    root = found[0]
    scrobbles, now_playing = [], None
    for node in root.getElementsByTagName("track"):
        date = node.getElementsByTagName("date")
        item_fields = (_text(node, "artist"), _text(node, "album"), _text(node, "name"), _image(node))
        if node.getAttribute("nowplaying") == "true" or not date:
            now_playing = Scrobble(0, *item_fields)
            continue
        scrobbles.append(Scrobble(int(date[0].getAttribute("uts")), *item_fields))
    return RecentPage(page=int(root.getAttribute("page") or page),
                      total_pages=int(root.getAttribute("totalPages") or 0),
                      total=int(root.getAttribute("total") or 0), scrobbles=scrobbles, now_playing=now_playing)


class RequestPacer:
    """At most `per_second` request starts in any one-second window, shared by every fetcher thread.

    Written here rather than taken from a library: it is a dozen lines, must work under gevent's
    monkey-patched threading, and the importer needs `wait_time()` to show what it waits for.
    """

    def __init__(self, per_second=5.0, clock=None, sleep=None):
        import time

        self.per_second = per_second
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._starts = []
        self._paused_until = 0.0

    def pause(self, seconds):
        """Hold every fetcher back (after a rate-limit answer)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def acquire(self):
        while True:
            with self._lock:
                now = self._clock()
                self._starts = [t for t in self._starts if now - t < 1.0]
                wait = max(self._paused_until - now, 0.0)
                if not wait and len(self._starts) >= self.per_second:
                    wait = 1.0 - (now - self._starts[0])
                if not wait and self._starts:
                    # Evenly spread, not in bursts: a burst can land in one second on the server's clock.
                    wait = 1.0 / self.per_second - (now - self._starts[-1])
                if wait <= 0:
                    self._starts.append(now)
                    return
            self._sleep(wait)
