"""A local emulator of the Last.fm web service (API 2.0) that answers in Last.fm's own XML.

The real ``pylast`` library can talk to it: pylast only ever POSTs to ``https://ws.audioscrobbler.com/2.0/``,
so a network is pointed at the emulator by mounting :class:`EmulatorTransport` through pylast's ``proxy``
argument (pylast passes non-string values of a proxy dict straight to ``httpx.Client(mounts=...)``)::

    with LastfmEmulator() as fm:                     # user "rj", api key "test-key"
        fm.add_listens("rj", generate_listens(500, start_uts=1_600_000_000, same_second_every=7))
        network = fm.network()                       # == pylast.LastFMNetwork(..., proxy={"https://": fm.transport()})
        network.get_user("rj").get_recent_tracks(limit=20)

Nothing here contacts the real Last.fm.

Implemented methods (names are case-insensitive, as on Last.fm; parameters come from the query string and
the form body, the body winning): ``user.getInfo``, ``user.getRecentTracks``, ``album.getInfo``,
``track.getInfo``. Anything else answers error 3. ``format=json`` is ignored: answers are always XML.

``user.getRecentTracks`` semantics (one consistent choice; see the constructor for the switches):

* Dated listens are ordered newest first: ``uts`` descending, and listens sharing one second are ordered by
  insertion order descending (of two listens with the same ``uts``, the one added later comes first). The
  order is total and never changes for a given set of listens, so paging is stable.
* ``from``/``to`` are both INCLUSIVE by default: a listen is returned when ``from <= uts <= to``
  (``from_inclusive=False`` makes it ``from < uts``, ``to_inclusive=False`` makes it ``uts < to``).
  Non-integer ``from``/``to`` answer error 6.
* ``limit``: default 50; missing, non-numeric or < 1 gives 50; above ``max_limit`` (200) is clamped to 200.
  ``page``: 1-based, default 1; non-numeric or < 1 gives 1; a page past the end is an empty list.
* ``<recenttracks user page perPage totalPages total>``: ``user`` is the canonical (stored) spelling of the
  name, ``perPage`` the effective limit, ``total`` the number of dated listens in the from/to range
  (now playing not counted) and ``totalPages = ceil(total / perPage)`` (0 when there are none).
* The now-playing track (``<track nowplaying="true">``, no ``<date>``) is listed first on page 1 only, IN
  ADDITION to the ``limit`` dated tracks (as Last.fm does), and only when the request has no ``to``.
* ``extended`` is accepted and ignored (always the extended=0 shape).

Errors are ``<lfm status="failed"><error code="N">message</error></lfm>`` with an HTTP status like Last.fm's
(see ``ERROR_HTTP_STATUS``): wrong/missing ``api_key`` -> 10, :meth:`LastfmEmulator.suspend_key` -> 26, unknown
user -> 6 "User not found", private user on getRecentTracks -> 17, unknown album/track -> 6.

Order of checks for every request: record it (``requests``), rate limit (error 29, HTTP 429), injected fault
(:meth:`LastfmEmulator.fail_next`), api key, method. Whatever the outcome, the answer is held back by ``latency``
seconds (the decision is taken when the request arrives).
"""
from __future__ import annotations

import bisect
import collections
import hashlib
import math
import threading
import time
import typing
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote_plus, urlsplit
from xml.sax.saxutils import escape

import httpx2 as httpx  # the package pylast 7.2 uses; also importable as ``httpx2``

__all__ = [
    "ERROR_HTTP_STATUS",
    "ERROR_MESSAGES",
    "EmulatorTransport",
    "LastfmEmulator",
    "RecordedRequest",
    "generate_listens",
]

# Last.fm's own wording (including its typo "Exceded").
ERROR_MESSAGES: dict[int, str] = {
    2: "Invalid service - This service does not exist",
    3: "Invalid Method - No method with that name in this package",
    4: "Authentication Failed - You do not have permissions to access the service",
    5: "Invalid format - This service doesn't exist in that format",
    6: "Invalid parameters - Your request is missing a required parameter",
    7: "Invalid resource specified",
    8: "Operation failed - Most likely the backend service failed. Please try again.",
    9: "Invalid session key - Please re-authenticate",
    10: "Invalid API key - You must be granted a valid key by last.fm",
    11: "Service Offline - This service is temporarily offline. Try again later.",
    13: "Invalid method signature supplied",
    16: "There was a temporary error processing your request. Please try again",
    17: "Login: User required to be logged in",
    26: "Suspended API key - Access for your account has been suspended, please contact Last.fm",
    29: "Rate Limit Exceded - Your IP has made too many requests in a short period",
}

