"""Which export a file is, and the reader for it.

`detect_format(path, name)` looks at the content (the first 64 KiB; the name is only a hint, used
when the content cannot tell, e.g. an empty JSON array) and returns a `FormatInfo`, or raises
`UnrecognizedFile` naming the file and the formats known. `open_reader(path, info, **options)`
returns the reader for it.

Every reader iterates `(position, item)`, where position is the line number (CSV, JSON lines) or
the 1-based item number (JSON arrays), and item is one of:
- `Play` (listening exports) or a dict (the Discogs collection CSV): a row to import;
- `Skip(reason)`: a row deliberately not imported and counted (short play, incognito, podcast...);
- `RowError`: a row that cannot be read. `FileError`, a RowError, says the rest of the file could
  not be read either (cut or malformed JSON); it is always the last item.
Every reader has `bytes_read`, the bytes of the file consumed so far (a determinate progress
measure; it ends at the file size). Readers stream: memory stays flat however large the file.

Text may be UTF-8 with or without BOM, or UTF-16/UTF-32 (with BOM, or UTF-16 without BOM found from
its zero bytes). Bytes that do not decode make their row a RowError ("undecodable bytes"), not the
file: they are decoded to a lone surrogate, which no valid text holds, and every name a reader
keeps is checked for one (which also refuses lone surrogates written as JSON escapes, text that
could not be stored as UTF-8).

Nothing here imports from the app outside modules/sources.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import UnrecognizedFile
from . import lastfm_csv
from .text import UNDECODABLE, RowError, check_decoded  # noqa: F401 - readers take them from here

__all__ = ["FileError", "FormatInfo", "KINDS", "LastfmReader", "Play", "RowError", "SKIP_REASONS", "Skip",
           "UnrecognizedFile", "detect_format", "open_reader", "sniff_encoding"]

SNIFF_BYTES = 64 * 1024
CHUNK_CHARS = 64 * 1024
MAX_ITEM_CHARS = 1024 * 1024  # one JSON item or line larger than this is an error, never a memory spike
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z


class Play(NamedTuple):
    """One listen. `played_at` is when it started, in UTC Unix seconds."""
    played_at: int
    artist: str
    album: str  # "" when the export has none
    title: str
    duration_ms: int | None = None  # the track's length when the export says it (ListenBrainz)
    source: str = ""  # "spotify" | "listenbrainz" | "lastfm_csv"
    ms_played: int | None = None  # how long it was played (Spotify)


class Skip(NamedTuple):
    """A row deliberately not imported; `reason` is one of SKIP_REASONS."""
    reason: str


SKIP_REASONS = {
    "short_play": "played for less than the minimum play length (30 s unless set otherwise)",
    "incognito": "played in a private (incognito) session",
    "podcast": "a podcast episode",
    "audiobook": "an audiobook chapter",
    "no_metadata": "no track name or artist (a local file or a track no longer on the service)",
}


class FileError(RowError):
    """The rest of the file cannot be read (cut short or malformed); always the last item of a reader."""


@dataclass(frozen=True, slots=True)
class FormatInfo:
    kind: str  # one of KINDS
    description: str  # for people: "Spotify Extended Streaming History (JSON)"
    encoding: str = "utf-8-sig"  # the codec the reader decodes with
    layout: str | None = None  # Last.fm CSV: lastfm_csv.SIMPLE or lastfm_csv.UTS


KINDS = {
    "lastfm_csv": "Last.fm CSV",
    "spotify_extended": "Spotify Extended Streaming History (JSON)",
    "spotify_account": "Spotify account data streaming history (JSON)",
    "listenbrainz_jsonl": "ListenBrainz export listens (JSON lines)",
    "listenbrainz_json": "ListenBrainz export (JSON array)",
    "discogs_csv": "Discogs collection export (CSV)",
}
KNOWN = ("Last.fm CSV exports (rows 'artist,album,track,date', or the 'uts,utc_time,artist,...' header); "
         "Spotify Extended Streaming History (Streaming_History_Audio_*.json, endsong_*.json); "
         "Spotify account data (StreamingHistory_music_*.json, StreamingHistory*.json); "
         "ListenBrainz exports (listens/YYYY/M.jsonl from the zip, or the older JSON array); "
         "the Discogs collection CSV export")

_NAME_HINTS = (  # used only when the content cannot tell (an empty JSON array)
    (re.compile(r"(streaming_history_(audio|video)_|endsong_)", re.I), "spotify_extended"),
    (re.compile(r"streaminghistory(_music_|_podcast_|_audiobook_|_video_)?\d*\.json$", re.I), "spotify_account"),
    (re.compile(r"listen", re.I), "listenbrainz_json"),
)
_MAGIC = ((b"PK\x03\x04", "a zip archive (its files are read once it is opened)"), (b"%PDF", "a PDF document"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"PK\x05\x06", "an empty zip archive"))


# -- encodings ---------------------------------------------------------------------------------

def sniff_encoding(head):
    """The codec for a file starting with bytes `head`: a BOM decides; else UTF-16 is recognised
    from its zero bytes (ASCII-heavy text such as JSON); else UTF-8 (a BOM, if any, is dropped)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    sample = head[:4096]
    pairs = len(sample) // 2
    if pairs:
        even, odd = sample[0:pairs * 2:2].count(0), sample[1:pairs * 2:2].count(0)
        if odd >= pairs * 0.4 and even <= pairs * 0.05:
            return "utf-16-le"
        if even >= pairs * 0.4 and odd <= pairs * 0.05:
            return "utf-16-be"
    return "utf-8-sig"


