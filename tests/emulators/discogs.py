"""A local emulator of the Discogs HTTP API (``https://api.discogs.com``) that answers JSON like Discogs.

The real ``python3-discogs-client`` (2.10) can talk to it. The library has no constructor argument for the
base URL: every URL it builds itself starts with the ``Client._base_url`` class attribute, so set it on the
instance (this is what :meth:`DiscogsEmulator.client` does)::

    with DiscogsEmulator() as fm:                    # user "collector", personal token "test-token"
        fm.add_items(generate_items(250, duplicate_every=10))
        client = discogs_client.Client("SillonTests/1.0", user_token=fm.token)
        client._base_url = fm.url                    # == fm.client(); never reaches api.discogs.com
        me = client.identity()
        folder = me.collection_folders[0]            # "All"
        releases = folder.releases
        releases.per_page = 100
        for item in releases: ...                    # one GET per page, nothing per item

Every URL the emulator puts in its JSON (``resource_url``, ``collection_folders_url``, pagination
``urls``...) points back at the emulator, because the library follows those absolute URLs as they are.
Nothing here contacts the real Discogs.

Implemented (GET only; other methods on these paths answer 405, unknown paths 404):

* ``/oauth/identity`` -> ``{id, username, resource_url, consumer_name}``
* ``/users/{username}`` (profile, with ``collection_folders_url``; the library fetches it on
  ``User.collection_folders``)
* ``/users/{username}/collection/folders`` -> ``{"folders": [{id, name, count, resource_url}, ...]}``:
  folder 0 "All" (every item) and 1 "Uncategorized", plus any :meth:`DiscogsEmulator.add_folder`
* ``/users/{username}/collection/folders/{folder_id}`` -> one folder
* ``/users/{username}/collection/folders/{folder_id}/releases?page=&per_page=&sort=&sort_order=``
* ``/users/{username}/collection/releases/{release_id}`` (every instance of one release, paginated)
* ``/releases/{id}``, ``/masters/{id}``, ``/artists/{id}``, ``/labels/{id}``: small documents built from the
  collection data, so that the library's lazy "refresh" of a missing attribute lands here (and is counted)
* ``/images/{anything}``: an 8x8 grey JPEG, without auth, rate limit, faults or rate-limit headers (a stand-in
  for the image CDN; use ``generate_items(image_base=fm.image_base)`` to point covers at it)

Semantics (one consistent choice where Discogs does not document the behaviour):

* Auth: every API path requires the user's personal token, either as the ``token`` query parameter (what
  ``discogs_client`` sends) or as ``Authorization: Discogs token=<token>``. A missing or wrong token answers
  401 ``{"message": "You must authenticate to access this resource."}`` (real Discogs serves public data
  without a token; the emulator is stricter). Another user name answers 404.
* Collection listing: ``per_page`` default 50, clamped to 1..100 (``max_per_page``), non-numeric -> 50;
  ``page`` default 1, < 1 or non-numeric -> 1; a page past the end is an empty ``releases`` list.
  ``pagination = {page, pages, per_page, items, urls}``; ``pages = max(1, ceil(items / per_page))``;
  ``urls`` has ``first``/``prev`` when page > 1 and ``next``/``last`` when page < pages, each an absolute
  emulator URL (the ``token`` parameter is not copied into them).
* Sort keys (as documented by Discogs): ``label artist title catno format rating added year``; ``sort_order``
  ``asc`` (default when ``sort`` is given) or ``desc``. Discogs does not document the order used when no
  ``sort`` is given: the emulator uses ``default_sort``/``default_sort_order`` (``added``, ``desc``: newest
  first, as in the client library's recorded fixture). Ties are broken by ``instance_id`` (in the same
  direction), so the order is total and paging is stable. An unknown ``sort`` key is ignored (default order).
* Items: two copies of a release are two items with the same ``id`` (release id) and different
  ``instance_id``. Release metadata (``basic_information``) belongs to the release, shared by its copies.
  ``notes`` is only present on an item that has notes. ``date_added`` is rendered in Discogs' style, in
  America/Los_Angeles time: ``2015-04-14T03:23:29-07:00``.
* Rate limit: every API answer carries ``X-Discogs-Ratelimit`` (``rate_limit_per_minute`` or 60),
  ``X-Discogs-Ratelimit-Used`` (requests counted in the sliding window, this one included) and
  ``X-Discogs-Ratelimit-Remaining``. With ``rate_limit_per_minute=N``, a request arriving when N requests
  were already counted in the last ``rate_limit_window`` seconds (60 by default; shorten it in tests) answers
  429 ``{"message": "You are making requests too quickly."}`` and is not counted itself.
* Faults (:meth:`DiscogsEmulator.fail_next`): queued answers such as 429 (optionally with ``Retry-After``),
  500 (JSON body) or 502/503/504 (an HTML page, as from the proxy in front of Discogs).

Order of checks for every request: record it (``requests``), images short-cut, rate limit, injected fault,
token, route. Whatever the outcome, the answer is held back by ``latency`` seconds (decided on arrival).
"""
from __future__ import annotations

