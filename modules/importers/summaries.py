"""Summaries of the listens, kept exact in the same transaction as every write of listens.

- listen_counts: listens per UTC bucket of 900, 3600 and 86400 seconds. A quarter hour never
  straddles two local quarter hours in any zone Sillon meets after 1970 (offsets are whole quarter
  hours), so any time zone, daylight-saving changes included, is answered from the buckets; the
  hour and day rows are rollups that keep the number of rows a page reads small.
- artist_plays (with first and last listen), album_plays, track_plays: all-time totals.

`add` is called by importers/listens.write_plays with the listens it has just inserted (the rows
the database really kept, from INSERT ... RETURNING), and `remove` by forget_listens with the rows
it has just deleted: a figure read from a summary is always the figure a count over the listens
would give, because both change in one transaction. `rebuild` computes every summary again from
the listens (the migration that adds them, and tests that insert listens by hand).

Why summaries and not only indexes: docs/design-performance.md.
"""
from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from ..models import AlbumPlays, ArtistPlays, Listen, ListenCount, TrackPlays

STEPS = (900, 3600, 86400)
QUARTER, HOUR, DAY = STEPS

counts_t, artists_t, albums_t, tracks_t = (ListenCount.__table__, ArtistPlays.__table__, AlbumPlays.__table__,
                                           TrackPlays.__table__)
listens_t = Listen.__table__


def floor_div(column, step):
    """`column // step` rounded down on SQLite and PostgreSQL alike (both truncate towards zero)."""
    return (column - (column % step + step) % step) // step


def _tally(rows):
    buckets, artists = defaultdict(int), {}
    albums, tracks = defaultdict(int), defaultdict(int)
    for played_at, artist_id, album_id, track_id in rows:
        for step in STEPS:
            buckets[(step, played_at // step)] += 1
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
    return buckets, artists, albums, tracks


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
}


def _upsert(conn, name, rows):
    if rows:
        placeholder = "?" if conn.dialect.name == "sqlite" else "%s"
        conn.exec_driver_sql(UPSERTS[name].format(p=placeholder), rows)


# PostgreSQL: the four upserts as one statement (data-modifying WITH clauses, each run once and to
# the end), so a batch costs one round trip for its summaries instead of four. Each VALUES list
# holds a key once (_tally adds them up), as ON CONFLICT DO UPDATE requires. SQLite has no such
# WITH clause, and no round trips to save: there the driver's executemany runs each upsert.
PG_MAX_PARAMETERS = 30_000  # PostgreSQL takes 65,535 per statement


def _upsert_together(conn, batches):
    parts, params = [], []
    for name, rows in batches:
        if rows:
            one = "VALUES (" + ", ".join(["{p}"] * len(rows[0])) + ")"
            many = "VALUES " + ", ".join([one[len("VALUES "):]] * len(rows))
            parts.append(f"{name}_upsert AS ({UPSERTS[name].replace(one, many).format(p='%s')})")
            params.extend(v for row in rows for v in row)
    conn.exec_driver_sql("WITH " + ", ".join(parts) + " SELECT 1", tuple(params))


def add(conn, rows):
    """Count listens just inserted: rows of (played_at, artist_id, album_id, track_id)."""
    buckets, artists, albums, tracks = _tally(rows)
    if not buckets:
        return
    # Sorted keys: two writers (there is one at a time, listen_feed orders them) would lock rows in
    # the same order.
    batches = [("counts", [(s, b, n) for (s, b), n in sorted(buckets.items())]),
               ("artists", [(a, n, lo, hi) for a, (n, lo, hi) in sorted(artists.items())]),
               ("albums", sorted(albums.items())), ("tracks", sorted(tracks.items()))]
    if conn.dialect.name == "postgresql" and sum(len(r) * len(r[0]) for _, r in batches if r) <= PG_MAX_PARAMETERS:
        _upsert_together(conn, batches)
        return
    for name, batch in batches:
        _upsert(conn, name, batch)


def remove(conn, rows):
    """Uncount listens just deleted (same rows as `add`); summaries that reach zero are deleted."""
    buckets, artists, albums, tracks = _tally(rows)
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
    ids = sorted(artists)
    for start in range(0, len(ids), 400):
        chunk = ids[start:start + 400]
        of_artist = listens_t.c.artist_id == artists_t.c.artist_id
        conn.execute(artists_t.update().where(artists_t.c.artist_id.in_(chunk)).values(
            first_played_at=sa.select(sa.func.min(listens_t.c.played_at)).where(of_artist).scalar_subquery(),
            last_played_at=sa.select(sa.func.max(listens_t.c.played_at)).where(of_artist).scalar_subquery()))


def rebuild(conn):
    """Every summary computed again from the listens (a few statements, one scan each)."""
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