# HTTP status sent with each Last.fm error code (400 for codes not listed). Codes 8, 11 and 16 deliberately
# go out with a 4xx so that pylast reports the Last.fm code: pylast turns HTTP 500/502/503/504 into
# WSError(<http status>) without reading the body. Pass fail_next(..., http_status=500) to emulate that.
ERROR_HTTP_STATUS: dict[int, int] = {4: 403, 9: 403, 10: 403, 17: 403, 26: 403, 29: 429}
NOT_FOUND_HTTP_STATUS = 404  # error 6 "User/Album/Track not found"

RECENT_TRACK_IMAGE_SIZES = ("small", "medium", "large", "extralarge")
INFO_IMAGE_SIZES = ("small", "medium", "large", "extralarge", "mega", "")
_SIZE_SEGMENTS = {"small": "34s", "medium": "64s", "large": "174s", "extralarge": "300x300", "mega": "300x300", "": "300x300"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                 504: "Gateway Time-out", 429: "Too Many Requests"}

DEFAULT_REGISTERED = 1037793040  # 2002-11-20 11:50 UTC


class RecordedRequest(typing.NamedTuple):
    """One request as received: ``(monotonic arrival time, method as sent, all parameters)``."""

    time: float
    method: str
    params: dict


@dataclass(frozen=True, slots=True)
class _Listen:
    uts: int | None
    artist: str
    title: str
    album: str = ""
    artist_mbid: str = ""
    album_mbid: str = ""
    mbid: str = ""
    image_url: str | dict | None = None
    duration_ms: int = 0

    def as_dict(self) -> dict:
        return {"uts": self.uts, "artist": self.artist, "title": self.title, "album": self.album,
                "artist_mbid": self.artist_mbid, "album_mbid": self.album_mbid, "mbid": self.mbid,
                "image_url": self.image_url, "duration_ms": self.duration_ms}


def _listen_from(data, *, dated: bool = True) -> _Listen:
    if isinstance(data, _Listen):
        return data
    uts = data.get("uts")
    if dated:
        if uts is None:
            raise ValueError(f"listen without uts: {data!r}")
        uts = int(uts)
    return _Listen(
        uts=None if uts is None else int(uts),
        artist=str(data["artist"]),
        title=str(data["title"]),
        album=str(data.get("album") or ""),
        artist_mbid=str(data.get("artist_mbid") or ""),
        album_mbid=str(data.get("album_mbid") or ""),
        mbid=str(data.get("mbid") or ""),
        image_url=data.get("image_url"),
        duration_ms=int(data.get("duration_ms") or 0),
    )


