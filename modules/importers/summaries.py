"""Summaries of the listens, kept exact in the same transaction as every write of listens.

- listen_counts: listens per UTC bucket of 900, 3600 and 86400 seconds. A quarter hour never
  straddles two local quarter hours in any zone Sillon meets after 1970 (offsets are whole quarter
  hours), so any time zone, daylight-saving changes included, is answered from the buckets; the
  hour and day rows are rollups that keep the number of rows a page reads small.
- artist_plays (with first and last listen), album_plays, track_plays: all-time totals.
- artist_month_plays, album_month_plays, track_month_plays: the same per UTC calendar month, for
  the top lists of a period (whole months from here, the cut edges from the listens: `plays_in`).

`add` is called by importers/listens.write_plays with the listens it has just inserted (the rows
the database really kept, from INSERT ... RETURNING), and `remove` by forget_listens with the rows
it has just deleted: a figure read from a summary is always the figure a count over the listens
would give, because both change in one transaction. `rebuild` computes every summary again from
the listens (the migration that adds them, and tests that insert listens by hand).

Why summaries and not only indexes: docs/design-performance.md.
"""
from __future__ import annotations

import calendar
import functools
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa

from ..models import (
    AlbumMonthPlays,
    AlbumPlays,
    ArtistMonthPlays,
    ArtistPlays,
    Listen,
    ListenCount,
    TrackMonthPlays,
    TrackPlays,
)
from . import listen_feed

STEPS = (900, 3600, 86400)
QUARTER, HOUR, DAY = STEPS

counts_t, artists_t, albums_t, tracks_t = (ListenCount.__table__, ArtistPlays.__table__, AlbumPlays.__table__,
                                           TrackPlays.__table__)
listens_t = Listen.__table__
# kind: (per-month table, its key column, the listens' column)
MONTHLY = {"artists": (ArtistMonthPlays.__table__, "artist_id"), "albums": (AlbumMonthPlays.__table__, "album_id"),
           "tracks": (TrackMonthPlays.__table__, "track_id")}


@functools.lru_cache(maxsize=8192)
def _month_of_day(day):
    moment = datetime.fromtimestamp(day * 86400, UTC)
    return (moment.year - 1970) * 12 + moment.month - 1


