"""The analytics page: top lists, when you listen, streaks, discoveries, and the shelf against the
listening. One function per panel, each a few SQLAlchemy core queries that give the same answers on
SQLite and PostgreSQL, plus the page (the JSON endpoint per panel is analytics_api.py).

listens.played_at is UTC seconds; hours, weekdays, days and months are the person's (TIMEZONE). The
database counts listens per UTC hour (per half or quarter hour for zones with such offsets) and
Python maps each bucket to local time with zoneinfo: exact across daylight-saving changes, and cheap
(one row per hour that has listens, not one per listen).
"""
from __future__ import annotations

import functools
import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Blueprint, current_app, g, render_template, request

from ..db import db
from ..importers import listen_feed, summaries
from ..models import Album, AlbumPlays, Artist, ArtistPlays, CollectionItem, Listen, Track, TrackPlays, utc_iso
from .i18n import gettext, lazy_gettext

bp = Blueprint("analytics", __name__)

DAY = 86400
EPOCH = date(1970, 1, 1)  # a Thursday: weekday 3 with Monday = 0
DEFAULT_PERIOD = "12m"
PERIOD_LABELS = {"7d": lazy_gettext("Last 7 days"), "30d": lazy_gettext("Last 30 days"),
                 "12m": lazy_gettext("Last 12 months"), "all": lazy_gettext("All time")}
DEFAULT_LIMIT, MAX_LIMIT = 10, 100


class BadParameter(ValueError):
    """A query parameter the analytics cannot use; its message says what would do."""


@dataclass(frozen=True)
class Period:
    key: str
    start: int | None  # UTC seconds, inclusive
    end: int | None    # UTC seconds, exclusive

    @property
    def label(self):
        return str(PERIOD_LABELS.get(self.key, self.key))

    def where(self, query):
        if self.start is not None:
            query = query.where(Listen.played_at >= self.start)
        if self.end is not None:
            query = query.where(Listen.played_at < self.end)
        return query

    def as_dict(self):
        return {"key": self.key, "label": self.label, "start": utc_iso(self.start), "end": utc_iso(self.end)}


def parse_period(value, tz, now=None):
    """7d and 30d: the last 7 or 30 times 24 hours; 12m: since this moment a year ago (local
    calendar); all; or a year such as 2024, from 1 January to 1 January in the person's zone."""
    key = (value or DEFAULT_PERIOD).strip().lower()
    now = int(time.time() if now is None else now)
    if key in ("7d", "30d"):
        return Period(key, now - int(key[:-1]) * DAY, None)
    if key == "12m":
        local = datetime.fromtimestamp(now, tz)
        try:
            back = local.replace(year=local.year - 1)
        except ValueError:  # 29 February
            back = local.replace(year=local.year - 1, day=28)
        return Period(key, int(back.timestamp()), None)
    if key == "all":
        return Period(key, None, None)
    if key.isdigit() and len(key) == 4 and 1970 <= int(key) <= 2999:
        year = int(key)
        return Period(key, int(datetime(year, 1, 1, tzinfo=tz).timestamp()),
                      int(datetime(year + 1, 1, 1, tzinfo=tz).timestamp()))
    raise BadParameter(gettext("Unknown period %(value)r: use 7d, 30d, 12m, all or a year such as 2024.",
                               value=str(value)[:40]))


# ----------------------------------------------------------------------------- local time


class LocalClock:
    """UTC seconds to the person's local seconds. zoneinfo is asked twice per UTC day seen (its
    offset at both ends), and once per bucket only on the days an offset changes."""

    def __init__(self, tz):
        self.tz = tz
        self.days = {}
        self.offsets = set()

    def _offset(self, ts):
        offset = int(datetime.fromtimestamp(ts, self.tz).utcoffset().total_seconds())
        self.offsets.add(offset)
        return offset

    def local(self, ts):
        day = ts // DAY
        known = self.days.get(day)
        if known is None:
            first, last = self._offset(day * DAY), self._offset(day * DAY + DAY - 1)
            known = self.days[day] = first if first == last else False
        return ts + (self._offset(ts) if known is False else known)


