"""Saved playlists: input checked, entries written, edited, deleted, and tracks searched to add.

Entries keep the names they were made with, so an export never depends on later changes. An edit
writes the whole list of entries again, in one transaction with the playlist row locked.
"""
from __future__ import annotations

import time

import sqlalchemy as sa
from flask_babel import gettext as _  # why not web's i18n: see generators.py

from ..db import db
from ..models import Album, Artist, Listen, Playlist, PlaylistItem, Track
from ..names import name_key
from .generators import DAY, PlaylistError, track_item

MAX_ITEMS = 1000
MAX_NAME = 200
MAX_TEXT = 512
ITEM_FIELDS = ("track_id", "artist", "title", "album", "album_id", "duration")


def clean_text(value, label, required=True, max_length=MAX_TEXT):
    """A name as stored: surrounding spaces trimmed; any Unicode and newlines kept; NUL and broken
    surrogates refused (no database stores them)."""
    if value is None:
        if required:
            raise PlaylistError(_("%(field)s is required", field=label))
        return None
    if not isinstance(value, str):
        raise PlaylistError(_("%(field)s must be text", field=label))
    value = value.strip()
    if not value:
        if required:
            raise PlaylistError(_("%(field)s must not be empty", field=label))
        return None
    if "\x00" in value:
        raise PlaylistError(_("%(field)s must not contain NUL characters", field=label))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PlaylistError(_("%(field)s is not valid Unicode text", field=label)) from None
    if len(value) > max_length:
        raise PlaylistError(_("%(field)s is longer than %(n)s characters", field=label, n=max_length))
    return value


def clean_name(value):
    return clean_text(value, "name", max_length=MAX_NAME)


def _whole(value, label, low, high):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlaylistError(_("%(field)s must be a whole number between %(low)s and %(high)s",
                              field=label, low=low, high=high))
    return value


def clean_items(raw):
    """Items from the API: each either names a track (`track_id`, names filled in from it) or gives
    `artist` and `title`; `album`, `album_id` and `duration` (seconds) are optional."""
    if not isinstance(raw, list):
        raise PlaylistError(_("items must be a list"))
    if len(raw) > MAX_ITEMS:
        raise PlaylistError(_("a playlist holds at most %(n)s items", n=MAX_ITEMS))
    items = []
    for index, entry in enumerate(raw):
        where = f"items[{index}]"
        if not isinstance(entry, dict):
            raise PlaylistError(_("%(field)s must be an object", field=where))
        unknown = sorted(set(entry) - set(ITEM_FIELDS) - {"position"})
        if unknown:
            raise PlaylistError(_("%(field)s has unknown fields %(names)s; known: %(known)s", field=where,
                                  names=", ".join(unknown), known=", ".join(ITEM_FIELDS)))
        track_id = _whole(entry.get("track_id"), f"{where}.track_id", 1, 2**31 - 1)
        album_id = _whole(entry.get("album_id"), f"{where}.album_id", 1, 2**31 - 1)
        track = None
        if track_id is not None:
            track = db.session.execute(sa.select(Track.title, Artist.name).join(Artist, Artist.id == Track.artist_id)
                                       .where(Track.id == track_id)).first()
            if track is None:
                raise PlaylistError(_("%(field)s: no track %(id)s", field=where, id=track_id))
        if album_id is not None and db.session.get(Album, album_id) is None:
            raise PlaylistError(_("%(field)s: no album %(id)s", field=where, id=album_id))
        artist = clean_text(entry.get("artist"), f"{where}.artist", required=track is None)
        title = clean_text(entry.get("title"), f"{where}.title", required=track is None)
        album = clean_text(entry.get("album"), f"{where}.album", required=False)
        if track is not None and "album" not in entry and album_id is None:
            known = track_item(track_id)  # a bare track id: the album of its latest play
            album, album_id = known["album"], known["album_id"]
        items.append({"track_id": track_id, "artist": artist or track[1], "title": title or track[0],
                      "album": album, "album_id": album_id,
                      "duration": _whole(entry.get("duration"), f"{where}.duration", 0, 7 * DAY)})
    return items


# ----------------------------------------------------------------------------- storage


def create(name, kind, params, items):
    now = time.time()
    playlist = Playlist(name=name, kind=kind, params=params or {}, created_at=now, updated_at=now)
    db.session.add(playlist)
    db.session.flush()
    _write_items(playlist.id, items)
    db.session.commit()
    return playlist


def get(playlist_id, for_update=False):
    query = sa.select(Playlist).where(Playlist.id == playlist_id)
    if for_update:  # one edit of a playlist at a time (PostgreSQL; SQLite serialises writers anyway)
        query = query.with_for_update()
    return db.session.execute(query).scalar()


def items_of(playlist_id):
    rows = db.session.execute(sa.select(PlaylistItem).where(PlaylistItem.playlist_id == playlist_id)
                              .order_by(PlaylistItem.position)).scalars()
    return [{"position": r.position, **{f: getattr(r, f) for f in ITEM_FIELDS}} for r in rows]


def listing():
    """[(playlist, number of items)], the latest changed first."""
    counts = dict(db.session.execute(sa.select(PlaylistItem.playlist_id, sa.func.count())
                                     .group_by(PlaylistItem.playlist_id)).all())
    rows = db.session.execute(sa.select(Playlist).order_by(Playlist.updated_at.desc(), Playlist.id.desc())).scalars()
    return [(p, counts.get(p.id, 0)) for p in rows]


def _write_items(playlist_id, items):
    # The whole list is written again: positions stay 0..n-1 with no gaps and no transient clashes.
    table = PlaylistItem.__table__
    db.session.execute(table.delete().where(table.c.playlist_id == playlist_id))
    if items:
        db.session.execute(table.insert(), [{"playlist_id": playlist_id, "position": i,
                                             **{f: item.get(f) for f in ITEM_FIELDS}}
                                            for i, item in enumerate(items)])


def save(playlist, name=None, items=None):
    """Rename and/or replace the items, in one transaction."""
    if name is not None:
        playlist.name = name
    if items is not None:
        if len(items) > MAX_ITEMS:
            raise PlaylistError(_("a playlist holds at most %(n)s items", n=MAX_ITEMS))
        _write_items(playlist.id, items)
    playlist.updated_at = max(time.time(), playlist.updated_at + 1e-6)
    db.session.commit()


def move(items, position, offset):
    """The items with the one at `position` moved by `offset` (-1 up, 1 down), kept within the list."""
    if not 0 <= position < len(items):
        raise PlaylistError(_("there is no item at position %(n)s", n=position))
    target = min(max(position + offset, 0), len(items) - 1)
    items = list(items)
    items.insert(target, items.pop(position))
    return items


def delete(playlist):
    db.session.execute(PlaylistItem.__table__.delete().where(PlaylistItem.playlist_id == playlist.id))
    db.session.delete(playlist)
    db.session.commit()


def search_tracks(query, limit=20):
    """Tracks of the listens whose title or artist contains `query` (any case), most played first."""
    key = name_key(query)
    if not key:
        return []
    plays = sa.func.count(Listen.id).label("plays")
    rows = db.session.execute(
        sa.select(Track.id, Track.title, Artist.name, plays).join(Artist, Artist.id == Track.artist_id)
        .join(Listen, Listen.track_id == Track.id)
        .where(sa.or_(Track.title_key.contains(key, autoescape=True), Artist.name_key.contains(key, autoescape=True)))
        .group_by(Track.id, Track.title, Artist.name).order_by(plays.desc(), Track.id).limit(limit)).all()
    return [{"track_id": tid, "title": title, "artist": artist, "plays": n} for tid, title, artist, n in rows]
