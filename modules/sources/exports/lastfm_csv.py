"""Last.fm CSV exports, both layouts people have:

- header-less `artist,album,track,date` with dates like `09 Jun 2008 17:16` (UTC), as written
  by the long-standing export services;
- with header `uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid`.
"""
from __future__ import annotations

import calendar
import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import UnrecognizedFile
from .text import UNDECODABLE, RowError, check_decoded

SIMPLE, UTS = "lastfm_simple", "lastfm_uts"
UTS_HEADER = ["uts", "utc_time", "artist", "artist_mbid", "album", "album_mbid", "track", "track_mbid"]
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DATE = re.compile(r"^\s*(\d{1,2}) ([A-Za-z]{3}) (\d{4}),? (\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")
SNIFF_BYTES = 64 * 1024
EXPECTED = ("expected either a header 'uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid' "
            "or rows 'artist,album,track,date' with dates like '09 Jun 2008 17:16'")


@dataclass(frozen=True, slots=True)
class Play:
    played_at: int  # UTC Unix seconds
    artist: str
    album: str
    title: str


def parse_simple_date(text):
    """'09 Jun 2008 17:16' (UTC) -> Unix seconds; month names in English whatever the locale."""
    m = _DATE.match(text or "")
    if not m:
        raise RowError(f"unreadable date {text!r} (expected like '09 Jun 2008 17:16')")
    day, mon, year, hour, minute, second = m.groups()
    month = _MONTHS.get(mon.lower())
    if month is None:
        raise RowError(f"unreadable month in date {text!r}")
    try:
        moment = datetime(int(year), month, int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC)
        return int(moment.timestamp())
    except (ValueError, OverflowError) as exc:
        raise RowError(f"impossible date {text!r}") from exc


def _open_text(raw):
    # utf-8-sig drops a BOM; bytes that are not UTF-8 fail their row only, as in every reader (text.py).
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors=UNDECODABLE, newline="")


def detect(path, name=None):
    """The layout of the file at `path`, or UnrecognizedFile saying what was expected."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    name = name or str(path).rsplit("/", 1)[-1]
    if not head.strip():
        raise UnrecognizedFile(f"{name} is empty")
    if b"\x00" in head:
        raise UnrecognizedFile(f"{name} is not a CSV text file (it contains binary data); {EXPECTED}")
    text = head.decode("utf-8-sig", errors="replace")
    if len(head) == SNIFF_BYTES:  # drop a possibly cut last line
        text = text.rsplit("\n", 1)[0]
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    except csv.Error as exc:  # e.g. bare \r line ends, a field over csv's size limit
        raise UnrecognizedFile(f"{name} is text the CSV reader cannot split into rows ({exc}); {EXPECTED}") from None
    if not rows:
        raise UnrecognizedFile(f"{name} has no rows; {EXPECTED}")
    first = [cell.strip().lower() for cell in rows[0]]
    if first[:3] == UTS_HEADER[:3] and "track" in first:
        return UTS
    readable = 0
    for row in rows[:20]:
        if len(row) == 4 and row[0].strip() and row[2].strip():
            try:
                parse_simple_date(row[3])
                readable += 1
            except RowError:
                pass
    if readable and readable >= min(len(rows), 20) // 2:
        return SIMPLE
    raise UnrecognizedFile(f"{name} is not a Last.fm CSV export; {EXPECTED}")


class _CountingReader(io.RawIOBase):
    """Wraps a binary file and counts the bytes handed to the text decoder."""

    def __init__(self, raw):
        self._raw = raw
        self.bytes_read = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self._raw.readinto(buffer)
        self.bytes_read += n or 0
        return n


class Reader:
    """Iterates (line_number, Play or RowError) over a file; `bytes_read` tells how far it got."""

    def __init__(self, path, layout=None):
        self.path = path
        self.layout = layout or detect(path)
        self._counter = None

    @property
    def bytes_read(self):
        return self._counter.bytes_read if self._counter else 0

    def __iter__(self):
        with open(self.path, "rb", buffering=0) as raw:
            self._counter = _CountingReader(raw)
            text = _open_text(io.BufferedReader(self._counter, buffer_size=64 * 1024))
            reader = csv.reader(text)
            parse = self._parse_uts if self.layout == UTS else self._parse_simple
            header_pending = self.layout == UTS
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if header_pending:
                    header_pending = False
                    continue
                try:
                    yield line, parse(row)
                except RowError as exc:
                    yield line, exc

    @staticmethod
    def _parse_simple(row):
        if len(row) != 4:
            raise RowError(f"expected 4 columns (artist, album, track, date), found {len(row)}")
        artist, album, title, date = (cell.strip() for cell in row)
        if not date:
            raise RowError("no date (a now-playing row is not a listen)")
        return _play(parse_simple_date(date), artist, album, title)

    @staticmethod
    def _parse_uts(row):
        if len(row) < 7:
            raise RowError(f"expected 8 columns (uts, utc_time, artist, ..., track, track_mbid), found {len(row)}")
        uts = row[0].strip()
        if not uts:
            raise RowError("no timestamp (a now-playing row is not a listen)")
        try:
            played_at = int(float(uts))
        except (ValueError, OverflowError):
            raise RowError(f"unreadable timestamp {uts!r}") from None
        if played_at <= 0:
            raise RowError(f"impossible timestamp {uts!r}")
        return _play(played_at, row[2].strip(), row[4].strip(), row[6].strip())


def _play(played_at, artist, album, title):
    for text in (artist, album, title):
        check_decoded(text)
    if not artist:
        raise RowError("no artist")
    if not title:
        raise RowError("no track title")
    return Play(played_at, artist, album, title)
