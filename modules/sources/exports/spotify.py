"""Spotify's streaming history exports, read as a stream of plays.

- Extended Streaming History (`Streaming_History_Audio_*.json`, `Streaming_History_Video_*.json`,
  older `endsong_*.json`): a JSON array of objects with `ts` (ISO 8601 UTC, when the play ENDED),
  `ms_played`, `master_metadata_track_name`, `master_metadata_album_artist_name`,
  `master_metadata_album_album_name`, podcast fields (`episode_name`, `episode_show_name`,
  `spotify_episode_uri`), audiobook fields (`audiobook_*`), `incognito_mode`, ...
- Account data (`StreamingHistory_music_N.json`, older `StreamingHistoryN.json`): a JSON array of
  `{endTime: "2023-01-31 23:59" (UTC), artistName, trackName, msPlayed}`; the podcast files
  (`StreamingHistory_podcast_N.json`: podcastName, episodeName) are read as podcast skips.

A play starts at its end minus `ms_played`, rounded to the second. Counted skips (`Skip`): plays
shorter than `min_play_ms` (30 s by default), incognito plays, podcast episodes, audiobooks, and
rows without a track name or artist (local files, tracks gone from Spotify).
"""
from __future__ import annotations

from datetime import UTC, datetime

from .reading import ArrayItemsReader, Play, RowError, Skip, check_timestamp, text_field

MIN_PLAY_MS = 30_000
SOURCE = "spotify"

SHORT, INCOGNITO, PODCAST, AUDIOBOOK, NO_METADATA = (
    Skip("short_play"), Skip("incognito"), Skip("podcast"), Skip("audiobook"), Skip("no_metadata"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_parse_iso = datetime.fromisoformat


def end_ms(value, field):
    """An ISO 8601 date-time from the export (UTC when it carries no offset) -> Unix milliseconds."""
    if type(value) is not str:
        raise RowError(f"no {field}" if value is None else f"unreadable {field} {value!r}")
    try:
        moment = _parse_iso(value.strip())
    except ValueError:
        raise RowError(f"unreadable {field} {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        delta = moment - _EPOCH
    except OverflowError:
        raise RowError(f"impossible {field} {value!r}") from None
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def played_ms(value, field):
    """A play length in milliseconds: a non-negative JSON number."""
    if type(value) is int:
        ms = value
    elif type(value) is float and value == value and abs(value) < 1e15:
        ms = int(value)
    else:
        raise RowError(f"no {field}" if value is None else f"unreadable {field} {value!r}")
    if ms < 0:
        raise RowError(f"negative {field} {value!r}")
    return ms


def start_of(end, ms, shown):
    """Start in Unix seconds, rounded half up, of a play that ended at `end` ms after `ms` ms."""
    return check_timestamp((end - ms + 500) // 1000, shown)


class _Reader(ArrayItemsReader):
    source = SOURCE

    def __init__(self, path, encoding=None, min_play_ms=MIN_PLAY_MS, name=None):
        super().__init__(path, encoding, name)
        self.min_play_ms = min_play_ms


class ExtendedReader(_Reader):
    """Iterates (item_number, Play | Skip | RowError) over an Extended Streaming History file."""

    def row(self, item):
        if type(item) is not dict:
            raise RowError(f"expected an object, found {type(item).__name__}")
        get = item.get
        if get("episode_name") or get("spotify_episode_uri") or get("episode_show_name"):
            return PODCAST
        if get("audiobook_title") or get("audiobook_uri") or get("audiobook_chapter_uri"):
            return AUDIOBOOK
        if get("incognito_mode") is True:
            return INCOGNITO
        title = text_field(get("master_metadata_track_name"))
        artist = text_field(get("master_metadata_album_artist_name"))
        if not title or not artist:
            return NO_METADATA
        ms = played_ms(get("ms_played"), "ms_played")
        end = end_ms(get("ts"), "ts")
        if ms < self.min_play_ms:
            return SHORT
        album = text_field(get("master_metadata_album_album_name"))
        return Play(start_of(end, ms, get("ts")), artist, album, title, None, SOURCE, ms)


UNKNOWN_ARTIST, UNKNOWN_TRACK = "Unknown Artist", "Unknown Track"


class AccountReader(_Reader):
    """Iterates (item_number, Play | Skip | RowError) over an account data StreamingHistory file."""

    def row(self, item):
        if type(item) is not dict:
            raise RowError(f"expected an object, found {type(item).__name__}")
        get = item.get
        if "podcastName" in item or "episodeName" in item:
            return PODCAST
        if "audiobookName" in item or "chapterName" in item:
            return AUDIOBOOK
        title, artist = text_field(get("trackName")), text_field(get("artistName"))
        if not title or not artist or (title == UNKNOWN_TRACK and artist == UNKNOWN_ARTIST):
            return NO_METADATA
        ms = played_ms(get("msPlayed"), "msPlayed")
        end = end_ms(get("endTime"), "endTime")
        if ms < self.min_play_ms:
            return SHORT
        return Play(start_of(end, ms, get("endTime")), artist, "", title, None, SOURCE, ms)