def _encoding_label(codec):
    return {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE",
            "utf-32": "UTF-32"}.get(codec, codec)


class _CountingRaw(io.RawIOBase):
    """A binary file that counts the bytes read from it."""

    def __init__(self, raw):
        self._raw = raw
        self.bytes_read = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self._raw.readinto(buffer)
        self.bytes_read += n or 0
        return n


class TextReader:
    """Base of the readers: opens the file as text in its encoding, counting the bytes consumed."""

    source = ""

    def __init__(self, path, encoding=None, name=None):
        self.path = path
        self.name = name or os.path.basename(str(path))
        self.encoding = encoding
        self._counter = None

    @property
    def bytes_read(self):
        return self._counter.bytes_read if self._counter else 0

    @contextmanager
    def _text(self):
        with open(self.path, "rb", buffering=0) as raw:
            encoding = self.encoding
            if encoding is None:
                encoding = sniff_encoding(raw.read(SNIFF_BYTES))
                raw.seek(0)
            self._counter = _CountingRaw(raw)
            buffered = io.BufferedReader(self._counter, buffer_size=64 * 1024)
            yield io.TextIOWrapper(buffered, encoding=encoding, errors=UNDECODABLE, newline="")

    def __iter__(self):
        with self._text() as text:
            yield from self._items(text)

    def _items(self, text):  # pragma: no cover - overridden
        raise NotImplementedError


class ArrayItemsReader(TextReader):
    """A reader of a JSON array file: each item through `self.row(item)`, which returns the
    item to yield or raises RowError."""

    def _items(self, text):
        row = self.row
        for number, item in iter_json_array(text, self.name):
            if isinstance(item, RowError):
                yield number, item
                continue
            try:
                yield number, row(item)
            except RowError as exc:
                yield number, exc


class LineItemsReader(TextReader):
    """A reader of a JSON lines file: each line's value through `self.row(value)`."""

    def _items(self, text):
        row = self.row
        for number, item in iter_json_lines(text):
            if isinstance(item, RowError):
                yield number, item
                continue
            try:
                yield number, row(item)
            except RowError as exc:
                yield number, exc


# -- JSON streaming ----------------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_NOT_WS = re.compile(r"[^ \t\r\n]")
_TRAILING_OK = " \t\r\n\x00\x1a"
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_NUMBERS = (int, float)