def generate_listens(n: int, start_uts: int, step_seconds: int = 60, same_second_every: int | None = None,
                     *, artists: int = 50, albums_per_artist: int = 4, with_images: bool = True,
                     title_prefix: str = "Track") -> list[dict]:
    """``n`` deterministic listens, oldest first (ready for :meth:`LastfmEmulator.add_listens`).

    Listen ``i`` (0-based) is scrobbled ``step_seconds`` after listen ``i - 1``, except that when
    ``same_second_every=k`` every k-th listen (i = k-1, 2k-1, ...) shares the second of the listen before it:
    with k=3 the listens at index 1 and 2 share a second, 4 and 5 share one, etc. Titles are
    ``f"{title_prefix} {i:06d}"`` (unique), artists ``"Artist 00".."Artist NN"``, each artist having
    ``albums_per_artist`` albums, with a deterministic cover URL per album when ``with_images``.
    """
    listens = []
    uts = start_uts
    for i in range(n):
        if i > 0:
            shares = bool(same_second_every) and i % same_second_every == same_second_every - 1
            uts = uts if shares else uts + step_seconds
        artist_no = i % artists
        album_no = (i // artists) % albums_per_artist
        artist = f"Artist {artist_no:02d}"
        album = f"Album {artist_no:02d}-{album_no}"
        image = None
        if with_images:
            digest = hashlib.md5(f"{artist}|{album}".encode()).hexdigest()
            image = f"https://lastfm.freetls.fastly.net/i/u/300x300/{digest}.jpg"
        listens.append({"uts": uts, "artist": artist, "title": f"{title_prefix} {i:06d}", "album": album,
                        "artist_mbid": "", "album_mbid": "", "mbid": "", "image_url": image})
    return listens


def _text(value) -> str:
    return escape(str(value))


def _attr(value) -> str:
    return escape(str(value), {'"': "&quot;"})


def _image_urls(image_url, sizes) -> list[tuple[str, str]]:
    """(size, url) for each size; a str URL containing a Last.fm size segment is re-sized like Last.fm does."""
    out = []
    for size in sizes:
        if not image_url:
            url = ""
        elif isinstance(image_url, dict):
            url = image_url.get(size) or ""
        elif "/300x300/" in image_url:
            url = image_url.replace("/300x300/", f"/{_SIZE_SEGMENTS[size]}/")
        else:
            url = image_url
        out.append((size, url))
    return out


def _images_xml(image_url, sizes, indent: str) -> list[str]:
    return [f'{indent}<image size="{_attr(size)}">{_text(url)}</image>' for size, url in _image_urls(image_url, sizes)]


def _lastfm_date(uts: int) -> str:
    t = time.gmtime(uts)
    return f"{t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year}, {t.tm_hour:02d}:{t.tm_min:02d}"


def _music_url(*parts: str) -> str:
    return "https://www.last.fm/music/" + "/".join(quote_plus(p, safe="") for p in parts)


def _ok(body_lines: list[str]) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n<lfm status="ok">\n' + "\n".join(body_lines) + "\n</lfm>\n"


def _error_xml(code: int, message: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<lfm status="failed">\n'
            f'  <error code="{int(code)}">{_text(message)}</error>\n</lfm>\n')


def _html_error(status: int) -> str:
    title = f"{status} {_HTTP_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


class _Answer(typing.NamedTuple):
    status: int
    content_type: str
    body: str


class _ApiError(Exception):
    def __init__(self, code: int, message: str | None = None, http_status: int | None = None):
        super().__init__(code)
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, "Error")
        self.http_status = http_status or ERROR_HTTP_STATUS.get(code, 400)


class _User:
    def __init__(self, name: str, private: bool, realname: str, registered: int, country: str):
        self.name = name
        self.private = private
        self.realname = realname
        self.registered = registered
        self.country = country
        self.playcount_override: int | None = None
        self.now_playing: _Listen | None = None
        self.seq = 0
        # (-uts, -seq, listen), ascending == newest first, ties broken by insertion order descending.
        self.entries: list[tuple[int, int, _Listen]] = []
        self.track_plays: collections.Counter = collections.Counter()
        self.album_plays: collections.Counter = collections.Counter()


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: keep-alive is not needed

    def do_POST(self):  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        self._serve(body)

    def do_GET(self):  # noqa: N802
        self._serve("")

    def _serve(self, body: str):
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        self.server.emulator._handle(self, split.path, params)

    def _write(self, answer: _Answer):
        payload = answer.body.encode("utf-8")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout): nothing to do
            pass

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr logging
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent connections must not be refused
    allow_reuse_address = True