def bucket_counts(tz, period=None, owned_only=False):
    """[(local seconds of the bucket start, listens)]. Buckets are UTC hours, made smaller when the
    zone has half- or quarter-hour offsets, so no bucket straddles two local hours. `owned_only`
    counts only listens of albums on the shelf."""
    # Kept for the app context (one request): the page's streaks, all-time heat map and shelf
    # chart read one scan.
    cache = g.setdefault("analytics_buckets", {})
    key = (tz.key, (period.start, period.end) if period else (None, None), owned_only)
    if key not in cache:
        cache[key] = _bucket_counts(tz, period or Period("all", None, None), owned_only)
    return cache[key]


def _bucket_counts(tz, period, owned_only):
    if not owned_only:
        # From the summaries (importers/summaries.py): hours, or quarter hours for zones with half-
        # or quarter-hour offsets; a zone with stranger offsets counts the listens below.
        conn = db.session.connection()
        for step in (summaries.HOUR, summaries.QUARTER):
            clock = LocalClock(tz)
            counted = summaries.buckets(conn, step, period.start, period.end)
            out = [(clock.local(b * step), n) for b, n in sorted(counted.items())]
            if not clock.offsets or math.gcd(step, *clock.offsets) == step:
                return out
    step = 3600
    while True:
        bucket = (Listen.played_at // step).label("b")
        query = period.where(sa.select(bucket, sa.func.count()).group_by(bucket))
        if owned_only:
            query = query.where(Listen.album_id.in_(_owned_album_ids()))
        clock = LocalClock(tz)
        out = [(clock.local(b * step), n) for b, n in db.session.execute(query)]
        exact = math.gcd(step, *clock.offsets) if clock.offsets else step
        if exact == step:
            return out
        step = exact


WEEK_HOUR, LOCAL_DAY = "week_hour", "day"


def _offset(tz, ts):
    return int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())


SPAN = 7 * DAY  # no zone changes its offset twice within a week (checked: the change found must land on it)


def offset_segments(tz, t0, t1, step):
    """[(from, to, offset)] covering UTC seconds [t0, t1) (multiples of `step`) in spans of one UTC
    offset, each cut at a change of offset; None when a change falls inside a bucket or an offset is
    not a whole number of buckets (the caller then takes smaller buckets, or the listens). zoneinfo
    is asked once a week of the range, and about twenty times more per change."""
    return _offset_segments(tz.key, t0, t1, step)


@functools.lru_cache(maxsize=256)
def _offset_segments(zone, t0, t1, step):
    tz = ZoneInfo(zone)
    segments, current, offset = [], t0, _offset(tz, t0)
    if offset % step:
        return None
    for a in range(t0, t1, SPAN):
        b = min(t1, a + SPAN)
        last = _offset(tz, b - 1)
        if last == offset:
            continue
        lo, hi = a, b - 1  # the first second of the new offset
        while lo < hi:
            mid = (lo + hi) // 2
            if _offset(tz, mid) != offset:
                hi = mid
            else:
                lo = mid + 1
        if lo % step or last % step or _offset(tz, lo) != last:
            return None
        segments.append((current, lo, offset))
        current, offset = lo, last
    segments.append((current, t1, offset))
    return tuple(segments)


def local_counts(tz, period=None, how=LOCAL_DAY):
    """{key: listens}: per local day (days since 1970-01-01, local) or per hour of the local week
    (weekday * 24 + hour, Monday = 0). Counted in the database from the hour summaries (quarter
    hours for zones with such offsets), one grouped query per span of one UTC offset (a few per
    year), and from the listens in the buckets a period's bounds cut."""
    cache = g.setdefault("analytics_local", {})
    period = period or Period("all", None, None)
    key = (tz.key, period.start, period.end, how)
    if key not in cache:
        if period.start is None and period.end is None:  # all time: the same until listens change
            cache[key] = by_listens_version(key, lambda: _local_counts(tz, period, how),
                                            advance=functools.partial(_add_local, tz, how))
        else:
            cache[key] = _local_counts(tz, period, how)
    return cache[key]


ADVANCE_MAX = 20_000  # new listens read to bring a kept figure forward; more, and it is computed again