import collections
import copy
import datetime as dt
import hashlib
import json
import math
import re
import threading
import time
import typing
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = [
    "DEFAULT_FORMATS",
    "MESSAGES",
    "DiscogsEmulator",
    "RecordedRequest",
    "generate_items",
]

try:
    from zoneinfo import ZoneInfo

    _DISCOGS_TZ: dt.tzinfo = ZoneInfo("America/Los_Angeles")
except Exception:  # pragma: no cover - no tz database: a fixed Pacific offset is close enough
    _DISCOGS_TZ = dt.timezone(dt.timedelta(hours=-8))

DEFAULT_FORMATS: list[dict] = [{"name": "Vinyl", "qty": "1", "descriptions": ["LP", "Album"]}]
DEFAULT_LABELS: list[dict] = [{"name": "Not On Label", "catno": "none"}]
SORT_KEYS = ("label", "artist", "title", "catno", "format", "rating", "added", "year")

MESSAGES: dict[int, str] = {
    401: "You must authenticate to access this resource.",
    404: "The requested resource was not found.",
    405: "Method not allowed.",
    429: "You are making requests too quickly.",
    500: "An internal server error occurred.",
}
NO_SUCH_USER = "User does not exist or may have been deleted."
_HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                 504: "Gateway Time-out", 429: "Too Many Requests"}

