"""A local emulator of Spotify's Accounts token endpoint and of a slice of the Web API, answering Spotify's JSON.

Nothing here contacts the real Spotify. The real ``spotipy`` (2.26) is pointed at it like this (the
:meth:`SpotifyEmulator.client` helper does exactly that)::

    with SpotifyEmulator() as fm:                    # client id "test-id", secret "test-secret"
        album_id = fm.add_album("The Beatles", "Abbey Road", "https://i.scdn.co/image/abbey")
        auth = spotipy.SpotifyClientCredentials("test-id", "test-secret",
                                                cache_handler=spotipy.cache_handler.MemoryCacheHandler())
        auth.OAUTH_TOKEN_URL = fm.token_url          # instance attribute; read as self.OAUTH_TOKEN_URL
        sp = spotipy.Spotify(auth_manager=auth)
        sp.prefix = fm.api_prefix                    # "http://127.0.0.1:<port>/v1/" (trailing slash needed)
        sp.search(q="album:Abbey Road artist:The Beatles", type="album", limit=1)

spotipy has no constructor argument for either URL: ``Spotify.__init__`` sets ``self.prefix =
"https://api.spotify.com/v1/"`` and every call does ``url = self.prefix + "search"`` (unless the URL already
starts with "http"); ``SpotifyClientCredentials`` posts to the class attribute ``OAUTH_TOKEN_URL``
("https://accounts.spotify.com/api/token") through ``self.``, so an instance attribute overrides it for that
object only. Use ``MemoryCacheHandler``: the default ``CacheFileHandler`` writes a ``.cache`` file in the cwd.

Endpoints:

* ``POST /api/token`` (Accounts): form ``grant_type=client_credentials``, client credentials in HTTP Basic auth
  (or as ``client_id``/``client_secret`` form fields) -> ``{"access_token", "token_type": "Bearer",
  "expires_in"}``. Errors are 400 ``{"error": "invalid_client" | "unsupported_grant_type" |
  "invalid_request", "error_description": ...}``.
* ``GET /v1/search?q=&type=album,artist&limit=&offset=``: Spotify's field syntax ``album:X artist:Y year:1969``
  (values may be quoted; an unquoted value runs up to the next ``field:``), other words are free text.
  Matching is case- and accent-insensitive on words: every word of a filter must appear in the matching
  name, every free word in the album's or artist's names. Exact name matches are listed first, then
  registration order. Types other than album/artist are accepted and answer empty pages.
* ``GET /v1/albums/{id}``, ``GET /v1/albums?ids=a,b``, ``GET /v1/artists/{id}``, ``GET /v1/artists?ids=a,b``.
* Every ``/v1`` call needs ``Authorization: Bearer <token issued here>``: 401 ``{"error": {"status": 401,
  "message": "No token provided" | "Invalid access token" | "The access token expired"}}`` otherwise.
  Web API errors are ``{"error": {"status", "message"}}``.

Order of checks for every request: record it (``requests``), injected fault (:meth:`fail_next`), then the
endpoint. The answer is held back by ``latency`` seconds.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import typing
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["JsonServiceEmulator", "RecordedRequest", "SpotifyEmulator", "spotify_id_for"]


# =====================================================================================================
# Shared machinery (also used by tests/emulators/openai_api.py)
# =====================================================================================================
class RecordedRequest(typing.NamedTuple):
    """One request as received.

    ``headers`` has lower-cased names; ``query`` is the decoded query string (last value wins); ``json`` is
    the decoded JSON body (None when there is none or it is not JSON); ``form`` the decoded
    ``application/x-www-form-urlencoded`` body ({} otherwise).
    """

    time: float
    method: str
    path: str
    query: dict
    headers: dict
    json: typing.Any
    form: dict


class Answer(typing.NamedTuple):
    status: int
    payload: typing.Any  # dict/list -> JSON; bytes/str -> sent as is
    headers: dict = {}
    content_type: str = "application/json; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    server_version = "envoy"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()

    def do_GET(self):  # noqa: N802 - http.server naming
        self.server.emulator._handle(self, "GET")

    def do_POST(self):  # noqa: N802
        self.server.emulator._handle(self, "POST")

    def do_PUT(self):  # noqa: N802
        self.server.emulator._handle(self, "PUT")

    def do_DELETE(self):  # noqa: N802
        self.server.emulator._handle(self, "DELETE")

    def _write(self, answer: Answer) -> None:
        payload = answer.payload
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif not isinstance(payload, bytes):
            payload = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, str(value))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr logging
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class JsonServiceEmulator:
    """Base of the JSON web-service emulators: server lifecycle, request log, latency and fault injection.

    Subclasses implement ``_route(request) -> Answer`` and ``_fault_payload(status, request) -> dict``.
    """

    thread_name = "json-emulator"

    def __init__(self, *, latency: float = 0.0):
        self.latency = latency
        self.max_in_flight = 0
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[dict] = []
        self._in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self):
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
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

    def __enter__(self):
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
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- faults
    def fail_next(self, n: int = 1, status: int = 503, retry_after: float | None = None, *,
                  path_prefix: str | None = None, headers: dict | None = None, body=None) -> None:
        """Answer the next ``n`` requests (whose path starts with ``path_prefix``, if given) with ``status``.

        ``retry_after`` (seconds) adds a ``Retry-After`` header (integers are written without a decimal point;
        urllib3, hence spotipy, only understands whole seconds or an HTTP date). ``headers`` adds more headers
        (e.g. ``{"retry-after-ms": "250"}`` or ``{"x-should-retry": "false"}``); ``body`` replaces the
        service-shaped error JSON. Faults queue up: each is used up before the next one applies.
        """
        if n < 1:
            raise ValueError("n must be >= 1")
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = _format_seconds(retry_after)
        with self._lock:
            self._faults.append({"remaining": int(n), "status": int(status), "headers": extra,
                                 "path_prefix": path_prefix, "body": body})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ----------------------------------------------------------------- instrumentation
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, path_prefix: str | None = None) -> int:
        """How many requests arrived (whose path starts with ``path_prefix``, if given)."""
        with self._lock:
            if path_prefix is None:
                return len(self._requests)
            return sum(1 for r in self._requests if r.path.startswith(path_prefix))

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
    def _handle(self, handler: _Handler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        split = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        content_type = headers.get("content-type", "")
        body_json, form = None, {}
        if raw:
            text = raw.decode("utf-8", "replace")
            if "x-www-form-urlencoded" in content_type:
                form = dict(parse_qsl(text, keep_blank_values=True))
            else:
                try:
                    body_json = json.loads(text)
                except ValueError:
                    body_json = None
        request = RecordedRequest(time.monotonic(), method, split.path,
                                  dict(parse_qsl(split.query, keep_blank_values=True)), headers, body_json, form)
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fault = self._take_fault(request.path)
        try:
            latency = self.latency
            if latency and latency > 0:
                time.sleep(latency)
            if fault is not None:
                payload = fault["body"] if fault["body"] is not None else self._fault_payload(fault["status"], request)
                answer = Answer(fault["status"], payload, fault["headers"])
            else:
                try:
                    answer = self._route(request)
                except Exception as exc:  # a bug in the emulator: say so instead of hanging the client
                    answer = Answer(500, {"error": {"status": 500, "message": f"emulator error: {exc!r}"}})
            handler._write(answer)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _take_fault(self, path: str) -> dict | None:
        for fault in self._faults:
            if fault["path_prefix"] is None or path.startswith(fault["path_prefix"]):
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _route(self, request: RecordedRequest) -> Answer:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fault_payload(self, status: int, request: RecordedRequest):  # pragma: no cover - abstract
        raise NotImplementedError


# =====================================================================================================
# Spotify
# =====================================================================================================
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE62_ID = re.compile(r"^[0-9A-Za-z]{22}$")
SEARCH_TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
SEARCH_FIELDS = ("album", "artist", "track", "year", "genre", "upc", "isrc", "tag")
_FIELD_RE = re.compile(r"(?<![\w:])(" + "|".join(SEARCH_FIELDS) + r"):", re.IGNORECASE)
ALBUM_IMAGE_SIZES = (640, 300, 64)
ARTIST_IMAGE_SIZES = (640, 320, 160)
_REASONS = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
            429: "API rate limit exceeded", 500: "Server error", 502: "Bad gateway", 503: "Service unavailable"}


def spotify_id_for(*parts: str) -> str:
    """A deterministic 22-character base62 id (what Spotify ids look like) for the given strings."""
    number = int.from_bytes(hashlib.sha256("|".join(p.casefold() for p in parts).encode()).digest(), "big")
    chars = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def _words(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return re.findall(r"\w+", "".join(c for c in decomposed if not unicodedata.combining(c)))


def parse_search_query(q: str) -> tuple[list[str], dict[str, str]]:
    """``"album:Abbey Road artist:\\"The Beatles\\" 1969"`` -> (free words, {field: value}).

    An unquoted field value runs up to the next ``field:``; a quoted one stops at the closing quote and
    whatever follows it is free text.
    """
    free: list[str] = []
    fields: dict[str, str] = {}
    matches = list(_FIELD_RE.finditer(q))
    free += _words(q[:matches[0].start()] if matches else q)
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(q)
        value = q[match.end():end].strip()
        if value.startswith('"') and '"' in value[1:]:
            closing = value.index('"', 1)
            free += _words(value[closing + 1:])
            value = value[1:closing]
        fields[match.group(1).lower()] = value.strip().strip('"').strip()
    return free, fields


def _contains_words(haystack: typing.Iterable[str], needle: str) -> bool:
    wanted = _words(needle)
    have = set(haystack)
    return all(w in have for w in wanted)


def _images(image_url, sizes) -> list[dict]:
    if not image_url:
        return []
    if isinstance(image_url, (list, tuple)):
        return [dict(image) for image in image_url]
    return [{"url": image_url, "height": size, "width": size} for size in sizes]


class _ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class SpotifyEmulator(JsonServiceEmulator):
    """Spotify Accounts (client-credentials token) + Web API look-alike on ``127.0.0.1:<random port>``.

    URLs: :attr:`url` (``http://127.0.0.1:<port>``), :attr:`api_prefix` (``<url>/v1/``, for
    ``Spotify.prefix``), :attr:`token_url` (``<url>/api/token``, for ``OAUTH_TOKEN_URL``).
    Catalogue: :meth:`add_album`, :meth:`add_artist` (both return the Spotify id).
    Tokens: :attr:`issued_tokens`, :meth:`expire_tokens`; lifetime ``token_lifetime`` seconds.
    Faults and instrumentation: see :class:`JsonServiceEmulator` (``fail_next``, ``latency``, ``requests``,
    ``count``, ``reset_counters``).
    Helpers building real spotipy objects pointed here: :meth:`auth_manager`, :meth:`client`.
    """

    thread_name = "spotify-emulator"

    def __init__(self, client_id: str = "test-id", client_secret: str = "test-secret", *, latency: float = 0.0,
                 token_lifetime: int = 3600):
        super().__init__(latency=latency)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._issued: list[str] = []
        self._albums: dict[str, dict] = {}
        self._artists: dict[str, dict] = {}

    # ----------------------------------------------------------------- URLs and spotipy helpers
    @property
    def api_prefix(self) -> str:
        return f"{self.url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/token"

    def auth_manager(self, client_id: str | None = None, client_secret: str | None = None, **kwargs):
        """A real ``spotipy.SpotifyClientCredentials`` posting to :attr:`token_url`, caching in memory."""
        import spotipy
        from spotipy.cache_handler import MemoryCacheHandler

        kwargs.setdefault("cache_handler", MemoryCacheHandler())
        kwargs.setdefault("requests_timeout", 5)
        manager = spotipy.SpotifyClientCredentials(
            client_id=self.client_id if client_id is None else client_id,
            client_secret=self.client_secret if client_secret is None else client_secret, **kwargs)
        manager.OAUTH_TOKEN_URL = self.token_url
        return manager

    def client(self, auth_manager=None, **kwargs):
        """A real ``spotipy.Spotify`` on :attr:`api_prefix`; ``kwargs`` go to its constructor (``retries``,
        ``status_retries``, ``status_forcelist``, ``backoff_factor``, ``requests_timeout``, ``requests_session``)."""
        import spotipy

        sp = spotipy.Spotify(auth_manager=auth_manager or self.auth_manager(), **kwargs)
        sp.prefix = self.api_prefix
        return sp

    # ----------------------------------------------------------------- catalogue
    def add_artist(self, name: str, image_url=None, spotify_id: str | None = None, *,
                   genres: typing.Iterable[str] = (), popularity: int = 50, followers: int = 1000) -> str:
        """Register artist ``name`` (or update the one with that name, case-insensitively); returns its id.

        ``image_url`` is one URL (listed at 640/320/160 px) or a list of ``{"url", "height", "width"}``.
        """
        with self._lock:
            artist = self._artist_by_name(name) if spotify_id is None else self._artists.get(spotify_id)
            if artist is None:
                artist_id = spotify_id or spotify_id_for("artist", name)
                artist = {"id": artist_id, "name": name, "image_url": None, "genres": [], "popularity": popularity,
                          "followers": followers}
                self._artists[artist_id] = artist
            if image_url is not None:
                artist["image_url"] = image_url
            if genres:
                artist["genres"] = list(genres)
            return artist["id"]

    def add_album(self, artist: str | typing.Sequence[str], title: str, image_url=None,
                  spotify_id: str | None = None, *, release_date: str = "2000-01-01", total_tracks: int = 10,
                  album_type: str = "album", label: str = "", popularity: int = 50) -> str:
        """Register an album by ``artist`` (a name or a list of names; unknown artists are created without an
        image); returns its id (deterministic from artist and title unless ``spotify_id`` is given).

        ``image_url`` is one URL (listed at 640/300/64 px, same URL) or a list of ``{"url", "height", "width"}``.
        """
        names = [artist] if isinstance(artist, str) else list(artist)
        if not names:
            raise ValueError("an album needs at least one artist")
        with self._lock:
            artist_ids = [self.add_artist(name) for name in names]
            album_id = spotify_id or spotify_id_for("album", names[0], title)
            self._albums[album_id] = {
                "id": album_id, "name": title, "artist_ids": artist_ids, "image_url": image_url,
                "release_date": release_date, "total_tracks": int(total_tracks), "album_type": album_type,
                "label": label, "popularity": popularity,
            }
            return album_id

    def _artist_by_name(self, name: str) -> dict | None:
        wanted = name.casefold()
        return next((a for a in self._artists.values() if a["name"].casefold() == wanted), None)

    # ----------------------------------------------------------------- tokens
    @property
    def issued_tokens(self) -> list[str]:
        """Access tokens handed out by ``POST /api/token``, oldest first."""
        with self._lock:
            return list(self._issued)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (``/v1`` then answers 401 "The access token expired")."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    # ----------------------------------------------------------------- serving
    def _fault_payload(self, status: int, request: RecordedRequest):
        if request.path.startswith("/api/"):
            return {"error": "server_error" if status >= 500 else "invalid_request",
                    "error_description": _REASONS.get(status, "Error")}
        return {"error": {"status": status, "message": _REASONS.get(status, "Error")}}

    def _route(self, request: RecordedRequest) -> Answer:
        path = request.path.rstrip("/") or "/"
        if path == "/api/token":
            if request.method != "POST":
                return Answer(405, {"error": "invalid_request", "error_description": "Only POST is supported"})
            return self._token(request)
        if not path.startswith("/v1/"):
            return Answer(404, {"error": {"status": 404, "message": "Service not found"}})
        try:
            with self._lock:
                self._check_token(request)
                if request.method != "GET":
                    raise _ApiError(405, "Method not allowed")
                return Answer(200, self._web_api(path[len("/v1"):], request.query))
        except _ApiError as error:
            return Answer(error.status, {"error": {"status": error.status, "message": error.message}}, error.headers)

    def _token(self, request: RecordedRequest) -> Answer:
        client_id = client_secret = None
        auth = request.headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return Answer(400, {"error": "invalid_client", "error_description": "Invalid client"})
        else:
            client_id, client_secret = request.form.get("client_id"), request.form.get("client_secret")
        grant_type = request.form.get("grant_type")
        if not grant_type:
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "grant_type parameter is missing"})
        if client_id != self.client_id:
            return Answer(400, {"error": "invalid_client", "error_description": "Invalid client"})
        if client_secret != self.client_secret:
            return Answer(400, {"error": "invalid_client", "error_description": "Invalid client secret"})
        if grant_type != "client_credentials":
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "grant_type must be client_credentials"})
        token = "BQ" + secrets.token_urlsafe(40)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
            self._issued.append(token)
        return Answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime})

    def _check_token(self, request: RecordedRequest) -> None:
        auth = request.headers.get("authorization", "")
        if not auth:
            raise _ApiError(401, "No token provided")
        scheme, _, token = auth.partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            raise _ApiError(401, "Invalid access token",
                            {"WWW-Authenticate": 'Bearer realm="spotify", error="invalid_token", '
                                                 'error_description="Invalid access token"'})
        if expiry <= time.monotonic():
            raise _ApiError(401, "The access token expired",
                            {"WWW-Authenticate": 'Bearer realm="spotify", error="invalid_token", '
                                                 'error_description="The access token expired"'})

    def _web_api(self, path: str, query: dict):
        if path == "/search":
            return self._search(query)
        for kind, store, render in (("albums", self._albums, self._album_full),
                                    ("artists", self._artists, self._artist_full)):
            if path == f"/{kind}":
                ids = [i for i in (query.get("ids") or "").split(",") if i]
                if not ids:
                    raise _ApiError(400, "invalid id")
                if len(ids) > 20:
                    raise _ApiError(400, "Too many ids requested")
                return {kind: [render(store[i]) if i in store else None for i in ids]}
            if path.startswith(f"/{kind}/") and path.count("/") == 2:
                item_id = path.rsplit("/", 1)[1]
                if not _BASE62_ID.match(item_id):
                    raise _ApiError(400, "Invalid base62 id")
                if item_id not in store:
                    raise _ApiError(404, "Resource not found")
                return render(store[item_id])
        raise _ApiError(404, "Service not found")

    # ----------------------------------------------------------------- search
    def _search(self, query: dict) -> dict:
        q = query.get("q") or query.get("query") or ""  # the "next"/"href" URLs Spotify builds use query=
        if not q.strip():
            raise _ApiError(400, "No search query")
        types = [t.strip() for t in (query.get("type") or "").split(",") if t.strip()]
        if not types:
            raise _ApiError(400, "Missing parameter type")
        for t in types:
            if t not in SEARCH_TYPES:
                raise _ApiError(400, f"Bad search type field {t}")
        limit = self._int_param(query, "limit", 20, 0, 50, "Invalid limit")
        offset = self._int_param(query, "offset", 0, 0, 1000, "Invalid offset")
        free, fields = parse_search_query(q)
        result = {}
        for t in types:
            if t == "album":
                found = [self._album_simple(a) for a in self._match_albums(free, fields)]
            elif t == "artist":
                found = [self._artist_full(a) for a in self._match_artists(free, fields)]
            else:
                found = []
            result[t + "s"] = self._page(found, q, t, limit, offset)
        return result

    @staticmethod
    def _int_param(query: dict, name: str, default: int, lo: int, hi: int, message: str) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _ApiError(400, message) from None
        if not lo <= value <= hi:
            raise _ApiError(400, message)
        return value

    def _page(self, items: list, q: str, kind: str, limit: int, offset: int) -> dict:
        def href(off: int) -> str:
            return f"{self.api_prefix}search?" + urlencode({"offset": off, "limit": limit, "query": q, "type": kind})

        total = len(items)
        return {
            "href": href(offset),
            "items": items[offset:offset + limit],
            "limit": limit,
            "next": href(offset + limit) if offset + limit < total else None,
            "offset": offset,
            "previous": href(max(0, offset - limit)) if offset > 0 else None,
            "total": total,
        }

    def _match_albums(self, free: list[str], fields: dict[str, str]) -> list[dict]:
        if "track" in fields or "isrc" in fields or "upc" in fields:
            return []  # no tracks or codes are registered
        scored = []
        for position, album in enumerate(self._albums.values()):
            album_words = _words(album["name"])
            artist_names = [self._artists[i]["name"] for i in album["artist_ids"]]
            artist_words = [w for name in artist_names for w in _words(name)]
            if "album" in fields and not _contains_words(album_words, fields["album"]):
                continue
            if "artist" in fields and not any(_contains_words(_words(n), fields["artist"]) for n in artist_names):
                continue
            if "year" in fields and not self._year_matches(album["release_date"], fields["year"]):
                continue
            everything = set(album_words) | set(artist_words)
            if not all(w in everything for w in free):
                continue
            exact_album = "album" in fields and _words(fields["album"]) == album_words
            exact_artist = "artist" in fields and any(_words(fields["artist"]) == _words(n) for n in artist_names)
            scored.append((-(exact_album + exact_artist), position, album))
        return [entry[2] for entry in sorted(scored, key=lambda e: e[:2])]

    def _match_artists(self, free: list[str], fields: dict[str, str]) -> list[dict]:
        # album/track/year filters are ignored for artist searches
        scored = []
        for position, artist in enumerate(self._artists.values()):
            words = _words(artist["name"])
            if "artist" in fields and not _contains_words(words, fields["artist"]):
                continue
            if "genre" in fields and not any(_contains_words(_words(g), fields["genre"]) for g in artist["genres"]):
                continue
            if not all(w in set(words) for w in free):
                continue
            exact = ("artist" in fields and _words(fields["artist"]) == words) or (free and free == words)
            scored.append((-int(bool(exact)), position, artist))
        return [entry[2] for entry in sorted(scored, key=lambda e: e[:2])]

    @staticmethod
    def _year_matches(release_date: str, wanted: str) -> bool:
        year = (release_date or "")[:4]
        if not year.isdigit():
            return False
        lo, _, hi = wanted.strip().partition("-")
        try:
            return int(lo) <= int(year) <= int(hi or lo)
        except ValueError:
            return False

    # ----------------------------------------------------------------- JSON shapes (Spotify Web API objects)
    def _artist_simple(self, artist_id: str) -> dict:
        artist = self._artists[artist_id]
        return {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
            "href": f"{self.api_prefix}artists/{artist_id}",
            "id": artist_id,
            "name": artist["name"],
            "type": "artist",
            "uri": f"spotify:artist:{artist_id}",
        }

    def _artist_full(self, artist: dict) -> dict:
        return {
            **self._artist_simple(artist["id"]),
            "followers": {"href": None, "total": artist["followers"]},
            "genres": list(artist["genres"]),
            "images": _images(artist["image_url"], ARTIST_IMAGE_SIZES),
            "popularity": artist["popularity"],
        }

    def _album_simple(self, album: dict) -> dict:
        album_id = album["id"]
        precision = {4: "year", 7: "month"}.get(len(album["release_date"]), "day")
        return {
            "album_type": album["album_type"],
            "total_tracks": album["total_tracks"],
            "available_markets": ["FR", "GB", "US"],
            "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
            "href": f"{self.api_prefix}albums/{album_id}",
            "id": album_id,
            "images": _images(album["image_url"], ALBUM_IMAGE_SIZES),
            "name": album["name"],
            "release_date": album["release_date"],
            "release_date_precision": precision,
            "type": "album",
            "uri": f"spotify:album:{album_id}",
            "artists": [self._artist_simple(i) for i in album["artist_ids"]],
        }

    def _album_full(self, album: dict) -> dict:
        album_id = album["id"]
        return {
            **self._album_simple(album),
            "tracks": {"href": f"{self.api_prefix}albums/{album_id}/tracks?offset=0&limit=50", "items": [],
                       "limit": 50, "next": None, "offset": 0, "previous": None, "total": 0},
            "copyrights": [],
            "external_ids": {},
            "genres": [],
            "label": album["label"],
            "popularity": album["popularity"],
        }
