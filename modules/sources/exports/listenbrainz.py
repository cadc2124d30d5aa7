"""ListenBrainz exports, read as a stream of plays.

- The export zip holds `user.json` and `listens/YYYY/M.jsonl` (one listen a line); this reads ONE
  such JSON lines file (the caller opens the zip).
- The older export is one JSON array of the same listen objects.

A listen: `{"listened_at": 1700000000 (or 1700000000.5: floored to the second), "inserted_at": ...,
"track_metadata": {"artist_name", "track_name", "release_name", "additional_info": {"duration_ms",
...}, "mbid_mapping": ...}}`. `duration_ms` (or `duration` in seconds) becomes Play.duration_ms.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

from .reading import ArrayItemsReader, LineItemsReader, Play, RowError, check_timestamp, text_field

SOURCE = "listenbrainz"


def listened_at(value):
    """Unix seconds from an int, a float (floored), a numeric string, or an ISO 8601 string (UTC if naive)."""
    kind = type(value)
    if kind is int:
        return check_timestamp(value, value)
    if kind is float:
        if not math.isfinite(value):
            raise RowError(f"impossible listened_at {value!r}")
        return check_timestamp(math.floor(value), value)
    if kind is str:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if not math.isfinite(number):
                raise RowError(f"impossible listened_at {value!r}")
            return check_timestamp(int(text) if text.isdigit() else math.floor(number), value)
        try:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = math.floor(moment.timestamp())
        except (ValueError, OverflowError):
            raise RowError(f"unreadable listened_at {value!r}") from None
        return check_timestamp(seconds, value)
    raise RowError("no listened_at" if value is None else f"unreadable listened_at {value!r}")


def _duration_ms(info):
    """The track's length from additional_info, or None (an odd value is dropped, not an error)."""
    if type(info) is not dict:
        return None
    for key, factor in (("duration_ms", 1), ("duration", 1000)):
        value = info.get(key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            ms = int(value * factor)
            if 0 < ms < 2**31:
                return ms
    return None


def listen(item):
    """One listen object -> Play, or RowError."""
    if type(item) is not dict:
        raise RowError(f"expected a listen object, found {type(item).__name__}")
    meta = item.get("track_metadata")
    if type(meta) is not dict:
        raise RowError("no track_metadata")
    played_at = listened_at(item.get("listened_at"))
    artist = text_field(meta.get("artist_name"))
    title = text_field(meta.get("track_name"))
    if not artist:
        raise RowError("no artist")
    if not title:
        raise RowError("no track title")
    album = text_field(meta.get("release_name"))
    return Play(played_at, artist, album, title, _duration_ms(meta.get("additional_info")), SOURCE)


class JsonLinesReader(LineItemsReader):
    """Iterates (line_number, Play | RowError) over one `listens/YYYY/M.jsonl` file of the export."""

    source = SOURCE
    row = staticmethod(listen)


class JsonArrayReader(ArrayItemsReader):
    """Iterates (item_number, Play | RowError) over the older JSON array export."""

    source = SOURCE
    row = staticmethod(listen)
