"""Reading listens back: the page the API and the journal show, and the full export."""
from __future__ import annotations

import calendar
from datetime import UTC, date, datetime

import sqlalchemy as sa

from ..db import db
from ..models import Album, Artist, Listen, Track, utc_iso
from ..names import name_key

FIELDS = ("played_at", "artist", "album", "title", "source")
MAX_PAGE_SIZE = 500
MAX_PAGE = 10 ** 7
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31 23:59:59 UTC


def parse_time(value, end=False):
    """Unix seconds, an ISO date (a `to` date includes its whole day) or an ISO datetime -> seconds."""
    value = (value or "").strip()
    if not value:
        return None
    if value.lstrip("-").isdigit():
        seconds = int(value)
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise ValueError(f"{value} is out of range: Unix seconds between years 1 and 9999")
        return seconds
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            seconds = calendar.timegm(day.timetuple())
            return seconds + 86400 if end else seconds
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"unreadable date {value!r}: use YYYY-MM-DD, an ISO 8601 time or Unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _filtered(query, start=None, end=None, artist=None):
    if start is not None:
        query = query.where(Listen.played_at >= start)
    if end is not None:
        query = query.where(Listen.played_at < end)
    if artist:
        key = name_key(artist).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Listen.artist_id.in_(
            sa.select(Artist.id).where(Artist.name_key.like(f"%{key}%", escape="\\"))))
    return query


def _select():
    return (sa.select(Listen.id, Listen.played_at, Artist.name, Album.title, Track.title, Listen.source,
                      Album.image_url)
            .join(Artist, Artist.id == Listen.artist_id)
            .join(Track, Track.id == Listen.track_id)
            .outerjoin(Album, Album.id == Listen.album_id))


def _item(row):
    return {"played_at": utc_iso(row[1]), "artist": row[2], "album": row[3], "title": row[4], "source": row[5],
            "album_image_url": row[6]}


def page(page=1, page_size=50, start=None, end=None, artist=None):
    total = db.session.execute(_filtered(sa.select(sa.func.count(Listen.id)), start, end, artist)).scalar()
    rows = db.session.execute(
        _filtered(_select(), start, end, artist)
        .order_by(Listen.played_at.desc(), Listen.id.desc())
        .limit(page_size).offset((page - 1) * page_size)).all()
    return total, [_item(r) for r in rows]


def iter_all(chunk=5000):
    """Every listen, newest first, read in keyset chunks so no transaction stays open for long."""
    last = None
    while True:
        query = _select().order_by(Listen.played_at.desc(), Listen.id.desc()).limit(chunk)
        if last is not None:
            query = query.where(sa.tuple_(Listen.played_at, Listen.id) < last)
        rows = db.session.execute(query).all()
        db.session.commit()
        if not rows:
            return
        for row in rows:
            yield _item(row)
        last = (rows[-1][1], rows[-1][0])