# Items added without ``date_added`` get this instant plus one minute per item added so far.
DEFAULT_ADDED_START = dt.datetime(2021, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
REGISTERED = "2012-08-15T21:13:36-07:00"


def _tiny_jpeg() -> bytes:
    """An 8x8 mid-grey baseline JPEG (one DC-only block), built by hand: no image library needed."""
    def seg(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    one_code = bytes([1] + [0] * 15)  # a Huffman table holding a single 1-bit code
    return (b"\xff\xd8"
            + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + seg(0xDB, b"\x00" + b"\x01" * 64)
            + seg(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00")
            + seg(0xC4, b"\x00" + one_code + b"\x00")
            + seg(0xC4, b"\x10" + one_code + b"\x00")
            + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
            + b"\x3f\xff\xd9")


JPEG_BYTES = _tiny_jpeg()


class RecordedRequest(typing.NamedTuple):
    """One request as received. ``query`` keeps the last value of repeated parameters."""

    time: float  # time.monotonic() on arrival
    method: str
    path: str  # decoded path, without the query string
    query: dict
    headers: dict  # as sent (e.g. "User-Agent")

    def header(self, name: str, default=None):
        """A header by case-insensitive name."""
        wanted = name.casefold()
        for key, value in self.headers.items():
            if key.casefold() == wanted:
                return value
        return default

    @property
    def user_agent(self) -> str | None:
        return self.header("User-Agent")


def _stable_id(kind: str, name: str) -> int:
    """A deterministic Discogs-looking id for an artist/label known only by name."""
    return zlib.crc32(f"{kind}:{name}".encode()) % 9_000_000 + 100_000


def _to_instant(value) -> dt.datetime:
    if isinstance(value, bool):
        raise TypeError("date_added must be an ISO 8601 string, a datetime or a Unix time")
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return instant


def _discogs_time(instant: dt.datetime) -> str:
    return instant.astimezone(_DISCOGS_TZ).isoformat(timespec="seconds")


def _artist(entry) -> dict:
    if isinstance(entry, str):
        entry = {"name": entry}
    name = str(entry["name"])
    return {"name": name, "anv": str(entry.get("anv") or ""), "join": str(entry.get("join") or ""),
            "role": str(entry.get("role") or ""), "tracks": str(entry.get("tracks") or ""),
            "id": int(entry.get("id") or _stable_id("artist", name))}


def _label(entry) -> dict:
    if isinstance(entry, str):
        entry = {"name": entry}
    name = str(entry["name"])
    return {"name": name, "catno": str(entry.get("catno") or ""), "entity_type": "1",
            "entity_type_name": "Label", "id": int(entry.get("id") or _stable_id("label", name))}


def _format(entry) -> dict:
    if isinstance(entry, str):
        entry = {"name": entry}
    out = dict(entry)
    out["name"] = str(out.get("name") or "Vinyl")
    out["qty"] = str(out.get("qty") or "1")
    out["descriptions"] = list(out.get("descriptions") or [])
    return out


@dataclass
class _Release:
    id: int
    title: str
    year: int
    artists: list
    labels: list
    formats: list
    genres: list
    styles: list
    thumb: str
    cover_image: str
    master_id: int
    country: str
    tracklist: list


@dataclass
class _Item:
    instance_id: int
    release_id: int
    folder_id: int
    rating: int
    added: dt.datetime
    notes: list = field(default_factory=list)


class _Answer(typing.NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: dict


class _ApiError(Exception):
    def __init__(self, status: int, message: str | None = None):
        super().__init__(status)
        self.status = status
        self.message = message or MESSAGES.get(status, "Error")


def _html_error(status: int) -> bytes:
    title = f"{status} {_HTTP_REASONS.get(status, 'Error')}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n").encode()


def generate_items(n: int, *, start_release_id: int = 1_000_001, duplicate_every: int | None = None,
                   start_date: str = "2020-01-01T12:00:00-08:00", step_minutes: int = 60, artists: int = 40,
                   labels: int = 12, masters_every: int = 3, image_base: str = "https://i.discogs.invalid",
                   with_images: bool = True, folder_id: int = 1, title_prefix: str = "Album") -> list[dict]:
    """``n`` deterministic collection items (dicts for :meth:`DiscogsEmulator.add_items`), oldest first.

    Item ``i`` (0-based) is added ``step_minutes`` after item ``i - 1``. Release ids count up from
    ``start_release_id``, except that with ``duplicate_every=k`` every k-th item (i = k-1, 2k-1, ...) is a
    second copy of the release of the item before it (same release id and metadata, new instance). Titles are
    ``f"{title_prefix} {i:05d}"`` (the release's first item index), artists ``"Artist 00".."Artist NN"``,
    labels ``"Label 00"..`` with catno ``"LBL-<release id>"``; formats alternate vinyl LP / CD; every
    ``masters_every``-th release has a master id; ratings cycle 0..5. Cover/thumb URLs are under
    ``image_base``: by default a host that never resolves (``.invalid``); pass ``fm.image_base`` to get URLs the
    emulator serves (an 8x8 JPEG); empty strings without ``with_images``.
    """
    start = _to_instant(start_date)
    genres_cycle = (["Rock"], ["Electronic"], ["Jazz"], ["Hip Hop"], ["Rock", "Pop"], ["Funk / Soul"])
    styles_cycle = (["Indie Rock"], ["Techno", "Ambient"], ["Hard Bop"], ["Boom Bap"], ["Synth-pop"], [])
    items: list[dict] = []
    release_id = start_release_id - 1
    meta: dict = {}
    for i in range(n):
        duplicate = bool(duplicate_every) and i > 0 and i % duplicate_every == duplicate_every - 1
        if not duplicate:
            release_id += 1
            k = release_id - start_release_id
            digest = hashlib.md5(str(release_id).encode()).hexdigest()[:16]
            cover = f"{image_base}/R-{release_id}-{digest}.jpeg.jpg" if with_images else ""
            thumb = f"{image_base}/R-150-{release_id}-{digest}.jpeg.jpg" if with_images else ""
            vinyl = k % 2 == 0
            meta = {
                "release_id": release_id,
                "title": f"{title_prefix} {i:05d}",
                "artists": [f"Artist {k % artists:02d}"],
                "year": 1960 + k % 60,
                "formats": ([{"name": "Vinyl", "qty": "1", "descriptions": ["LP", "Album"]}] if vinyl
                            else [{"name": "CD", "qty": "1", "descriptions": ["Album"]}]),
                "labels": [{"name": f"Label {k % labels:02d}", "catno": f"LBL-{release_id}"}],
                "genres": list(genres_cycle[k % len(genres_cycle)]),
                "styles": list(styles_cycle[k % len(styles_cycle)]),
                "cover_image": cover,
                "thumb": thumb,
                "master_id": 500_000 + k if masters_every and k % masters_every == 0 else 0,
            }
        added = start + dt.timedelta(minutes=step_minutes * i)
        items.append({**copy.deepcopy(meta), "date_added": _discogs_time(added), "rating": i % 6,
                      "folder_id": folder_id})
    return items


class _Handler(BaseHTTPRequestHandler):
    server_version = "lighttpd"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection (discogs_client opens a new session per call)

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self):  # noqa: N802 - http.server naming
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_PATCH(self):  # noqa: N802
        self._serve("PATCH")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.emulator._handle(self, method, self.path)

    def _write(self, answer: _Answer):
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout): nothing to do
            pass

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr logging
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


class DiscogsEmulator:
    """A Discogs API look-alike on ``127.0.0.1:<random port>``; see the module docstring for semantics.

    Controls (thread-safe, usable while requests are being served):

    * collection: :meth:`add_item`, :meth:`add_items` (with :func:`generate_items`), :meth:`remove_item`,
      :meth:`move_item`, :meth:`clear_collection`, :meth:`add_folder`, :meth:`items`.
    * faults: :meth:`fail_next`, :meth:`clear_faults`, ``latency`` (seconds added to every answer),
      ``rate_limit_per_minute`` (None = never 429) with ``rate_limit_window`` seconds, :meth:`has_room`,
      :meth:`reset_rate_limit`.
    * instrumentation: ``requests`` (copy of the :class:`RecordedRequest` list), :meth:`count`,
      :meth:`reset_counters`, ``in_flight``, ``max_in_flight``.
    """

    def __init__(self, username: str = "collector", token: str = "test-token", *, user_id: int = 4_242_424,
                 consumer_name: str = "Sillon Tests", latency: float = 0.0, rate_limit_per_minute: int | None = None,
                 rate_limit_window: float = 60.0, rate_limit_retry_after: bool = False,
                 default_sort: str = "added", default_sort_order: str = "desc", default_per_page: int = 50,
                 max_per_page: int = 100):
        self.username = username
        self.token = token
        self.user_id = user_id
        self.consumer_name = consumer_name
        self.latency = latency
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_limit_window = rate_limit_window
        self.rate_limit_retry_after = rate_limit_retry_after
        self.default_sort = default_sort
        self.default_sort_order = default_sort_order
        self.default_per_page = default_per_page
        self.max_per_page = max_per_page
        self.max_in_flight = 0
        self._lock = threading.RLock()
        self._folders: dict[int, str] = {0: "All", 1: "Uncategorized"}
        self._next_folder_id = 1_000_001
        self._releases: dict[int, _Release] = {}
        self._items: dict[int, _Item] = {}
        self._next_instance_id = 300_000_001
        self._added_seq = 0
        self._faults: list[dict] = []
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._window: collections.deque[float] = collections.deque()
        self._server: _Server | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> DiscogsEmulator:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="discogs-emulator", daemon=True)
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

    def __enter__(self) -> DiscogsEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (still known after :meth:`stop`, for answers that were in flight)."""
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def url(self) -> str:
        """The API base URL, without a trailing slash (like ``Client._base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def image_base(self) -> str:
        """Base URL of the emulator's stand-in image CDN, for ``generate_items(image_base=...)``."""
        return f"{self.url}/images"

    def client(self, user_agent: str = "SillonTests/1.0 +https://example.invalid/sillon", token: str | None = None,
               *, backoff_enabled: bool = True):
        """A real ``discogs_client.Client`` (user-token auth) whose ``_base_url`` is this emulator.

        ``backoff_enabled`` is the library's own switch (default True: it silently retries 429 answers
        with a random sleep of up to 2**attempt seconds, up to 100 times).
        """
        import discogs_client

        client = discogs_client.Client(user_agent, user_token=self.token if token is None else token)
        client._base_url = self.url
        client.backoff_enabled = backoff_enabled
        return client

    # ----------------------------------------------------------------- collection
    def add_folder(self, name: str, folder_id: int | None = None) -> int:
        """Create a collection folder; returns its id (auto ids count up from 1000001)."""
        with self._lock:
            if folder_id is None:
                folder_id = self._next_folder_id
                self._next_folder_id += 1
            folder_id = int(folder_id)
            if folder_id in self._folders:
                raise ValueError(f"folder {folder_id} exists")
            self._folders[folder_id] = str(name)
            self._next_folder_id = max(self._next_folder_id, folder_id + 1)
            return folder_id

    def add_item(self, release_id: int, instance_id: int | None = None, *, title: str | None = None,
                 artists: list | None = None, year: int | None = None, formats: list | None = None,
                 labels: list | None = None, genres: list | None = None, styles: list | None = None,
                 cover_image: str | None = None, thumb: str | None = None, master_id: int | None = None,
                 country: str | None = None, tracklist: list | None = None, date_added=None, rating: int = 0,
                 folder_id: int = 1, notes: list | None = None) -> int:
        """Add one copy (instance) of release ``release_id`` to folder ``folder_id``; returns its instance id.

        Release metadata (``title`` .. ``tracklist``) belongs to the release: for a release already known
        (another copy), arguments left at None keep its metadata and given ones replace it for every copy.
        For a new release the defaults are ``"Release <id>"`` by ``"Artist <id>"``, year 0, one vinyl LP,
        label "Not On Label", no genres/styles/images, master 0. ``artists`` are names or dicts (name, id,
        anv, join, role, tracks); ``labels`` are names or dicts (name, catno, id); ids default to a stable
        hash of the name. ``date_added``: ISO 8601 string, datetime or Unix time (naive = UTC); default
        2021-01-01T12:00Z plus one minute per item added so far. ``notes``: ``[{"field_id", "value"}]``.
        """
        release_id = int(release_id)
        if release_id <= 0:
            raise ValueError("release ids are positive")
        with self._lock:
            folder_id = int(folder_id)
            if folder_id == 0 or folder_id not in self._folders:
                raise ValueError(f"cannot add to folder {folder_id}")
            if instance_id is None:
                instance_id = self._next_instance_id
            instance_id = int(instance_id)
            if instance_id in self._items:
                raise ValueError(f"instance {instance_id} exists")
            self._next_instance_id = max(self._next_instance_id, instance_id + 1)
            release = self._releases.get(release_id)
            if release is None:
                release = _Release(id=release_id, title=f"Release {release_id}", year=0,
                                   artists=[_artist(f"Artist {release_id}")], labels=[_label(DEFAULT_LABELS[0])],
                                   formats=[_format(f) for f in DEFAULT_FORMATS], genres=[], styles=[], thumb="",
                                   cover_image="", master_id=0, country="", tracklist=[])
                self._releases[release_id] = release
            if title is not None:
                release.title = str(title)
            if artists is not None:
                release.artists = [_artist(a) for a in artists]
            if year is not None:
                release.year = int(year)
            if formats is not None:
                release.formats = [_format(f) for f in formats]
            if labels is not None:
                release.labels = [_label(entry) for entry in labels]
            if genres is not None:
                release.genres = [str(g) for g in genres]
            if styles is not None:
                release.styles = [str(s) for s in styles]
            if cover_image is not None:
                release.cover_image = str(cover_image)
            if thumb is not None:
                release.thumb = str(thumb)
            if master_id is not None:
                release.master_id = int(master_id)
            if country is not None:
                release.country = str(country)
            if tracklist is not None:
                release.tracklist = [dict(t) for t in tracklist]
            if date_added is None:
                added = DEFAULT_ADDED_START + dt.timedelta(minutes=self._added_seq)
            else:
                added = _to_instant(date_added)
            self._added_seq += 1
            rating = int(rating)
            if not 0 <= rating <= 5:
                raise ValueError("rating is 0..5")
            self._items[instance_id] = _Item(instance_id=instance_id, release_id=release_id, folder_id=folder_id,
                                             rating=rating, added=added, notes=[dict(n) for n in notes or []])
            return instance_id

    def add_items(self, items: typing.Iterable[dict]) -> list[int]:
        """:meth:`add_item` for each dict (keys = its argument names); returns the instance ids."""
        return [self.add_item(**dict(item)) for item in items]

    def remove_item(self, instance_id: int) -> None:
        """Remove one instance from the collection (KeyError if unknown). The release stays in the database."""
        with self._lock:
            del self._items[int(instance_id)]

    def move_item(self, instance_id: int, folder_id: int) -> None:
        with self._lock:
            folder_id = int(folder_id)
            if folder_id == 0 or folder_id not in self._folders:
                raise ValueError(f"cannot move to folder {folder_id}")
            self._items[int(instance_id)].folder_id = folder_id

    def clear_collection(self) -> None:
        with self._lock:
            self._items.clear()

    def items(self, folder_id: int = 0) -> list[dict]:
        """The items of a folder in the default listing order, as the API lists them (``releases`` entries)."""
        with self._lock:
            return [self._item_json(item) for item in self._sorted(self._folder_items(folder_id), None, None)]

    # ----------------------------------------------------------------- faults
    def fail_next(self, n: int = 1, status: int = 429, *, retry_after: int | None = None, message: str | None = None,
                  html: bool | None = None, path_prefix: str | None = None) -> None:
        """Answer the next ``n`` API requests (under ``path_prefix`` only, if given) with HTTP ``status``.

        The body is JSON ``{"message": ...}`` (429: "You are making requests too quickly.", others from
        ``MESSAGES``, or ``message``), except for 502/503/504 which get an HTML page like a proxy's
        (``html`` forces one or the other; discogs_client raises MalformedResponseError on an HTML body).
        ``retry_after`` adds a ``Retry-After`` header (seconds). Faults queue up after earlier ones.
        """
        if html is None:
            html = status in (502, 503, 504)
        with self._lock:
            self._faults.append({"remaining": int(n), "status": int(status), "retry_after": retry_after,
                                 "message": message, "html": html, "path_prefix": path_prefix})

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(f["remaining"] for f in self._faults)

    def has_room(self) -> bool:
        """Whether a request arriving now would be counted rather than refused with a 429."""
        with self._lock:
            now = time.monotonic()
            counted = sum(1 for t in self._window if t > now - self.rate_limit_window)
            return self.rate_limit_per_minute is None or counted < self.rate_limit_per_minute

    def reset_rate_limit(self) -> None:
        """Forget the requests counted in the rate-limit window."""
        with self._lock:
            self._window.clear()

    # ----------------------------------------------------------------- instrumentation
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, path_prefix: str | None = None, method: str | None = None) -> int:
        """How many requests arrived (whose path starts with ``path_prefix`` / with this HTTP method)."""
        with self._lock:
            return sum(1 for r in self._requests
                       if (path_prefix is None or r.path.startswith(path_prefix))
                       and (method is None or r.method == method.upper()))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def reset_counters(self) -> None:
        """Forget recorded requests and restart ``max_in_flight`` (the rate-limit window is kept)."""
        with self._lock:
            self._requests.clear()
            self.max_in_flight = self._in_flight

    # ----------------------------------------------------------------- request handling
    def _handle(self, handler: _Handler, method: str, raw_path: str) -> None:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            now = time.monotonic()
            self._requests.append(RecordedRequest(now, method, path, query, dict(handler.headers.items())))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            early, rate_headers = self._early_answer(method, path, now)
        try:
            latency = self.latency
            if latency and latency > 0:
                time.sleep(latency)
            answer = early if early is not None else self._answer(method, path, query, handler.headers)
            if rate_headers:
                answer.headers.update(rate_headers)
            handler._write(answer)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _rate_headers(self, used: int) -> dict:
        limit = self.rate_limit_per_minute if self.rate_limit_per_minute is not None else 60
        return {"X-Discogs-Ratelimit": str(limit), "X-Discogs-Ratelimit-Used": str(used),
                "X-Discogs-Ratelimit-Remaining": str(max(0, limit - used))}

    def _early_answer(self, method: str, path: str, now: float) -> tuple[_Answer | None, dict]:
        """Decisions taken on arrival (under the lock): images, rate limit, injected faults."""
        if path.startswith("/images/"):
            if method != "GET":
                return self._json_error(_ApiError(405)), {}
            return _Answer(200, "image/jpeg", JPEG_BYTES, {"Cache-Control": "public, max-age=31536000"}), {}
        window = self.rate_limit_window
        while self._window and self._window[0] <= now - window:
            self._window.popleft()
        limit = self.rate_limit_per_minute
        if limit is not None and len(self._window) >= limit:
            answer = self._json_error(_ApiError(429))
            if self.rate_limit_retry_after and self._window:
                answer.headers["Retry-After"] = str(max(1, math.ceil(self._window[0] + window - now)))
            return answer, self._rate_headers(len(self._window))
        self._window.append(now)
        rate_headers = self._rate_headers(len(self._window))
        for fault in self._faults:
            if fault["path_prefix"] is None or path.startswith(fault["path_prefix"]):
                fault["remaining"] -= 1
                if fault["remaining"] <= 0:
                    self._faults.remove(fault)
                return self._fault_answer(fault), rate_headers
        return None, rate_headers

    def _fault_answer(self, fault: dict) -> _Answer:
        status = fault["status"]
        if fault["html"]:
            answer = _Answer(status, "text/html", _html_error(status), {})
        else:
            answer = self._json_error(_ApiError(status, fault["message"]))
        if fault["retry_after"] is not None:
            answer.headers["Retry-After"] = str(fault["retry_after"])
        return answer

    @staticmethod
    def _json(status: int, payload) -> _Answer:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return _Answer(status, "application/json", body, {"Access-Control-Allow-Origin": "*"})

    def _json_error(self, error: _ApiError) -> _Answer:
        return self._json(error.status, {"message": error.message})

    @staticmethod
    def _token(query: dict, headers) -> str | None:
        auth = headers.get("Authorization")
        if auth:
            match = re.match(r"\s*Discogs\s+token=([^\s,]+)", auth)
            return match.group(1) if match else None
        return query.get("token")

    def _answer(self, method: str, path: str, query: dict, headers) -> _Answer:
        try:
            with self._lock:
                if self._token(query, headers) != self.token:
                    raise _ApiError(401)
                route, args = self._route(path)
                if method != "GET":
                    raise _ApiError(405)
                return self._json(200, route(query, *args))
        except _ApiError as error:
            return self._json_error(error)

    _ROUTES: list[tuple[re.Pattern, str]] = [
        (re.compile(r"/oauth/identity"), "_r_identity"),
        (re.compile(r"/users/([^/]+)"), "_r_profile"),
        (re.compile(r"/users/([^/]+)/collection/folders"), "_r_folders"),
        (re.compile(r"/users/([^/]+)/collection/folders/(-?\d+)"), "_r_folder"),
        (re.compile(r"/users/([^/]+)/collection/folders/(-?\d+)/releases"), "_r_folder_releases"),
        (re.compile(r"/users/([^/]+)/collection/releases/(\d+)"), "_r_release_instances"),
        (re.compile(r"/releases/(\d+)"), "_r_release"),
        (re.compile(r"/masters/(\d+)"), "_r_master"),
        (re.compile(r"/artists/(\d+)"), "_r_artist"),
        (re.compile(r"/labels/(\d+)"), "_r_label"),
    ]

    def _route(self, path: str):
        path = path.rstrip("/") or "/"
        for pattern, name in self._ROUTES:
            match = pattern.fullmatch(path)
            if match:
                return getattr(self, name), match.groups()
        raise _ApiError(404)

    # ----------------------------------------------------------------- JSON documents
    def _user_url(self) -> str:
        return f"{self.url}/users/{self.username}"

    def _check_user(self, username: str) -> None:
        if username.casefold() != self.username.casefold():
            raise _ApiError(404, NO_SUCH_USER)

    def _folder_items(self, folder_id: int) -> list[_Item]:
        if folder_id == 0:
            return list(self._items.values())
        return [item for item in self._items.values() if item.folder_id == folder_id]

    def _folder_json(self, folder_id: int) -> dict:
        return {"id": folder_id, "name": self._folders[folder_id], "count": len(self._folder_items(folder_id)),
                "resource_url": f"{self._user_url()}/collection/folders/{folder_id}"}

    def _r_identity(self, query: dict) -> dict:
        return {"id": self.user_id, "username": self.username, "resource_url": self._user_url(),
                "consumer_name": self.consumer_name}

    def _r_profile(self, query: dict, username: str) -> dict:
        self._check_user(username)
        base = self._user_url()
        return {
            "id": self.user_id, "username": self.username, "resource_url": base,
            "uri": f"https://www.discogs.com/user/{self.username}", "name": "", "home_page": "", "location": "",
            "profile": "", "registered": REGISTERED, "rank": 0.0, "num_pending": 0, "num_for_sale": 0,
            "num_lists": 0, "releases_contributed": 0, "releases_rated": 0, "rating_avg": 0.0,
            "num_collection": len(self._items), "num_wantlist": 0, "activated": True,
            "marketplace_suspended": False, "is_staff": False, "curr_abbr": "USD", "avatar_url": "", "banner_url": "",
            "buyer_rating": 0.0, "buyer_rating_stars": 0, "buyer_num_ratings": 0, "seller_rating": 0.0,
            "seller_rating_stars": 0, "seller_num_ratings": 0, "email": f"{self.username}@example.invalid",
            "inventory_url": f"{base}/inventory", "collection_folders_url": f"{base}/collection/folders",
            "collection_fields_url": f"{base}/collection/fields", "wantlist_url": f"{base}/wants",
        }

    def _r_folders(self, query: dict, username: str) -> dict:
        self._check_user(username)
        return {"folders": [self._folder_json(fid) for fid in sorted(self._folders)]}

    def _known_folder(self, folder_id: str) -> int:
        fid = int(folder_id)
        if fid not in self._folders:
            raise _ApiError(404, "Folder not found.")
        return fid

    def _r_folder(self, query: dict, username: str, folder_id: str) -> dict:
        self._check_user(username)
        return self._folder_json(self._known_folder(folder_id))

    def _sort_key(self, name: str):
        releases = self._releases

        def first(seq: list, key: str) -> str:
            return str(seq[0].get(key, "")).casefold() if seq else ""

        keys = {
            "added": lambda it: it.added,
            "rating": lambda it: it.rating,
            "year": lambda it: releases[it.release_id].year,
            "title": lambda it: releases[it.release_id].title.casefold(),
            "artist": lambda it: first(releases[it.release_id].artists, "name"),
            "label": lambda it: first(releases[it.release_id].labels, "name"),
            "catno": lambda it: first(releases[it.release_id].labels, "catno"),
            "format": lambda it: first(releases[it.release_id].formats, "name"),
        }
        return keys[name]

    def _sorted(self, items: list[_Item], sort: str | None, sort_order: str | None) -> list[_Item]:
        if sort not in SORT_KEYS:
            sort, sort_order = self.default_sort, self.default_sort_order
        descending = (sort_order or "asc").lower() == "desc"
        primary = self._sort_key(sort)
        return sorted(items, key=lambda it: (primary(it), it.instance_id), reverse=descending)

    @staticmethod
    def _int(raw, default: int) -> int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            return default

    def _paginate(self, path: str, query: dict, items: list[_Item]) -> dict:
        per_page = self._int(query.get("per_page"), self.default_per_page)
        per_page = min(self.max_per_page, per_page) if per_page >= 1 else self.default_per_page
        page = max(1, self._int(query.get("page"), 1))
        total = len(items)
        pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        extra = {k: v for k, v in query.items() if k not in ("token", "page", "per_page")}

        def page_url(number: int) -> str:
            return f"{self.url}{path}?" + urlencode({**extra, "page": number, "per_page": per_page})

        urls = {}
        if page > 1:
            urls["first"] = page_url(1)
            urls["prev"] = page_url(min(page - 1, pages))
        if page < pages:
            urls["next"] = page_url(page + 1)
            urls["last"] = page_url(pages)
        return {"pagination": {"page": page, "pages": pages, "per_page": per_page, "items": total, "urls": urls},
                "releases": [self._item_json(item) for item in chunk]}

    def _r_folder_releases(self, query: dict, username: str, folder_id: str) -> dict:
        self._check_user(username)
        fid = self._known_folder(folder_id)
        items = self._sorted(self._folder_items(fid), query.get("sort"), query.get("sort_order"))
        return self._paginate(f"/users/{self.username}/collection/folders/{fid}/releases", query, items)

    def _r_release_instances(self, query: dict, username: str, release_id: str) -> dict:
        self._check_user(username)
        rid = int(release_id)
        if rid <= 0:
            raise _ApiError(404, "Release not found.")
        items = sorted((it for it in self._items.values() if it.release_id == rid), key=lambda it: it.instance_id)
        return self._paginate(f"/users/{self.username}/collection/releases/{rid}", query, items)

    def _artists_json(self, release: _Release) -> list[dict]:
        return [{**a, "resource_url": f"{self.url}/artists/{a['id']}"} for a in release.artists]

    def _labels_json(self, release: _Release) -> list[dict]:
        return [{**entry, "resource_url": f"{self.url}/labels/{entry['id']}"} for entry in release.labels]

    def _basic_information(self, release: _Release) -> dict:
        return {
            "id": release.id,
            "master_id": release.master_id,
            "master_url": f"{self.url}/masters/{release.master_id}" if release.master_id else None,
            "resource_url": f"{self.url}/releases/{release.id}",
            "thumb": release.thumb,
            "cover_image": release.cover_image,
            "title": release.title,
            "year": release.year,
            "formats": copy.deepcopy(release.formats),
            "labels": self._labels_json(release),
            "artists": self._artists_json(release),
            "genres": list(release.genres),
            "styles": list(release.styles),
        }

    def _item_json(self, item: _Item) -> dict:
        doc = {"id": item.release_id, "instance_id": item.instance_id, "date_added": _discogs_time(item.added),
               "rating": item.rating, "basic_information": self._basic_information(self._releases[item.release_id]),
               "folder_id": item.folder_id}
        if item.notes:
            doc["notes"] = [dict(n) for n in item.notes]
        return doc

    def _r_release(self, query: dict, release_id: str) -> dict:
        release = self._releases.get(int(release_id))
        if release is None:
            raise _ApiError(404, "Release not found.")
        images = ([{"type": "primary", "uri": release.cover_image, "resource_url": release.cover_image,
                    "uri150": release.thumb, "width": 600, "height": 600}] if release.cover_image else [])
        qty = sum(self._int(f.get("qty"), 1) for f in release.formats)
        return {
            "id": release.id, "status": "Accepted", "year": release.year,
            "resource_url": f"{self.url}/releases/{release.id}", "uri": f"https://www.discogs.com/release/{release.id}",
            "artists": self._artists_json(release), "artists_sort": " ".join(a["name"] for a in release.artists),
            "labels": self._labels_json(release), "series": [], "companies": [],
            "formats": copy.deepcopy(release.formats), "data_quality": "Correct",
            "community": {"have": 1, "want": 0, "rating": {"count": 0, "average": 0}, "submitter": None,
                          "contributors": [], "data_quality": "Correct", "status": "Accepted"},
            "format_quantity": qty, "date_added": "2010-01-01T00:00:00-08:00",
            "date_changed": "2020-01-01T00:00:00-08:00", "num_for_sale": 0, "lowest_price": None,
            "master_id": release.master_id,
            "master_url": f"{self.url}/masters/{release.master_id}" if release.master_id else None,
            "title": release.title, "country": release.country,
            "released": str(release.year) if release.year else "", "notes": "",
            "released_formatted": str(release.year) if release.year else "", "identifiers": [], "videos": [],
            "genres": list(release.genres), "styles": list(release.styles),
            "tracklist": copy.deepcopy(release.tracklist), "extraartists": [], "images": images,
            "thumb": release.thumb, "estimated_weight": 230 * qty, "blocked_from_sale": False,
        }

    def _r_master(self, query: dict, master_id: str) -> dict:
        mid = int(master_id)
        versions = sorted((r for r in self._releases.values() if r.master_id == mid and mid), key=lambda r: r.id)
        if not versions:
            raise _ApiError(404, "Master Release not found.")
        main = versions[0]
        return {
            "id": mid, "main_release": main.id, "main_release_url": f"{self.url}/releases/{main.id}",
            "most_recent_release": versions[-1].id, "most_recent_release_url": f"{self.url}/releases/{versions[-1].id}",
            "versions_url": f"{self.url}/masters/{mid}/versions", "resource_url": f"{self.url}/masters/{mid}",
            "uri": f"https://www.discogs.com/master/{mid}", "title": main.title, "year": main.year,
            "artists": self._artists_json(main), "genres": list(main.genres), "styles": list(main.styles),
            "tracklist": copy.deepcopy(main.tracklist), "images": [], "videos": [], "num_for_sale": 0,
            "lowest_price": None, "data_quality": "Correct",
        }

    def _find(self, kind: str, entity_id: int) -> dict | None:
        for release in self._releases.values():
            for entry in (release.artists if kind == "artists" else release.labels):
                if entry["id"] == entity_id:
                    return entry
        return None

    def _r_artist(self, query: dict, artist_id: str) -> dict:
        artist = self._find("artists", int(artist_id))
        if artist is None:
            raise _ApiError(404, "Artist not found.")
        aid = artist["id"]
        return {"id": aid, "name": artist["name"], "resource_url": f"{self.url}/artists/{aid}",
                "uri": f"https://www.discogs.com/artist/{aid}", "releases_url": f"{self.url}/artists/{aid}/releases",
                "images": [], "realname": "", "profile": "", "urls": [], "namevariations": [],
                "data_quality": "Needs Vote"}

    def _r_label(self, query: dict, label_id: str) -> dict:
        label = self._find("labels", int(label_id))
        if label is None:
            raise _ApiError(404, "Label not found.")
        lid = label["id"]
        return {"id": lid, "name": label["name"], "resource_url": f"{self.url}/labels/{lid}",
                "uri": f"https://www.discogs.com/label/{lid}", "releases_url": f"{self.url}/labels/{lid}/releases",
                "images": [], "contact_info": "", "profile": "", "urls": [], "sublabels": [],
                "data_quality": "Needs Vote"}