def by_listens_version(key, compute, advance=None):
    """compute(), kept in this process until the listens change: every writer of listens bumps the
    listen_feed version in its own transaction (importers/listen_feed.claim), so a figure computed
    between two reads of the same version is the figure for every reader of that version. Only for
    figures of the listens alone (not the collection, not the clock).

    `advance(value, new)`: the kept value with the listens stored since added (`new`: rows of id,
    played_at and artist_id, by id), a new value. When the only change since the kept version is new
    listens (no writer has claimed a rewrite since: deletions and rebuilds do), the next version
    costs reading those listens instead of computing again: during an import, each batch is a new
    version. The new listens are those above the highest id the value counted (ids grow in commit
    order: writers of listens are serialised by the feed's row lock and take their ids after it),
    and their number must make up the change in the listens' total, or the value is computed again.
    """
    kept = current_app.extensions.setdefault("analytics_kept", {"stamp": None, "values": {}, "bases": {}})
    conn = db.session.connection()
    before = listen_feed.current(conn)
    if before is not None and kept["stamp"] == before and key in kept["values"]:
        return kept["values"][key]
    value, base = None, kept["bases"].get(key) if advance is not None else None
    if before is not None and base is not None:
        stamp, high, total, old = base
        if stamp.topic == before.topic and before.rewritten <= stamp.version <= before.version:
            new = conn.execute(sa.select(Listen.id, Listen.played_at, Listen.artist_id).where(Listen.id > high)
                               .order_by(Listen.id).limit(ADVANCE_MAX + 1)).all()
            now_total = summaries.count(conn)
            if len(new) <= ADVANCE_MAX and now_total == total + len(new):
                value = advance(old, new)
                high, total = (new[-1].id if new else high), now_total
    if value is None:
        if advance is not None:
            high = conn.execute(sa.select(sa.func.max(Listen.id))).scalar() or 0
            total = summaries.count(conn)
        value = compute()
    after = listen_feed.current(conn)
    if before is not None and after == before:
        if kept["stamp"] != before:
            kept["stamp"], kept["values"] = before, {}
        kept["values"][key] = value
        if advance is not None:
            kept["bases"][key] = (before, high, total, value)
    return value


