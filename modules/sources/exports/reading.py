"""How every export file is read: its text decoded and streamed, JSON items one at a time, rows and
field checks. The readers of each format (spotify.py, listenbrainz.py, discogs_csv.py) build on this;
formats.py tells which format a file is and opens the reader for it.

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

import io
import json
import os
import re
from contextlib import contextmanager
from typing import NamedTuple

from ..errors import UnrecognizedFile
from .text import UNDECODABLE, RowError, check_decoded

__all__ = ["CHUNK_CHARS", "MAX_ITEM_CHARS", "MAX_TIMESTAMP", "SKIP_REASONS", "SNIFF_BYTES", "ArrayItemsReader",
           "FileError", "LineItemsReader", "Play", "RowError", "Skip", "TextReader", "check_decoded",
           "check_timestamp", "encoding_label", "iter_json_array", "iter_json_lines", "sniff_encoding",
           "text_field"]

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


def encoding_label(codec):
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
