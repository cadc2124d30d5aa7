"""Which export a file is, and the reader for it.

`detect_format(path, name)` looks at the content (the first 64 KiB; the name is only a hint, used
when the content cannot tell, e.g. an empty JSON array) and returns a `FormatInfo`, or raises
`UnrecognizedFile` naming the file and the formats known. `open_reader(path, info, **options)`
returns the reader for it: what readers yield, and how they decode and stream, is reading.py.

Nothing here imports from the app outside modules/sources.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass

from ..errors import UnrecognizedFile
from . import discogs_csv, lastfm_csv, listenbrainz, spotify
from .reading import (  # the names callers of this module use, re-exported
    CHUNK_CHARS,
    MAX_ITEM_CHARS,
    MAX_TIMESTAMP,
    SKIP_REASONS,
    SNIFF_BYTES,
    ArrayItemsReader,
    FileError,
    Play,
    RowError,
    Skip,
    encoding_label,
    sniff_encoding,
)

__all__ = ["CHUNK_CHARS", "KINDS", "MAX_ITEM_CHARS", "MAX_TIMESTAMP", "SKIP_REASONS", "SNIFF_BYTES",
           "ArrayItemsReader", "FileError", "FormatInfo", "LastfmReader", "Play", "RowError", "Skip",
           "UnrecognizedFile", "detect_format", "open_reader", "sniff_encoding"]


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


# -- detection ---------------------------------------------------------------------------------

_DECODER = json.JSONDecoder()
_NOT_WS = re.compile(r"[^ \t\r\n]")


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
    suffix = "" if encoding == "utf-8-sig" else f", {encoding_label(encoding)}"
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
        raise _unrecognized(name, f"it is {encoding_label(encoding)} text that is not JSON; CSV exports are read "
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