def _local_key(local, how):
    return (local // 3600 + 72) % 168 if how == WEEK_HOUR else local // DAY


def _add_local(tz, how, counts, new):
    out, clock = Counter(counts), LocalClock(tz)
    for row in new:
        out[_local_key(clock.local(row.played_at), how)] += 1
    return out


def _local_counts(tz, period, how):
    conn = db.session.connection()
    counts = summaries.counts_t
    for step in (summaries.HOUR, summaries.QUARTER):
        lo, hi, edges = summaries.split(step, period.start, period.end)
        out = Counter()
        if lo is None or hi is None or lo < hi:
            first, last = (conn.execute(summaries.whole(sa.select(counts.c.bucket), step, lo, hi)
                                        .order_by(order).limit(1)).scalar()
                           for order in (counts.c.bucket.asc(), counts.c.bucket.desc()))  # see first_and_last
            segments = [] if first is None else offset_segments(tz, first * step, (last + 1) * step, step)
            if segments is None:
                continue
            for seg_from, seg_to, offset in segments:
                local = counts.c.bucket * step + offset
                group = (local // 3600 + 72) % 168 if how == WEEK_HOUR else local // DAY
                query = summaries.whole(sa.select(group, sa.func.sum(counts.c.plays)), step,
                                        seg_from // step, seg_to // step)
                for value, n in conn.execute(query.group_by(group)):
                    out[int(value)] += int(n)
        clock = LocalClock(tz)
        for a, b in edges:
            for played_at in conn.execute(sa.select(Listen.played_at).where(Listen.played_at >= a,
                                                                            Listen.played_at < b)).scalars():
                out[_local_key(clock.local(played_at), how)] += 1
        return out
    out = Counter()  # offsets that are not whole quarter hours: every bucket mapped here
    for local, n in bucket_counts(tz, period):
        out[_local_key(local, how)] += n
    return out


def local_day(local_seconds):
    return local_seconds // DAY


def month_key(local_seconds):
    return _month_of_day(local_seconds // DAY)


@functools.lru_cache(maxsize=65536)
def _month_of_day(day):
    moment = EPOCH + timedelta(days=day)
    return f"{moment.year:04d}-{moment.month:02d}"


def months_between(first, last):
    """Every "YYYY-MM" from first to last."""
    year, month = int(first[:4]), int(first[5:])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


# ----------------------------------------------------------------------------- panels


def _ranked(rows, make):
    """Items with competition ranks: equal plays share a rank (1, 2, 2, 4)."""
    items, rank, previous = [], 0, None
    for index, row in enumerate(rows, 1):
        if row.plays != previous:
            rank, previous = index, row.plays
        items.append({"rank": rank, **make(row), "plays": row.plays})
    return items


def _owned_album_ids():
    return sa.select(CollectionItem.album_id).where(CollectionItem.album_id.is_not(None))


def top(kind, period, limit=DEFAULT_LIMIT, not_owned=False):
    """The most played artists, albums or tracks of the period; ties ordered by name."""
    if period.start is None and period.end is None:
        return _top_all_time(kind, limit, not_owned)
    if period.start is None or period.end is not None and period.end <= period.start:
        return top_from_listens(kind, period, limit, not_owned)  # not a period the page offers
    if period.end is not None and not not_owned:  # a year: fixed bounds, the same until listens change
        return by_listens_version(("top", kind, period.start, period.end, limit),
                                  lambda: _top_period(kind, period, limit, not_owned))
    return _top_period(kind, period, limit, not_owned)


def _top_period(kind, period, limit, not_owned):
    end = period.end
    if end is None:  # "until now", and any listen stamped later: up to the last listen
        last = db.session.execute(sa.select(Listen.played_at).order_by(Listen.played_at.desc()).limit(1)).scalar()
        end = period.start if last is None else max(period.start, last + 1)
    if end <= period.start:
        return []
    # From the month summaries and the listens at the cut edges (importers/summaries.plays_in):
    # the database sums and orders by plays; only the items down to the limit-th's plays (ties
    # included) are read, then named and ordered by name.
    where = (lambda column: column.not_in(_owned_album_ids())) if not_owned else None
    ranked = summaries.plays_in(kind, period.start, end, where)  # one level: SQLite keeps only the first rows
    fetch = limit + 20
    while True:
        rows = db.session.execute(ranked.limit(fetch)).all()
        if len(rows) < fetch or rows[-1].plays < rows[limit - 1].plays:
            break
        if fetch > CANDIDATES:
            return top_from_listens(kind, period, limit, not_owned)  # many ties at the cut: the database sorts
        fetch *= 4
    if not rows:
        return []
    plays = {r.id: r.plays for r in rows if r.plays >= rows[min(limit, len(rows)) - 1].plays}
    table = {"artists": Artist, "albums": Album, "tracks": Track}[kind]
    if kind == "artists":
        query = sa.select(Artist.id, Artist.name).order_by(Artist.name_key, Artist.id)
        make = lambda r: {"id": r.id, "name": r.name}  # noqa: E731
    else:
        query = (sa.select(table.id, table.title, Artist.name.label("artist")).join(Artist, Artist.id == table.artist_id)
                 .order_by(table.title_key, Artist.name_key, table.id))
        make = lambda r: {"id": r.id, "title": r.title, "artist": r.artist}  # noqa: E731
    named = db.session.execute(query.where(table.id.in_(list(plays)))).all()
    # Python's sort is stable: by plays, then in the database's name order (its collation).
    ordered = sorted((_Row(plays[r.id], r) for r in named), key=lambda row: -row.plays)[:limit]
    return _ranked(ordered, lambda row: make(row.row))


CANDIDATES = 5000  # items read and named at most before the database sorts the listens itself


@dataclass(frozen=True)
class _Row:
    plays: int
    row: object


def top_from_listens(kind, period, limit, not_owned):
    """Counted from the listens of the period (the played_at index)."""
    if kind == "artists":
        counts = period.where(sa.select(Listen.artist_id.label("id"), sa.func.count().label("plays"))
                              .group_by(Listen.artist_id)).subquery()
    else:
        column = Listen.album_id if kind == "albums" else Listen.track_id
        inner = sa.select(column.label("id"), sa.func.count().label("plays")).where(column.is_not(None))
        if not_owned:
            inner = inner.where(column.not_in(_owned_album_ids()))
        counts = period.where(inner.group_by(column)).subquery()
    return _top_rows(kind, counts, limit)


def _top_rows(kind, counts, limit):
    if kind == "artists":
        query = (sa.select(counts.c.id, counts.c.plays, Artist.name).join(Artist, Artist.id == counts.c.id)
                 .order_by(counts.c.plays.desc(), Artist.name_key, Artist.id))
        make = lambda r: {"id": r.id, "name": r.name}  # noqa: E731
    else:
        table = Album if kind == "albums" else Track
        query = (sa.select(counts.c.id, counts.c.plays, table.title, Artist.name.label("artist"))
                 .join(table, table.id == counts.c.id).join(Artist, Artist.id == table.artist_id)
                 .order_by(counts.c.plays.desc(), table.title_key, Artist.name_key, table.id))
        make = lambda r: {"id": r.id, "title": r.title, "artist": r.artist}  # noqa: E731
    return _ranked(db.session.execute(query.limit(limit)).all(), make)


def _top_all_time(kind, limit, not_owned):
    """All time, from the totals (artist_plays, album_plays, track_plays): the plays index gives the
    count of the limit-th item, and only items with at least that many are ordered by name."""
    table, key = {"artists": (ArtistPlays, ArtistPlays.artist_id), "albums": (AlbumPlays, AlbumPlays.album_id),
                  "tracks": (TrackPlays, TrackPlays.track_id)}[kind]
    base = sa.select(key.label("id"), table.plays.label("plays"))
    if not_owned:
        base = base.where(key.not_in(_owned_album_ids()))
    threshold = db.session.execute(base.with_only_columns(table.plays).order_by(table.plays.desc())
                                   .limit(1).offset(max(limit, 1) - 1)).scalar()
    if threshold is not None:
        base = base.where(table.plays >= threshold)
    return _top_rows(kind, base.subquery(), limit)


def heatmap(tz, period):
    """Listens per local weekday (0 = Monday) and hour: cells[weekday][hour]."""
    cells = [[0] * 24 for _ in range(7)]
    for week_hour, n in local_counts(tz, period, WEEK_HOUR).items():
        cells[week_hour // 24][week_hour % 24] += n
    flat = [n for row in cells for n in row]
    return {"cells": cells, "max": max(flat), "total": sum(flat)}


def _run(days, end):
    start = end
    while start - 1 in days:
        start -= 1
    return start, end


def streaks(tz, now=None):
    """The longest run of consecutive local days with listens (the earliest if several), and the
    current run: the one reaching today, or yesterday while today has no listen yet."""
    days = {day for day, n in local_counts(tz).items() if n}
    longest = None
    for day in sorted(days):
        if day + 1 not in days:  # the end of a run
            start, end = _run(days, day)
            if longest is None or end - start > longest[1] - longest[0]:
                longest = (start, end)
    today = local_day(LocalClock(tz).local(int(time.time() if now is None else now)))
    current = _run(days, today) if today in days else _run(days, today - 1) if today - 1 in days else None

    def describe(run):
        if run is None:
            return {"days": 0, "start": None, "end": None}
        return {"days": run[1] - run[0] + 1, "start": (EPOCH + timedelta(days=run[0])).isoformat(),
                "end": (EPOCH + timedelta(days=run[1])).isoformat()}
    return {"longest": describe(longest), "current": describe(current), "days_with_listens": len(days)}


def discoveries(tz):
    """Artists discovered per local month: the month of each artist's first listen, gaps filled."""
    _firsts, per_month = by_listens_version(("discoveries", tz.key), lambda: _first_listens(tz),
                                            advance=functools.partial(_add_first_listens, tz))
    per_month = {m: n for m, n in per_month.items() if n}
    if not per_month:
        return {"months": [], "total": 0}
    months = [{"month": m, "artists": per_month.get(m, 0)} for m in months_between(min(per_month), max(per_month))]
    return {"months": months, "total": sum(per_month.values())}


def _first_listens(tz):
    """({artist id: UTC seconds of the first listen}, Counter of local months), from artist_plays."""
    clock, firsts, per_month = LocalClock(tz), {}, Counter()
    for artist_id, first in db.session.execute(sa.select(ArtistPlays.artist_id, ArtistPlays.first_played_at)):
        firsts[artist_id] = first
        per_month[month_key(clock.local(first))] += 1
    return firsts, per_month


def _add_first_listens(tz, kept, new):
    firsts, per_month = kept
    clock, changed = LocalClock(tz), {}
    for row in new:
        first = changed.get(row.artist_id, firsts.get(row.artist_id))
        if first is None or row.played_at < first:
            changed[row.artist_id] = row.played_at
    if not changed:
        return kept
    firsts, per_month = dict(firsts), Counter(per_month)
    for artist_id, first in changed.items():
        if artist_id in firsts:
            per_month[month_key(clock.local(firsts[artist_id]))] -= 1
        per_month[month_key(clock.local(first))] += 1
        firsts[artist_id] = first
    return firsts, per_month


def unplayed(limit=DEFAULT_LIMIT):
    """Albums on the shelf with no listen at all, by artist then title."""
    played = sa.select(AlbumPlays.album_id).where(AlbumPlays.album_id == Album.id).exists()
    rows = db.session.execute(
        sa.select(Album.id, Album.title, Artist.name.label("artist"), sa.func.count(CollectionItem.id).label("copies"),
                  sa.func.max(CollectionItem.year).label("year"))
        .join(CollectionItem, CollectionItem.album_id == Album.id).join(Artist, Artist.id == Album.artist_id)
        .where(~played).group_by(Album.id, Album.title, Artist.name, Artist.name_key, Album.title_key)
        .order_by(Artist.name_key, Album.title_key, Album.id)).all()
    owned = db.session.execute(sa.select(sa.func.count(sa.distinct(CollectionItem.album_id)))).scalar()
    return {"owned_albums": owned, "total": len(rows),
            "items": [{"id": r.id, "title": r.title, "artist": r.artist, "copies": r.copies, "year": r.year}
                      for r in rows[:limit]]}


def owned_over_time(tz):
    """Per local month: every listen, and the listens of albums on the shelf."""
    per_month = {}
    for day, n in local_counts(tz).items():
        per_month.setdefault(month_key(day * DAY), [0, 0])[0] += n
    for local, n in bucket_counts(tz, owned_only=True):
        per_month.setdefault(month_key(local), [0, 0])[1] += n
    if not per_month:
        return {"months": [], "plays": 0, "owned_plays": 0}
    months = [{"month": m, "plays": per_month.get(m, [0, 0])[0], "owned_plays": per_month.get(m, [0, 0])[1]}
              for m in months_between(min(per_month), max(per_month))]
    return {"months": months, "plays": sum(m["plays"] for m in months),
            "owned_plays": sum(m["owned_plays"] for m in months)}


# ----------------------------------------------------------------------------- web

PERIOD_PANELS = frozenset({"top-artists", "top-albums", "top-tracks", "heatmap", "shelf-unowned"})
PANELS = ("top-artists", "top-albums", "top-tracks", "heatmap", "streaks", "discoveries",
          "shelf-unplayed", "shelf-unowned", "shelf-over-time")


def timezone():
    return ZoneInfo(current_app.extensions["sillon"]["settings"]["TIMEZONE"] or "UTC")


def compute(panel, period, limit, tz):
    if panel.startswith("top-"):
        return {"items": top(panel[4:], period, limit)}
    if panel == "heatmap":
        return heatmap(tz, period)
    if panel == "streaks":
        return streaks(tz)
    if panel == "discoveries":
        return discoveries(tz)
    if panel == "shelf-unplayed":
        return unplayed(limit)
    if panel == "shelf-unowned":
        return {"items": top("albums", period, limit, not_owned=True)}
    return owned_over_time(tz)


def first_and_last(column, *where):
    """min and max of an indexed column, two index lookups: SQLite reads the whole index for a
    min() and a max() in one SELECT (its min/max optimisation takes a lone aggregate only)."""
    found = [db.session.execute(sa.select(column).where(*where).order_by(order).limit(1)).scalar()
             for order in (column.asc(), column.desc())]
    return found[0], found[1]


def years_with_listens(tz):
    first, last = first_and_last(Listen.played_at)
    if first is None:
        return []
    return list(range(datetime.fromtimestamp(last, tz).year, datetime.fromtimestamp(first, tz).year - 1, -1))


@bp.get("/analytics")
def page():
    tz = timezone()
    error, status = None, 200
    try:
        period = parse_period(request.args.get("period"), tz)
    except BadParameter as exc:
        error, status = str(exc), 400
        period = parse_period(DEFAULT_PERIOD, tz)
    total = summaries.count(db.session.connection())
    data = {"total": total, "timezone": tz.key, "period": period.as_dict()}
    if total:
        data.update({name.replace("-", "_"): compute(name, period, DEFAULT_LIMIT, tz) for name in PANELS})
    years = years_with_listens(tz) if total else []
    periods = [(key, str(label)) for key, label in PERIOD_LABELS.items()] + [(str(y), str(y)) for y in years]
    if period.key not in dict(periods):
        periods.append((period.key, period.label))
    return render_template("analytics.html", data=data, period=period, periods=periods, error=error), status