def iter_json_array(text, name):
    """Yield (item_number, value) for each item of a top-level JSON array read from `text`, one at a
    time (never the whole array in memory); a cut or malformed array ends with (n, FileError).
    Raises UnrecognizedFile, before yielding anything, if the text is not a JSON array at all.

    Items are cut out with the C scanner of the json module (`raw_decode`) from a window of the
    text: much faster than an event parser, and a deeply nested item fails with RecursionError
    instead of growing memory."""
    decode, not_ws = _DECODER.raw_decode, _NOT_WS.search
    eof = False
    while True:  # the first meaningful character (a BOM the codec left counts as blank)
        buf = text.read(CHUNK_CHARS).lstrip("\ufeff")
        if not buf:
            raise UnrecognizedFile(f"{name} is empty")
        m = not_ws(buf)
        if m:
            break
    if buf[m.start()] != "[":
        raise UnrecognizedFile(f"{name} is not a JSON array (it starts with {buf[m.start():m.start() + 20]!r})")
    pos, n, after_item = m.start() + 1, 0, False

    def more(buf, pos):
        chunk = text.read(CHUNK_CHARS)
        return buf[pos:] + chunk, 0, not chunk

    while True:
        m = not_ws(buf, pos)
        if m is None:
            if eof:
                yield n + 1, FileError(f"the file ends inside the JSON array, after item {n} (was it cut short?); "
                                       "the rest could not be read")
                return
            buf, pos, eof = more(buf, len(buf))
            continue
        pos = m.start()
        char = buf[pos]
        if after_item:
            if char == ",":
                pos += 1
                after_item = False
                continue
            if char == "]":
                yield from _trailing(text, buf, pos + 1, n)
                return
            yield n + 1, FileError(f"expected ',' or ']' after item {n}, found {buf[pos:pos + 20]!r}; "
                                   "the rest of the file could not be read")
            return
        if char == "]" and n == 0:
            yield from _trailing(text, buf, pos + 1, n)
            return
        try:
            value, end = decode(buf, pos)
        except RecursionError:
            yield n + 1, FileError(f"item {n + 1} is nested too deeply to be a listen; "
                                   "the rest of the file could not be read")
            return
        except ValueError as exc:
            if eof:
                msg, at = getattr(exc, "msg", str(exc)), getattr(exc, "pos", 0)
                why = (f"the file ends inside item {n + 1} (was it cut short?)"
                       if msg.startswith("Unterminated") or at >= len(buf.rstrip()) else
                       f"item {n + 1} is not valid JSON ({msg})")
                yield n + 1, FileError(f"{why}; the rest of the file could not be read")
                return
            if len(buf) - pos > MAX_ITEM_CHARS:
                yield n + 1, FileError(f"item {n + 1} is larger than 1 MiB; the rest of the file could not be read")
                return
            buf, pos, eof = more(buf, pos)  # the item may be cut at the window's end: read on
            continue
        if not eof and (end >= len(buf) or buf[end] in _NUMBER_CHARS) and type(value) in _NUMBERS:
            buf, pos, eof = more(buf, pos)  # a number at the window's end may go on in the next chunk
            continue
        n += 1
        pos, after_item = end, True
        yield n, value


def _trailing(text, buf, pos, n):
    rest = buf[pos:]
    while True:
        if rest.strip(_TRAILING_OK):
            yield n + 1, FileError(f"unexpected text after the end of the JSON array: {rest.strip()[:20]!r}")
            return
        rest = text.read(CHUNK_CHARS)
        if not rest:
            return


def iter_json_lines(text):
    """Yield (line_number, value or RowError) for each non-blank line of JSON lines text."""
    loads, line_number = json.loads, 0
    while True:
        line = text.readline(MAX_ITEM_CHARS)
        if not line:
            return
        line_number += 1
        if len(line) >= MAX_ITEM_CHARS and not line.endswith(("\n", "\r")):
            while True:  # skip the rest of an overlong line, a piece at a time
                rest = text.readline(MAX_ITEM_CHARS)
                if not rest or rest.endswith(("\n", "\r")):
                    break
            yield line_number, RowError("line longer than 1 MiB")
            continue
        line = line.strip()
        if not line:
            continue
        try:
            yield line_number, loads(line)
        except RecursionError:
            yield line_number, RowError("nested too deeply to be a listen")
        except ValueError as exc:
            yield line_number, RowError(f"not valid JSON ({getattr(exc, 'msg', exc)})")


# -- detection ---------------------------------------------------------------------------------

def _unrecognized(name, why):
    return UnrecognizedFile(f"{name} is not an export this importer reads: {why}. Known formats: {KNOWN}.")