class LastfmEmulator:
    """A Last.fm API 2.0 look-alike on ``127.0.0.1:<random port>``; see the module docstring for semantics.

    Controls (all thread-safe, usable while requests are being served):

    * users: :meth:`add_user`, :meth:`set_private`, :meth:`set_playcount`; one user (``username``) exists
      from the start. User names are matched case-insensitively, like Last.fm.
    * listens: :meth:`add_listens`, :meth:`clear_listens`, :meth:`set_now_playing`, :meth:`listens`;
      :func:`generate_listens` builds deterministic data. :meth:`add_album` / :meth:`add_track` register
      catalogue entries without listens.
    * faults: :meth:`fail_next`, :meth:`suspend_key`, ``latency`` (seconds added to every answer, settable at
      any time), ``rate_limit_per_second`` (None or a number).
    * instrumentation: ``requests`` (copy of the list of :class:`RecordedRequest`), :meth:`count`,
      ``max_in_flight`` (peak of concurrent requests), ``in_flight``, :meth:`reset_counters`.
    """

    def __init__(self, username: str = "rj", api_key: str = "test-key", *, latency: float = 0.0,
                 rate_limit_per_second: float | None = None, max_limit: int = 200, default_limit: int = 50,
                 from_inclusive: bool = True, to_inclusive: bool = True):
        self.api_key = api_key
        self.default_username = username
        self.latency = latency
        self.rate_limit_per_second = rate_limit_per_second
        self.max_limit = max_limit
        self.default_limit = default_limit
        self.from_inclusive = from_inclusive
        self.to_inclusive = to_inclusive
        self.max_in_flight = 0
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._albums: dict[tuple[str, str], dict] = {}
        self._tracks: dict[tuple[str, str], dict] = {}
        self._faults: list[dict] = []
        self._suspended = False
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._accepted_window: collections.deque[float] = collections.deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.add_user(username)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> LastfmEmulator:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="lastfm-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LastfmEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/2.0/"

    def transport(self) -> EmulatorTransport:
        """An httpx transport sending every request to this emulator, for ``proxy={"https://": ...}``."""
        return EmulatorTransport(self.url)

    def network(self, username: str | None = None, api_key: str | None = None, api_secret: str = "test-secret"):
        """A real ``pylast.LastFMNetwork`` routed to this emulator."""
        import pylast

        return pylast.LastFMNetwork(api_key=self.api_key if api_key is None else api_key, api_secret=api_secret,
                                    username=username or self.default_username,
                                    proxy={"https://": self.transport()})

    # ----------------------------------------------------------------- users and data
    def add_user(self, name: str, private: bool = False, *, realname: str = "", registered: int = DEFAULT_REGISTERED,
                 country: str = "None") -> None:
        """Create user ``name`` (or update the flags of an existing one)."""
        with self._lock:
            user = self._users.get(name.casefold())
            if user is None:
                self._users[name.casefold()] = _User(name, private, realname, registered, country)
            else:
                user.private, user.realname, user.registered, user.country = private, realname, registered, country

    def set_private(self, name: str, private: bool = True) -> None:
        with self._lock:
            self._user(name).private = private

    def set_playcount(self, name: str, playcount: int | None) -> None:
        """Make user.getInfo report ``playcount`` instead of the number of stored listens (None: back to it)."""
        with self._lock:
            self._user(name).playcount_override = playcount

    def _user(self, name: str) -> _User:
        try:
            return self._users[name.casefold()]
        except KeyError:
            raise KeyError(f"no emulated Last.fm user {name!r}: call add_user first") from None

    def add_listens(self, username: str, listens: typing.Iterable[dict]) -> int:
        """Store dated listens (dicts with uts, artist, title[, album, artist_mbid, album_mbid, mbid,
        image_url, duration_ms]) in any order; returns how many. ``image_url`` is one URL (a Last.fm
        ``/300x300/`` URL is re-sized per image size) or a dict size -> URL."""
        items = [_listen_from(item) for item in listens]
        with self._lock:
            user = self._user(username)
            for listen in items:
                user.seq += 1
                user.entries.append((-listen.uts, -user.seq, listen))
                self._catalogue(user, listen)
            user.entries.sort(key=lambda e: (e[0], e[1]))
        return len(items)

    def clear_listens(self, username: str) -> None:
        with self._lock:
            user = self._user(username)
            user.entries.clear()
            user.track_plays.clear()
            user.album_plays.clear()

    def set_now_playing(self, username: str, listen: dict | None) -> None:
        """Show ``listen`` (artist, title[, album, ...]; uts ignored) as now playing, or nothing with None."""
        np = None if listen is None else _listen_from(listen, dated=False)
        with self._lock:
            self._user(username).now_playing = np

    def listens(self, username: str) -> list[dict]:
        """The stored dated listens in the order getRecentTracks pages through them (newest first)."""
        with self._lock:
            return [entry[2].as_dict() for entry in self._user(username).entries]

    def playcount(self, username: str) -> int:
        with self._lock:
            user = self._user(username)
            return len(user.entries) if user.playcount_override is None else user.playcount_override

    def add_album(self, artist: str, album: str, image_url=None, *, mbid: str = "", tracks: typing.Iterable[str] = ()):
        with self._lock:
            entry = self._album_entry(artist, album)
            entry["image_url"] = image_url if image_url is not None else entry["image_url"]
            entry["mbid"] = mbid or entry["mbid"]
            for title in tracks:
                entry["tracks"].setdefault(title, "")

    def add_track(self, artist: str, title: str, *, duration_ms: int = 0, album: str = "", mbid: str = ""):
        with self._lock:
            entry = self._track_entry(artist, title)
            entry["duration_ms"] = duration_ms or entry["duration_ms"]
            entry["album"] = album or entry["album"]
            entry["mbid"] = mbid or entry["mbid"]

    def _album_entry(self, artist: str, album: str) -> dict:
        key = (artist.casefold(), album.casefold())
        if key not in self._albums:
            self._albums[key] = {"artist": artist, "album": album, "mbid": "", "image_url": None,
                                 "tracks": {}, "plays": 0}
        return self._albums[key]

    def _track_entry(self, artist: str, title: str) -> dict:
        key = (artist.casefold(), title.casefold())
        if key not in self._tracks:
            self._tracks[key] = {"artist": artist, "title": title, "mbid": "", "artist_mbid": "", "album": "",
                                 "album_mbid": "", "image_url": None, "duration_ms": 0, "plays": 0}
        return self._tracks[key]

    def _catalogue(self, user: _User, listen: _Listen) -> None:
        track = self._track_entry(listen.artist, listen.title)
        track["plays"] += 1
        for field in ("mbid", "artist_mbid", "album", "album_mbid", "image_url", "duration_ms"):
            value = getattr(listen, field)
            if value:
                track[field] = value
        user.track_plays[(listen.artist.casefold(), listen.title.casefold())] += 1
        if listen.album:
            album = self._album_entry(listen.artist, listen.album)
            album["plays"] += 1
            album["tracks"].setdefault(listen.title, listen.mbid)
            if listen.album_mbid:
                album["mbid"] = listen.album_mbid
            if listen.image_url:
                album["image_url"] = listen.image_url
            user.album_plays[(listen.artist.casefold(), listen.album.casefold())] += 1

    # ----------------------------------------------------------------- faults
    def fail_next(self, n: int = 1, code: int | None = None, http_status: int | None = None, *,
                  method: str | None = None, message: str | None = None, body: str | None = None) -> None:
        """Make the next ``n`` requests (of ``method`` only, if given) fail, queued after earlier faults.

        * ``code``: a Last.fm error document with that code (message from ``ERROR_MESSAGES`` unless
          ``message``), sent with ``http_status`` or the usual status for the code (429 for 29, 403 for
          10/17/26, else 400). With ``http_status`` 500/502/503/504 pylast reports the HTTP status instead.
        * ``http_status`` alone: a bare HTTP error with an HTML body (e.g. 503, like a load balancer).
        * ``body``: exactly this body (status ``http_status`` or 200), e.g. to test malformed answers.
        * nothing: error 8 "Operation failed".
        """
        if code is None and http_status is None and body is None:
            code = 8
        with self._lock:
            self._faults.append({"remaining": int(n), "code": code, "http_status": http_status,
                                 "method": method.casefold() if method else None, "message": message, "body": body})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(f["remaining"] for f in self._faults)

    def suspend_key(self, suspended: bool = True) -> None:
        """Answer error 26 "Suspended API key" to every request with the (otherwise valid) key."""
        with self._lock:
            self._suspended = suspended

    # ----------------------------------------------------------------- instrumentation
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None) -> int:
        """How many requests arrived (for ``method`` only, case-insensitively, if given)."""
        with self._lock:
            if method is None:
                return len(self._requests)
            wanted = method.casefold()
            return sum(1 for r in self._requests if r.method.casefold() == wanted)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def reset_counters(self) -> None:
        """Forget recorded requests and restart ``max_in_flight`` from the current in-flight count."""
        with self._lock:
            self._requests.clear()
            self.max_in_flight = self._in_flight

    # ----------------------------------------------------------------- serving
    def _handle(self, handler: _Handler, path: str, params: dict) -> None:
        with self._lock:
            now = time.monotonic()
            self._requests.append(RecordedRequest(now, params.get("method", ""), dict(params)))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            early = self._early_answer(path, params, now)
        try:
            latency = self.latency
            if latency and latency > 0:
                time.sleep(latency)
            answer = early if early is not None else self._answer(params)
        finally:
            # Counted out before the answer is written: a client holding its answer never sees its
            # own request still in flight.
            with self._lock:
                self._in_flight -= 1
        handler._write(answer)

    def _early_answer(self, path: str, params: dict, now: float) -> _Answer | None:
        """Decisions taken on arrival (under the lock): wrong path, rate limit, injected faults."""
        if path.rstrip("/") != "/2.0":
            return _Answer(404, "text/html; charset=utf-8", _html_error(404))
        limit = self.rate_limit_per_second
        if limit is not None:
            # At most `capacity` accepted requests in any sliding `window`; rejected ones do not count.
            window, capacity = (1.0, int(limit)) if limit >= 1 else (1.0 / limit, 1) if limit > 0 else (1.0, 0)
            while self._accepted_window and self._accepted_window[0] <= now - window:
                self._accepted_window.popleft()
            if len(self._accepted_window) >= capacity:
                return self._error_answer(_ApiError(29))
            self._accepted_window.append(now)
        method = params.get("method", "").casefold()
        for fault in self._faults:
            if fault["method"] is None or fault["method"] == method:
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self._faults.remove(fault)
                return self._fault_answer(fault)
        return None

    def _fault_answer(self, fault: dict) -> _Answer:
        if fault["body"] is not None:
            return _Answer(fault["http_status"] or 200, "text/xml; charset=utf-8", fault["body"])
        if fault["code"] is not None:
            return self._error_answer(_ApiError(fault["code"], fault["message"], fault["http_status"]))
        return _Answer(fault["http_status"], "text/html; charset=utf-8", _html_error(fault["http_status"]))

    @staticmethod
    def _error_answer(error: _ApiError) -> _Answer:
        return _Answer(error.http_status, "text/xml; charset=utf-8", _error_xml(error.code, error.message))

    def _answer(self, params: dict) -> _Answer:
        try:
            with self._lock:
                if params.get("api_key") != self.api_key:
                    raise _ApiError(10)
                if self._suspended:
                    raise _ApiError(26)
                handler = self._methods.get(params.get("method", "").casefold())
                if handler is None:
                    raise _ApiError(3)
                body = handler(self, params)
        except _ApiError as error:
            return self._error_answer(error)
        return _Answer(200, "text/xml; charset=utf-8", body)

    # ----------------------------------------------------------------- methods
    def _param_user(self, params: dict) -> _User:
        name = params.get("user") or ""
        if not name:
            raise _ApiError(6)
        user = self._users.get(name.casefold())
        if user is None:
            raise _ApiError(6, "User not found", NOT_FOUND_HTTP_STATUS)
        return user

    @staticmethod
    def _int_param(params: dict, name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise _ApiError(6, f"Invalid parameters - {name} must be a UNIX timestamp") from None

    def _clamp(self, raw, default: int, maximum: int | None = None) -> int:
        try:
            value = int(raw)
        except (TypeError, ValueError):
            return default
        if value < 1:
            return default
        return min(value, maximum) if maximum else value

    def _user_get_info(self, params: dict) -> str:
        user = self._param_user(params)
        playcount = len(user.entries) if user.playcount_override is None else user.playcount_override
        artists = {e[2].artist.casefold() for e in user.entries}
        registered = time.strftime("%Y-%m-%d %H:%M", time.gmtime(user.registered))
        lines = ["  <user>", f"    <name>{_text(user.name)}</name>", f"    <realname>{_text(user.realname)}</realname>"]
        lines += _images_xml(None, RECENT_TRACK_IMAGE_SIZES, "    ")
        lines += [
            f"    <url>https://www.last.fm/user/{_text(quote_plus(user.name, safe=''))}</url>",
            f"    <country>{_text(user.country)}</country>",
            "    <age>0</age>",
            "    <gender>n</gender>",
            "    <subscriber>0</subscriber>",
            f"    <playcount>{playcount}</playcount>",
            f"    <artist_count>{len(artists)}</artist_count>",
            f"    <track_count>{len(user.track_plays)}</track_count>",
            f"    <album_count>{len(user.album_plays)}</album_count>",
            "    <playlists>0</playlists>",
            "    <bootstrap>0</bootstrap>",
            f'    <registered unixtime="{user.registered}">{registered}</registered>',
            "    <type>user</type>",
            "  </user>",
        ]
        return _ok(lines)

    def _recent_tracks_page(self, user: _User, params: dict) -> tuple[list[_Listen], dict]:
        limit = self._clamp(params.get("limit"), self.default_limit, self.max_limit)
        page = self._clamp(params.get("page"), 1)
        time_from = self._int_param(params, "from")
        time_to = self._int_param(params, "to")
        entries = user.entries
        lo, hi = 0, len(entries)
        if time_to is not None:  # keep uts <= to (or < to)
            newest = time_to if self.to_inclusive else time_to - 1
            lo = bisect.bisect_left(entries, (-newest, -math.inf))
        if time_from is not None:  # keep uts >= from (or > from)
            oldest = time_from if self.from_inclusive else time_from + 1
            hi = bisect.bisect_right(entries, (-oldest, math.inf))
        total = max(0, hi - lo)
        start = lo + (page - 1) * limit
        dated = [entry[2] for entry in entries[start:min(start + limit, hi)]] if start < hi else []
        attrs = {"user": user.name, "page": page, "perPage": limit,
                 "totalPages": math.ceil(total / limit), "total": total}
        return dated, attrs

    def _user_get_recent_tracks(self, params: dict) -> str:
        user = self._param_user(params)
        if user.private:
            raise _ApiError(17)
        dated, attrs = self._recent_tracks_page(user, params)
        head = " ".join(f'{name}="{_attr(value)}"' for name, value in attrs.items())
        lines = [f"  <recenttracks {head}>"]
        if user.now_playing is not None and attrs["page"] == 1 and not params.get("to"):
            lines += self._track_xml(user.now_playing, now_playing=True)
        for listen in dated:
            lines += self._track_xml(listen)
        lines.append("  </recenttracks>")
        return _ok(lines)

    @staticmethod
    def _track_xml(listen: _Listen, now_playing: bool = False) -> list[str]:
        lines = ['    <track nowplaying="true">' if now_playing else "    <track>",
                 f'      <artist mbid="{_attr(listen.artist_mbid)}">{_text(listen.artist)}</artist>',
                 f"      <name>{_text(listen.title)}</name>",
                 "      <streamable>0</streamable>",
                 f"      <mbid>{_text(listen.mbid)}</mbid>",
                 f'      <album mbid="{_attr(listen.album_mbid)}">{_text(listen.album)}</album>',
                 f"      <url>{_text(_music_url(listen.artist, '_', listen.title))}</url>"]
        lines += _images_xml(listen.image_url, RECENT_TRACK_IMAGE_SIZES, "      ")
        if not now_playing:
            lines.append(f'      <date uts="{listen.uts}">{_lastfm_date(listen.uts)}</date>')
        lines.append("    </track>")
        return lines

    def _user_plays(self, params: dict, counter_name: str, key: tuple[str, str]) -> int | None:
        name = params.get("username")
        user = self._users.get(name.casefold()) if name else None
        return None if user is None else getattr(user, counter_name)[key]

    def _album_get_info(self, params: dict) -> str:
        artist, title = params.get("artist") or "", params.get("album") or ""
        if not artist or not title:
            raise _ApiError(6)
        key = (artist.casefold(), title.casefold())
        album = self._albums.get(key)
        if album is None:
            raise _ApiError(6, "Album not found", NOT_FOUND_HTTP_STATUS)
        lines = ["  <album>", f"    <name>{_text(album['album'])}</name>", f"    <artist>{_text(album['artist'])}</artist>",
                 f"    <mbid>{_text(album['mbid'])}</mbid>",
                 f"    <url>{_text(_music_url(album['artist'], album['album']))}</url>"]
        lines += _images_xml(album["image_url"], INFO_IMAGE_SIZES, "    ")
        lines += [f"    <listeners>{1 if album['plays'] else 0}</listeners>", f"    <playcount>{album['plays']}</playcount>"]
        user_plays = self._user_plays(params, "album_plays", key)
        if user_plays is not None:
            lines.append(f"    <userplaycount>{user_plays}</userplaycount>")
        lines.append("    <tracks>")
        for rank, track_title in enumerate(album["tracks"], start=1):
            duration = self._tracks.get((artist.casefold(), track_title.casefold()), {}).get("duration_ms", 0)
            lines += [f'      <track rank="{rank}">', f"        <name>{_text(track_title)}</name>",
                      f"        <url>{_text(_music_url(album['artist'], '_', track_title))}</url>",
                      f"        <duration>{duration // 1000 if duration else ''}</duration>",
                      '        <streamable fulltrack="0">0</streamable>',
                      f"        <artist><name>{_text(album['artist'])}</name><mbid></mbid>"
                      f"<url>{_text(_music_url(album['artist']))}</url></artist>",
                      "      </track>"]
        lines += ["    </tracks>", "    <tags></tags>", "  </album>"]
        return _ok(lines)

    def _track_get_info(self, params: dict) -> str:
        artist, title = params.get("artist") or "", params.get("track") or ""
        if not artist or not title:
            raise _ApiError(6)
        key = (artist.casefold(), title.casefold())
        track = self._tracks.get(key)
        if track is None:
            raise _ApiError(6, "Track not found", NOT_FOUND_HTTP_STATUS)
        lines = ["  <track>", f"    <name>{_text(track['title'])}</name>", f"    <mbid>{_text(track['mbid'])}</mbid>",
                 f"    <url>{_text(_music_url(track['artist'], '_', track['title']))}</url>",
                 f"    <duration>{track['duration_ms']}</duration>",
                 '    <streamable fulltrack="0">0</streamable>',
                 f"    <listeners>{1 if track['plays'] else 0}</listeners>",
                 f"    <playcount>{track['plays']}</playcount>",
                 "    <artist>", f"      <name>{_text(track['artist'])}</name>",
                 f"      <mbid>{_text(track['artist_mbid'])}</mbid>",
                 f"      <url>{_text(_music_url(track['artist']))}</url>", "    </artist>"]
        if track["album"]:
            lines += ['    <album position="1">', f"      <artist>{_text(track['artist'])}</artist>",
                      f"      <title>{_text(track['album'])}</title>", f"      <mbid>{_text(track['album_mbid'])}</mbid>",
                      f"      <url>{_text(_music_url(track['artist'], track['album']))}</url>"]
            lines += _images_xml(track["image_url"], RECENT_TRACK_IMAGE_SIZES, "      ")
            lines.append("    </album>")
        user_plays = self._user_plays(params, "track_plays", key)
        if user_plays is not None:
            lines += [f"    <userplaycount>{user_plays}</userplaycount>", "    <userloved>0</userloved>"]
        lines += ["    <toptags></toptags>", "  </track>"]
        return _ok(lines)

    _methods: typing.ClassVar[dict] = {
        "user.getinfo": _user_get_info,
        "user.getrecenttracks": _user_get_recent_tracks,
        "album.getinfo": _album_get_info,
        "track.getinfo": _track_get_info,
    }


class EmulatorTransport(httpx.BaseTransport):
    """Sends each request to the emulator's scheme/host/port instead of the one in the request URL.

    Mount it with ``pylast.LastFMNetwork(..., proxy={"https://": EmulatorTransport(emulator.url)})``.
    pylast opens a new ``httpx.Client`` for every call and, when that client exits, calls ``close()`` on the
    mounted transports, possibly while other threads still have calls in flight on the same network. So
    ``close()`` is a no-op here and the real connection pool (thread-safe) is only closed by
    :meth:`shutdown`. The emulator closes each connection after one answer, so nothing lingers.
    """

    def __init__(self, target_url: str):
        target = httpx.URL(target_url)
        self._scheme, self._host, self._port = target.scheme, target.host, target.port
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._scheme, host=self._host, port=self._port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass

    def shutdown(self) -> None:
        self._inner.close()