def month_of(ts):
    """The UTC calendar month of UTC seconds `ts`, as months since January 1970."""
    return _month_of_day(ts // 86400)


def month_start(month):
    """The first UTC second of a month (months since January 1970)."""
    return calendar.timegm((1970 + month // 12, month % 12 + 1, 1, 0, 0, 0))


def floor_div(column, step):
    """`column // step` rounded down on SQLite and PostgreSQL alike (both truncate towards zero)."""
    return (column - (column % step + step) % step) // step


def _tally(rows):
    buckets, artists = defaultdict(int), {}
    albums, tracks = defaultdict(int), defaultdict(int)
    months = {kind: defaultdict(int) for kind in MONTHLY}
    for played_at, artist_id, album_id, track_id in rows:
        for step in STEPS:
            buckets[(step, played_at // step)] += 1
        month = month_of(played_at)
        months["artists"][(month, artist_id)] += 1
        if album_id is not None:
            months["albums"][(month, album_id)] += 1
        months["tracks"][(month, track_id)] += 1
        seen = artists.get(artist_id)
        if seen is None:
            artists[artist_id] = [1, played_at, played_at]
        else:
            seen[0] += 1
            seen[1] = min(seen[1], played_at)
            seen[2] = max(seen[2], played_at)
        if album_id is not None:
            albums[album_id] += 1
        tracks[track_id] += 1
    return buckets, artists, albums, tracks, months


# The upserts as plain SQL, the same on SQLite (3.24+) and PostgreSQL but for the placeholder, sent
# with the driver's own executemany: SQLAlchemy's per-row parameter handling cost more than the
# database's work here (about 2,000 summary rows per 500 listens), and these run in every batch.
UPSERTS = {
    "counts": ("INSERT INTO listen_counts (step, bucket, plays) VALUES ({p}, {p}, {p}) "
               "ON CONFLICT (step, bucket) DO UPDATE SET plays = listen_counts.plays + excluded.plays"),
    "artists": ("INSERT INTO artist_plays (artist_id, plays, first_played_at, last_played_at) "
                "VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (artist_id) DO UPDATE SET "
                "plays = artist_plays.plays + excluded.plays, "
                "first_played_at = CASE WHEN excluded.first_played_at < artist_plays.first_played_at "
                "THEN excluded.first_played_at ELSE artist_plays.first_played_at END, "
                "last_played_at = CASE WHEN excluded.last_played_at > artist_plays.last_played_at "
                "THEN excluded.last_played_at ELSE artist_plays.last_played_at END"),
    "albums": ("INSERT INTO album_plays (album_id, plays) VALUES ({p}, {p}) "
               "ON CONFLICT (album_id) DO UPDATE SET plays = album_plays.plays + excluded.plays"),
    "tracks": ("INSERT INTO track_plays (track_id, plays) VALUES ({p}, {p}) "
               "ON CONFLICT (track_id) DO UPDATE SET plays = track_plays.plays + excluded.plays"),
    **{kind: (f"INSERT INTO {table.name} (month, {key}, plays) VALUES ({{p}}, {{p}}, {{p}}) "
              f"ON CONFLICT (month, {key}) DO UPDATE SET plays = {table.name}.plays + excluded.plays")
       for kind, (table, key) in (("artist months", MONTHLY["artists"]), ("album months", MONTHLY["albums"]),
                                  ("track months", MONTHLY["tracks"]))},
}


def _upsert(conn, name, rows):
    if rows:
        placeholder = "?" if conn.dialect.name == "sqlite" else "%s"
        conn.exec_driver_sql(UPSERTS[name].format(p=placeholder), rows)


# PostgreSQL: the upserts (totals, buckets, months) as one statement (data-modifying WITH clauses, each run once and to
# the end), so a batch costs one round trip for its summaries instead of seven. Each VALUES list
# holds a key once (_tally adds them up), as ON CONFLICT DO UPDATE requires. SQLite has no such
# WITH clause, and no round trips to save: there the driver's executemany runs each upsert.
PG_MAX_PARAMETERS = 30_000  # PostgreSQL takes 65,535 per statement


def _upsert_together(conn, batches):
    parts, params = [], []
    for name, rows in batches:
        if rows:
            one = "VALUES (" + ", ".join(["{p}"] * len(rows[0])) + ")"
            many = "VALUES " + ", ".join([one[len("VALUES "):]] * len(rows))
            parts.append(f"{name.replace(' ', '_')}_upsert AS ({UPSERTS[name].replace(one, many).format(p='%s')})")
            params.extend(v for row in rows for v in row)
    conn.exec_driver_sql("WITH " + ", ".join(parts) + " SELECT 1", tuple(params))


def add(conn, rows):
    """Count listens just inserted: rows of (played_at, artist_id, album_id, track_id)."""
    buckets, artists, albums, tracks, months = _tally(rows)
    if not buckets:
        return
    # Sorted keys: two writers (there is one at a time, listen_feed orders them) would lock rows in
    # the same order.
    batches = [("counts", [(s, b, n) for (s, b), n in sorted(buckets.items())]),
               ("artists", [(a, n, lo, hi) for a, (n, lo, hi) in sorted(artists.items())]),
               ("albums", sorted(albums.items())), ("tracks", sorted(tracks.items()))]
    batches += [(f"{kind[:-1]} months", [(m, k, n) for (m, k), n in sorted(counted.items())])
                for kind, counted in months.items()]
    if conn.dialect.name == "postgresql" and sum(len(r) * len(r[0]) for _, r in batches if r) <= PG_MAX_PARAMETERS:
        _upsert_together(conn, batches)
        return
    for name, batch in batches:
        _upsert(conn, name, batch)


def remove(conn, rows):
    """Uncount listens just deleted (same rows as `add`); summaries that reach zero are deleted."""
    buckets, artists, albums, tracks, months = _tally(rows)
    if not buckets:
        return
    conn.execute(counts_t.update().where(counts_t.c.step == sa.bindparam("s"), counts_t.c.bucket == sa.bindparam("b"))
                 .values(plays=counts_t.c.plays - sa.bindparam("n")),
                 [{"s": s, "b": b, "n": n} for (s, b), n in sorted(buckets.items())])
    conn.execute(counts_t.delete().where(counts_t.c.plays <= 0))
    for table, key, counted in ((artists_t, "artist_id", {a: v[0] for a, v in artists.items()}),
                                (albums_t, "album_id", albums), (tracks_t, "track_id", tracks)):
        if not counted:
            continue
        conn.execute(table.update().where(table.c[key] == sa.bindparam("k"))
                     .values(plays=table.c.plays - sa.bindparam("n")),
                     [{"k": k, "n": n} for k, n in sorted(counted.items())])
        conn.execute(table.delete().where(table.c.plays <= 0))
    for kind, counted in months.items():
        table, key = MONTHLY[kind]
        if counted:
            conn.execute(table.update().where(table.c.month == sa.bindparam("m"), table.c[key] == sa.bindparam("k"))
                         .values(plays=table.c.plays - sa.bindparam("n")),
                         [{"m": m, "k": k, "n": n} for (m, k), n in sorted(counted.items())])
            conn.execute(table.delete().where(table.c.plays <= 0))
    ids = sorted(artists)
    for start in range(0, len(ids), 400):
        chunk = ids[start:start + 400]
        of_artist = listens_t.c.artist_id == artists_t.c.artist_id
        conn.execute(artists_t.update().where(artists_t.c.artist_id.in_(chunk)).values(
            first_played_at=sa.select(sa.func.min(listens_t.c.played_at)).where(of_artist).scalar_subquery(),
            last_played_at=sa.select(sa.func.max(listens_t.c.played_at)).where(of_artist).scalar_subquery()))


def rebuild(conn):
    """Every summary computed again from the listens (a few statements, one scan each). Bumps the
    listen_feed version as a rewrite: what a process kept for the listens before is stale."""
    listen_feed.claim(conn, rewrites=True)
    rebuild_totals(conn)
    rebuild_months(conn)


def rebuild_totals(conn):
    """The bucket counts and all-time totals (migration 0007's tables) computed again."""
    for table in (counts_t, artists_t, albums_t, tracks_t):
        conn.execute(table.delete())
    for step in STEPS:
        bucket = floor_div(listens_t.c.played_at, step)
        conn.execute(counts_t.insert().from_select(
            ["step", "bucket", "plays"],
            sa.select(sa.literal(step), bucket, sa.func.count()).group_by(bucket)))
    conn.execute(artists_t.insert().from_select(
        ["artist_id", "plays", "first_played_at", "last_played_at"],
        sa.select(listens_t.c.artist_id, sa.func.count(), sa.func.min(listens_t.c.played_at),
                  sa.func.max(listens_t.c.played_at)).group_by(listens_t.c.artist_id)))
    for table, key in ((albums_t, "album_id"), (tracks_t, "track_id")):
        column = listens_t.c[key]
        conn.execute(table.insert().from_select(
            [key, "plays"], sa.select(column, sa.func.count()).where(column.is_not(None)).group_by(column)))


def rebuild_months(conn):
    """The per-month tables computed again from the listens: one grouped range scan per month (the
    played_at index), the same SQL on both databases."""
    for table, _key in MONTHLY.values():
        conn.execute(table.delete())
    first, last = conn.execute(sa.select(sa.func.min(listens_t.c.played_at), sa.func.max(listens_t.c.played_at))).one()
    if first is None:
        return
    for month in range(month_of(first), month_of(last) + 1):
        a, b = month_start(month), month_start(month + 1)
        for table, key in MONTHLY.values():
            column = listens_t.c[key]
            conn.execute(table.insert().from_select(
                ["month", key, "plays"],
                sa.select(sa.literal(month), column, sa.func.count())
                .where(listens_t.c.played_at >= a, listens_t.c.played_at < b, column.is_not(None)).group_by(column)))


# ----------------------------------------------------------------------------- reading


def split(step, start=None, end=None):
    """[start, end) as whole buckets [lo, hi) (None: unbounded) and the second ranges at the cut
    edges, less than a bucket each. lo >= hi: no whole bucket, the edges cover it all."""
    lo = None if start is None else -(-start // step)  # first whole bucket
    hi = None if end is None else end // step  # first bucket not whole
    if lo is not None and hi is not None and lo >= hi:
        return lo, lo, [(start, end)] if start < end else []
    edges = [(start, lo * step)] if start is not None else []
    if end is not None:
        edges.append((hi * step, end))
    return lo, hi, [(a, b) for a, b in edges if a < b]


def whole(query, step, lo, hi):
    """`query` on listen_counts narrowed to buckets of `step` in [lo, hi)."""
    query = query.where(counts_t.c.step == step)
    if lo is not None:
        query = query.where(counts_t.c.bucket >= lo)
    if hi is not None:
        query = query.where(counts_t.c.bucket < hi)
    return query


def buckets(conn, step, start=None, end=None):
    """{bucket: listens} for UTC buckets of `step` seconds over [start, end) (None: unbounded),
    exact at any bound: whole buckets come from listen_counts, the part of a bucket cut by a bound
    from the listens themselves (the played_at index, less than one bucket's worth)."""
    lo, hi, edges = split(step, start, end)
    out = defaultdict(int)
    if lo is None or hi is None or lo < hi:
        for bucket, plays in conn.execute(whole(sa.select(counts_t.c.bucket, counts_t.c.plays), step, lo, hi)):
            out[bucket] += plays
    bucket = floor_div(listens_t.c.played_at, step)
    for a, b in edges:
        for value, n in conn.execute(sa.select(bucket, sa.func.count())
                                     .where(listens_t.c.played_at >= a, listens_t.c.played_at < b)
                                     .group_by(bucket)):
            out[int(value)] += n
    return dict(out)


def count(conn, start=None, end=None):
    """Listens over [start, end), exact, from day buckets and the listens at the cut edges."""
    return sum(buckets(conn, DAY, start, end).values())


def _direct_seconds(start, end, a, b):
    """Seconds of month [a, b) that [start, end) covers, and those it leaves out."""
    inside = max(0, min(end, b) - max(start, a))
    return inside, (b - a) - inside


def plays_in(kind, start, end, where=None):
    """A SELECT of (id, plays), most played first, for the artists, albums or tracks ("artists", ...) listened to over
    UTC seconds [start, end), exact: the months [start, end) covers whole from the per-month
    tables, a month it cuts either from its own listens or as the month's row less the listens it
    leaves out (whichever reads fewer seconds of listens). `where(column)`: an extra condition on
    the id column of both parts."""
    table, key = MONTHLY[kind]
    column = listens_t.c[key]
    first, last = month_of(start), month_of(end - 1)
    summed = []  # months read from the table
    direct = []  # (sign, a, b): second ranges counted from the listens
    for month in (first, last) if first != last else (first,):
        a, b = month_start(month), month_start(month + 1)
        inside, outside = _direct_seconds(start, end, a, b)
        if outside == 0:
            summed.append(month)
        elif inside <= outside:
            direct.append((1, max(start, a), min(end, b)))
        else:
            summed.append(month)
            direct += [(-1, a, start)] if a < start else []
            direct += [(-1, end, b)] if end < b else []
    parts = []
    months = list(range(first + 1, last)) + summed  # contiguous: only the end months can be cut
    if months:
        parts.append(sa.select(table.c[key].label("id"), table.c.plays.label("n"))
                     .where(table.c.month >= min(months), table.c.month <= max(months)))
        if where is not None:
            parts[-1] = parts[-1].where(where(table.c[key]))
    for sign, a, b in direct:
        # Rows, not a GROUP BY here: grouped by the id, SQLite may walk a whole index sorted by
        # it (artist_id, album_id) instead of the played_at range, which holds the few rows.
        parts.append(sa.select(column.label("id"), sa.literal(sign).label("n"))
                     .where(listens_t.c.played_at >= a, listens_t.c.played_at < b, column.is_not(None)))
        if where is not None:
            parts[-1] = parts[-1].where(where(column))
    union = sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
    plays = sa.func.sum(union.c.n)
    return sa.select(union.c.id, plays.label("plays")).group_by(union.c.id).having(plays > 0).order_by(plays.desc())
