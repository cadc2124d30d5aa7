"""Reading listens back: the page the API and the journal show, and the full export."""
from __future__ import annotations

import calendar
import heapq
import itertools
from datetime import UTC, date, datetime

import sqlalchemy as sa

from ..db import db
from ..importers import summaries
from ..models import Album, Artist, ArtistPlays, Listen, Track, utc_iso
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
        query = query.where(Listen.artist_id.in_(_artist_ids(artist)))
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


def _artist_ids(artist):
    key = name_key(artist).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.select(Artist.id).where(Artist.name_key.like(f"%{key}%", escape="\\"))


def total(start=None, end=None, artist=None):
    """How many listens match, from the summaries when they can answer (importers/summaries.py)."""
    conn = db.session.connection()
    if not artist:
        return summaries.count(conn, start, end)
    if start is None and end is None:
        return db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(ArtistPlays.plays), 0))
                                  .where(ArtistPlays.artist_id.in_(_artist_ids(artist)))).scalar()
    return db.session.execute(_filtered(sa.select(sa.func.count(Listen.id)), start, end, artist)).scalar()


MERGED_ARTISTS = 50  # more artists match: the database sorts their listens instead
CHUNK = 1000


def _artist_keys(artist_id, start, end):
    """(played_at, id) of one artist's listens, newest first, read in keyset chunks along the
    covering index (artist_id, played_at, id): no sort, no table row."""
    last = None
    while True:
        query = _filtered(sa.select(Listen.played_at, Listen.id).where(Listen.artist_id == artist_id), start, end)
        if last is not None:
            query = query.where(Listen.played_at <= last[0], sa.or_(Listen.played_at < last[0], Listen.id < last[1]))
        rows = db.session.execute(query.order_by(Listen.played_at.desc(), Listen.id.desc()).limit(CHUNK)).all()
        yield from ((-r[0], -r[1]) for r in rows)
        if len(rows) < CHUNK:
            return
        last = rows[-1]


def _boundary(skip, start, end, artist):
    """(played_at, id) of the listen `skip` places from the newest match, without reading the rows
    before it: the day summaries say which day holds it, and only that day's listens are counted
    through; with an artist filter, along the covering index (artist_id, played_at, id)."""
    newest_first = (Listen.played_at.desc(), Listen.id.desc())
    if artist:
        return db.session.execute(_filtered(sa.select(Listen.played_at, Listen.id), start, end, artist)
                                  .order_by(*newest_first).limit(1).offset(skip)).first()
    days = summaries.buckets(db.session.connection(), summaries.DAY, start, end)
    seen = 0
    for day in sorted(days, reverse=True):
        if seen + days[day] > skip:
            lo, hi = day * summaries.DAY, (day + 1) * summaries.DAY
            lo, hi = max(lo, start) if start is not None else lo, min(hi, end) if end is not None else hi
            return db.session.execute(sa.select(Listen.played_at, Listen.id)
                                      .where(Listen.played_at >= lo, Listen.played_at < hi)
                                      .order_by(*newest_first).limit(1).offset(skip - seen)).first()
        seen += days[day]
    return None


def page(page=1, page_size=50, start=None, end=None, artist=None):
    """(total, items) of one page, newest first. A deep page seeks to its first listen (_boundary)
    and reads page_size rows from there, instead of an OFFSET that reads every row before it.
    With an artist filter matching a few artists, each one's index is walked newest first and the
    walks merged: the database never sorts all their listens (a popular artist has tens of thousands)."""
    count = total(start, end, artist)
    skip = (page - 1) * page_size
    if skip >= count:
        return count, []
    newest_first = (Listen.played_at.desc(), Listen.id.desc())
    if artist:
        ids = db.session.execute(_artist_ids(artist).limit(MERGED_ARTISTS + 1)).scalars().all()
        if len(ids) <= MERGED_ARTISTS:
            merged = heapq.merge(*(_artist_keys(i, start, end) for i in ids))
            wanted = [-key[1] for key in itertools.islice(merged, skip, skip + page_size)]
            rows = db.session.execute(_select().where(Listen.id.in_(wanted)).order_by(*newest_first)).all()
            return count, [_item(r) for r in rows]
    query = _filtered(_select(), start, end, artist).order_by(*newest_first)
    if skip:
        boundary = _boundary(skip, start, end, artist)
        if boundary is None:
            return count, []
        at, listen_id = boundary
        query = query.where(Listen.played_at <= at, sa.or_(Listen.played_at < at, Listen.id <= listen_id))
    rows = db.session.execute(query.limit(page_size)).all()
    return count, [_item(r) for r in rows]


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