def detect_format(path, name=None):
    """The format of the file at `path` (`name`: the name it was uploaded as), from its content."""
    name = name or os.path.basename(str(path))
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
        whole = len(head) < SNIFF_BYTES or not fh.read(1)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise _unrecognized(name, f"it is {what}")
    encoding = sniff_encoding(head)
    text = head.decode(encoding, errors="replace").lstrip("\ufeff \t\r\n")  # utf-16/32 consume their BOM
    if not text.strip("\x00 \t\r\n"):
        raise UnrecognizedFile(f"{name} is empty")
    if "\x00" in text:
        raise _unrecognized(name, "it is binary data, not text")
    suffix = "" if encoding == "utf-8-sig" else f", {_encoding_label(encoding)}"
    if text.startswith("["):
        kind = _json_array_kind(text, whole, name)
    elif text.startswith("{"):
        kind = _json_lines_kind(text, whole, name)
    else:
        return _csv_format(path, name, text, encoding, suffix)
    return FormatInfo(kind, KINDS[kind] + suffix, encoding)


def _keys_kind(keys):
    if "ts" in keys and "ms_played" in keys:
        return "spotify_extended"
    if "endTime" in keys and "msPlayed" in keys:
        return "spotify_account"
    if "listened_at" in keys and "track_metadata" in keys:
        return "listenbrainz_json"
    return None


def _json_array_kind(text, whole, name):
    m = _NOT_WS.search(text, 1)
    if m is None:
        raise _unrecognized(name, "it is the start of a JSON array, but the array is cut short")
    if text[m.start()] == "]":  # an empty array: only the name can tell
        for pattern, kind in _NAME_HINTS:
            if pattern.search(name):
                return kind
        raise _unrecognized(name, "it is an empty JSON array, and nothing tells which export it is")
    try:
        first, _ = _DECODER.raw_decode(text, m.start())
    except RecursionError:
        raise _unrecognized(name, "its JSON is nested too deeply to be an export") from None
    except ValueError as exc:
        if whole:
            raise _unrecognized(name, f"it is not valid JSON ({getattr(exc, 'msg', exc)})") from None
        # the first item goes on past the sniffed head: look for the field names instead
        keys = set(re.findall(r'"(ts|ms_played|endTime|msPlayed|listened_at|track_metadata)"\s*:', text))
        kind = _keys_kind(keys)
        if kind:
            return kind
        raise _unrecognized(name, "it is a JSON array, but not of plays this importer knows") from None
    if not isinstance(first, dict):
        raise _unrecognized(name, f"it is a JSON array of {type(first).__name__} values, not of plays")
    kind = _keys_kind(first)
    if kind:
        return kind
    raise _unrecognized(name, f"it is a JSON array of objects with the fields {_fields(first)}")


def _json_lines_kind(text, whole, name):
    """JSON lines: the first line that parses decides (a broken first line does not hide the rest)."""
    lines = text.splitlines()
    if not whole and len(lines) > 1:
        lines.pop()  # the sniffed head may cut the last line
    first, error = None, None
    for line in lines[:50]:
        if not line.strip():
            continue
        try:
            first = json.loads(line)
        except RecursionError:
            error = "its JSON is nested too deeply to be an export"
            continue
        except ValueError as exc:
            error = f"it starts like JSON but is not valid JSON ({getattr(exc, 'msg', exc)})"
            continue
        break
    if not isinstance(first, dict):
        raise _unrecognized(name, error or "it starts like JSON but holds no JSON object")
    if "listened_at" in first and "track_metadata" in first:
        return "listenbrainz_jsonl"
    if "username" in first and "user_id" in first:
        raise _unrecognized(name, "it is the user.json of a ListenBrainz export (the listens are in listens/YYYY/M.jsonl)")
    if "score" in first or "pinned_until" in first or "blurb_content" in first:
        raise _unrecognized(name, "it is the feedback or pinned recordings of a ListenBrainz export, not its listens")
    raise _unrecognized(name, f"it is a JSON object with the fields {_fields(first)}, not a list of plays")


def _fields(obj):
    keys = list(obj)[:8]
    return ", ".join(repr(k) for k in keys) + (", ..." if len(obj) > 8 else "") if keys else "(none)"


DISCOGS_REQUIRED = ("artist", "title", "release_id")


def _csv_format(path, name, text, encoding, suffix):
    first_line = text.split("\n", 1)[0]
    try:
        header = [cell.strip().lower() for cell in next(csv.reader([first_line]), [])]
    except csv.Error:
        header = []
    if all(col in header for col in DISCOGS_REQUIRED):
        if "collectionfolder" in header:
            return FormatInfo("discogs_csv", KINDS["discogs_csv"] + suffix, encoding)
        raise _unrecognized(name, "it is a Discogs CSV export, but not of the collection (no CollectionFolder "
                                  "column: a wantlist or inventory export?)")
    if encoding != "utf-8-sig":
        raise _unrecognized(name, f"it is {_encoding_label(encoding)} text that is not JSON; CSV exports are read "
                                  "as UTF-8 (save it again as 'CSV UTF-8')")
    try:
        layout = lastfm_csv.detect(path, name)
    except UnrecognizedFile as exc:
        raise _unrecognized(name, f"it is neither JSON nor a known CSV ({exc})") from None
    except csv.Error as exc:  # lastfm_csv.detect lets the csv module's errors through (e.g. bare \r line ends)
        raise _unrecognized(name, f"it is text that the CSV reader cannot split into rows ({exc})") from None
    return FormatInfo("lastfm_csv", f"Last.fm CSV ({_LASTFM_LAYOUTS.get(layout, layout)})", encoding, layout)


_LASTFM_LAYOUTS = {lastfm_csv.SIMPLE: "artist, album, track, date", lastfm_csv.UTS: "uts header"}


# -- readers -----------------------------------------------------------------------------------

class LastfmReader:
    """The Last.fm CSV reader of lastfm_csv, its plays as `Play` (source "lastfm_csv")."""

    def __init__(self, path, layout=None, name=None):
        self.path = path
        self.name = name or os.path.basename(str(path))
        if layout is None:
            try:
                layout = lastfm_csv.detect(path, self.name)
            except csv.Error as exc:
                raise UnrecognizedFile(f"{self.name} is not a CSV this importer can split into rows ({exc})") from None
        self._reader = lastfm_csv.Reader(path, layout)

    @property
    def bytes_read(self):
        return self._reader.bytes_read

    def __iter__(self):
        rows, line = iter(self._reader), 0
        while True:
            try:
                line, item = next(rows)
            except StopIteration:
                return
            except (csv.Error, ValueError, ArithmeticError) as exc:  # e.g. a field over csv's size limit
                yield line + 1, FileError(f"unreadable CSV after line {line} ({exc}); the rest could not be read")
                return
            if isinstance(item, lastfm_csv.Play):
                item = Play(item.played_at, item.artist, item.album, item.title, None, "lastfm_csv")
            yield line, item


def open_reader(path, info, *, min_play_ms=None, name=None):
    """The reader for a file of format `info` (from detect_format). `min_play_ms`: Spotify plays
    shorter than this are Skip("short_play") (default 30 s); other formats ignore it."""
    from . import discogs_csv, listenbrainz, spotify

    spotify_options = {} if min_play_ms is None else {"min_play_ms": min_play_ms}
    kind = info.kind
    if kind == "lastfm_csv":
        return LastfmReader(path, info.layout, name=name)
    if kind == "spotify_extended":
        return spotify.ExtendedReader(path, info.encoding, name=name, **spotify_options)
    if kind == "spotify_account":
        return spotify.AccountReader(path, info.encoding, name=name, **spotify_options)
    if kind == "listenbrainz_jsonl":
        return listenbrainz.JsonLinesReader(path, info.encoding, name=name)
    if kind == "listenbrainz_json":
        return listenbrainz.JsonArrayReader(path, info.encoding, name=name)
    if kind == "discogs_csv":
        return discogs_csv.Reader(path, info.encoding, name=name)
    raise ValueError(f"unknown export kind {kind!r}")


# -- shared field parsing ----------------------------------------------------------------------

def text_field(value):
    """A name from JSON: str stripped, None -> "", a number as its text; anything else is an error."""
    if type(value) is str:
        return (value if value.isascii() else check_decoded(value)).strip()
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"expected a text value, found {type(value).__name__}")


def check_timestamp(seconds, shown):
    if not 0 < seconds <= MAX_TIMESTAMP:
        raise RowError(f"impossible date {shown!r}")
    return seconds
