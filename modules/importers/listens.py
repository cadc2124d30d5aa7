"""Writing plays as listens, a batch per transaction, with artists, albums and tracks upserted in bulk.

A batch costs a handful of statements whatever its size: one select and at most one insert per
table. Listens that already exist (same second, artist key and title key) are skipped by the
database's unique constraint, so a re-import, a resumed job or a race adds nothing twice.

One play, one listen, across sources: the same play often arrives from several sources (a Spotify
export and the Last.fm scrobbles of the same plays). A play is taken as one already stored when a
listen **from another source** has the same artist and title keys and started within a window of
half the track's length (30 s to 4 min; 2 min when the length is unknown). A real repeat play
starts at least a whole track later, and plays from the same source are never merged this way, so
repeats stay separate.
"""
from __future__ import annotations

import threading
from collections import ChainMap
from dataclasses import dataclass

from ..db import insert_ignoring_conflicts
from ..models import Album, Artist, Listen, Track
from ..names import name_key
from . import listen_feed, summaries

artists_t, albums_t, tracks_t, listens_t = (Artist.__table__, Album.__table__, Track.__table__,
                                           Listen.__table__)


DEFAULT_WINDOW, MIN_WINDOW, MAX_WINDOW = 120, 30, 240


@dataclass
class BatchResult:
    imported: int = 0
    skipped: int = 0
    new_albums: int = 0
    cross_source: int = 0  # of `skipped`: the same play already stored from another source
    feed: listen_feed.FeedStamp | None = None  # for listen_feed.announce once the transaction commits


def same_play_window(duration_ms):
    """Seconds within which two starts of a track from two sources are one play."""
    if not duration_ms:
        return DEFAULT_WINDOW
    return max(MIN_WINDOW, min(MAX_WINDOW, int(duration_ms) // 2000))


# Sources that carry one history: the Last.fm API and Last.fm's own CSV export list the same
# scrobbles at the same seconds, so between them only exact duplicates are duplicates.
FAMILIES = ({"lastfm", "lastfm_csv"},)


def _family(source):
    return next((sorted(f) for f in FAMILIES if source in f), [source])


def _placeholders(conn, n):
    return ", ".join(["?" if conn.dialect.name == "sqlite" else "%s"] * n)


def _drop_cross_source_duplicates(conn, unique, source, result):
    """Remove from `unique` the plays already stored from another source (see the module doc)."""
    times = [k[0] for k in unique]
    lo, hi = min(times) - MAX_WINDOW, max(times) + MAX_WINDOW
    pairs = {(k[1], k[2]) for k in unique}
    stored = {}
    # The played_at index narrows it to the batch's time span; the pairs are matched here. Plain
    # SQL, as in summaries: it runs for every listen a client sends, and SQLAlchemy's building of
    # the statement cost several times the database's work.
    family = _family(source)
    rows = conn.exec_driver_sql(
        f"SELECT played_at, artist_key, title_key FROM listens WHERE played_at BETWEEN {_placeholders(conn, 1)} "
        f"AND {_placeholders(conn, 1)} AND source NOT IN ({_placeholders(conn, len(family))})", (lo, hi, *family))
    for played_at, akey, tkey in rows:
        if (akey, tkey) in pairs:
            stored.setdefault((akey, tkey), []).append(played_at)
    if not stored:
        return
    for key in list(unique):
        played_at, akey, tkey = key
        window = same_play_window(getattr(unique[key], "duration_ms", None))
        if any(abs(played_at - t) <= window for t in stored.get((akey, tkey), ())):
            del unique[key]
            result.skipped += 1
            result.cross_source += 1


class IdCache:
    """Ids of artists, albums and tracks a job has already found or created, so each batch only
    asks the database about names it has not seen. Valid for the job's life: nothing in the app
    deletes these rows. One per job, used under its write lock."""

    def __init__(self):
        self.by_table = {}

    def for_table(self, table):
        return self.by_table.setdefault(table.name, {})

    def use_database(self, topic):
        """write_plays names the database (its listen feed's topic): a job's cache serves one."""


class KnownIds:
    """Ids of artists, albums and tracks committed in the databases one app writes to, for writers
    that come and go (the scrobbling API: one listen per request), so a listen of a known track
    asks the database about none of them.

    Each transaction takes its own view (`transaction()`): what it finds or creates joins the shared
    ids only once it has committed (`commit()`), so a rollback leaves no id of a row that is not
    there. Ids are kept per listen feed topic, random per database, so another database behind the
    same app (a restore) never gets this one's ids; a listen refused for a foreign key all the same
    makes the caller `forget()` and try once more. Nothing in the app deletes these rows.
    """

    MAX_PER_TABLE = 200_000  # a whole library is a few tens of thousands; past it, start again

    def __init__(self):
        self._by_topic = {}
        self._lock = threading.Lock()

    def transaction(self):
        return _TransactionIds(self)

    def forget(self):
        with self._lock:
            self._by_topic = {}

    def _tables(self, topic):
        with self._lock:
            return self._by_topic.setdefault(topic, {})

    def _commit(self, topic, found):
        with self._lock:
            tables = self._by_topic.setdefault(topic, {})
            for name, ids in found.items():
                known = tables.setdefault(name, {})
                if len(known) + len(ids) > self.MAX_PER_TABLE:
                    known.clear()
                known.update(ids)


class _TransactionIds:
    """One transaction's view of KnownIds: the shared ids, and what this transaction found."""

    def __init__(self, owner):
        self.owner, self.topic, self.shared, self.found = owner, None, {}, {}

    def use_database(self, topic):
        self.topic, self.shared = topic, self.owner._tables(topic)

    def for_table(self, table):
        return ChainMap(self.found.setdefault(table.name, {}), self.shared.get(table.name, {}))

    def commit(self):
        """The transaction committed: what it found is true for everyone from now on."""
        if self.topic is not None and any(self.found.values()):
            self.owner._commit(self.topic, self.found)


def _ensure(conn, table, key_cols, rows_by_key, cache=None, missing=frozenset()):
    """Ids for every key in `rows_by_key` ({key tuple: row}), inserting the missing rows.

    Returns ({key: id}, keys created). Two-column keys are looked up by a join on the list of pairs
    (_pairs_lookup); keys already in the job's `cache` are not asked about at all, nor are those in
    `missing` (rows of an artist created in this same transaction, which cannot exist yet): they are
    inserted.
    """
    if not rows_by_key:
        return {}, set()
    known = cache.for_table(table) if cache is not None else {}
    ids = {k: known[k] for k in rows_by_key if k in known}
    if len(ids) == len(rows_by_key):
        return ids, set()
    rows_by_key = {k: v for k, v in rows_by_key.items() if k not in ids}
    found, created = _ensure_in_database(conn, table, key_cols, rows_by_key, missing)
    if cache is not None:
        known.update(found)
    ids.update(found)
    return ids, created


def _ensure_in_database(conn, table, key_cols, rows_by_key, missing=frozenset()):
    def lookup(keys):
        keys = list(keys)
        found = {}
        for start in range(0, len(keys), 400):  # keeps SQLite's bound-parameter count small
            chunk = keys[start:start + 400]
            wanted = set(chunk)
            if len(key_cols) == 2:
                rows = _pairs_lookup(conn, table, key_cols, chunk)
            else:
                # Plain SQL (table and column names are this module's own): what it costs through
                # SQLAlchemy (an IN list built and compiled afresh each time) outweighed the lookup.
                values = sorted({k[0] for k in chunk})
                sql = f"SELECT id, {key_cols[0]} FROM {table.name} WHERE {key_cols[0]} IN ({_placeholders(conn, len(values))})"
                rows = conn.exec_driver_sql(sql, tuple(values))
            for row in rows:
                key = tuple(row[1:])
                if key in wanted:
                    found[key] = row[0]
        return found

    ids = lookup(k for k in rows_by_key if k not in missing)
    absent = [rows_by_key[k] for k in rows_by_key if k not in ids]
    created = set()
    if absent:
        inserted = insert_ignoring_conflicts(conn, table, absent, returning=[table.c.id, *(table.c[c] for c in key_cols)])
        for row in inserted:
            ids[tuple(row[1:])] = row[0]
            created.add(tuple(row[1:]))
        raced = [k for k in rows_by_key if k not in ids]  # inserted by another writer meanwhile
        if raced:
            ids.update(lookup(raced))
    return ids, created


def _pairs_lookup(conn, table, key_cols, pairs):
    """Rows (id, *key) of `table` for two-column keys, as a join on a VALUES list of the pairs.

    One index search per pair. One IN per column made SQLite search the cross product of the two
    lists (300 artist ids x 400 titles for a batch of new tracks: most of a batch's time), and the
    same VALUES built with SQLAlchemy cost more to compile than it saved; this SQL is the same on
    SQLite and PostgreSQL but for the placeholder (their VALUES columns are column1, column2).
    """
    p = "?" if conn.dialect.name == "sqlite" else "%s"
    a, b = key_cols
    values = ", ".join([f"({p}, {p})"] * len(pairs))
    sql = (f"SELECT t.id, t.{a}, t.{b} FROM (VALUES {values}) AS v "
           f"JOIN {table.name} AS t ON t.{a} = v.column1 AND t.{b} = v.column2")
    return conn.exec_driver_sql(sql, tuple(x for pair in pairs for x in pair)).all()


def write_plays(conn, plays, source, job_id=None, cache=None):
    """Store a batch of plays (objects with played_at, artist, album, title, and optionally
    duration_ms, image_url and additional_info) in the caller's transaction. `cache`: the job's
    IdCache, or a KnownIds transaction. After the commit, the caller passes `result.feed` to
    listen_feed.announce."""
    result = BatchResult()
    if not plays:
        return result
    # First: the feed's row lock orders this batch after every other writer's (listen_feed).
    result.feed = listen_feed.claim(conn)
    if cache is not None:
        cache.use_database(result.feed.topic)
    unique = {}
    for p in plays:
        key = (p.played_at, name_key(p.artist), name_key(p.title))
        if key in unique:
            result.skipped += 1  # the same play twice in one batch
        else:
            unique[key] = p
    if unique:
        _drop_cross_source_duplicates(conn, unique, source, result)
    if not unique:
        return result

    artist_rows = {}
    for (_, akey, _), p in unique.items():
        artist_rows.setdefault((akey,), {"name": p.artist, "name_key": akey})
    artist_ids, new_artists = _ensure(conn, artists_t, ["name_key"], artist_rows, cache)
    new_artist_ids = {artist_ids[k] for k in new_artists}

    album_rows, track_rows = {}, {}
    for (_, akey, tkey), p in unique.items():
        artist_id = artist_ids[(akey,)]
        if p.album:
            bkey = name_key(p.album)
            album_rows.setdefault((artist_id, bkey), {"artist_id": artist_id, "title": p.album, "title_key": bkey,
                                                      "needs_enrichment": True,
                                                      "image_url": getattr(p, "image_url", None)})
        track_rows.setdefault((artist_id, tkey), {"artist_id": artist_id, "title": p.title, "title_key": tkey})
    album_ids, new_albums = _ensure(conn, albums_t, ["artist_id", "title_key"], album_rows, cache,
                                    missing={k for k in album_rows if k[0] in new_artist_ids})
    result.new_albums = len(new_albums)
    track_ids, _ = _ensure(conn, tracks_t, ["artist_id", "title_key"], track_rows, cache,
                           missing={k for k in track_rows if k[0] in new_artist_ids})

    listen_rows = []
    for (played_at, akey, tkey), p in unique.items():
        artist_id = artist_ids[(akey,)]
        listen_rows.append({
            "played_at": played_at, "artist_key": akey, "title_key": tkey, "artist_id": artist_id,
            "album_id": album_ids.get((artist_id, name_key(p.album))) if p.album else None,
            "track_id": track_ids[(artist_id, tkey)], "source": source, "job_id": job_id,
            "additional_info": getattr(p, "additional_info", None),
        })
    inserted = 0
    for start in range(0, len(listen_rows), 500):
        # The rows really kept (a duplicate is skipped by the unique constraint) go into the
        # summaries in this same transaction: a page reading them agrees with the listens.
        kept = insert_ignoring_conflicts(conn, listens_t, listen_rows[start:start + 500], returning=[
            listens_t.c.played_at, listens_t.c.artist_id, listens_t.c.album_id, listens_t.c.track_id])
        summaries.add(conn, kept)
        inserted += len(kept)
    result.imported = inserted
    result.skipped += len(listen_rows) - inserted
    return result


def forget_listens(conn, where):
    """Delete the listens matching `where` (a SQLAlchemy condition on listens) and uncount them from
    the summaries, in the caller's transaction. Returns how many were deleted."""
    feed = listen_feed.claim(conn, rewrites=True)  # ordered after every other writer of listens, as write_plays
    gone = conn.execute(listens_t.delete().where(where).returning(
        listens_t.c.played_at, listens_t.c.artist_id, listens_t.c.album_id, listens_t.c.track_id)).all()
    summaries.remove(conn, gone)
    return len(gone), feed


def ensure_albums(conn, albums, image_source=None):
    """Album ids for (artist, title, image_url) triples, creating missing artists and albums.

    Returns ({(artist key, title key): album id}, albums created). An existing album is never
    rewritten; a new one takes the image given.
    """
    artist_rows = {}
    for artist, _title, _image in albums:
        key = name_key(artist)
        artist_rows.setdefault((key,), {"name": artist, "name_key": key})
    artist_ids, _ = _ensure(conn, artists_t, ["name_key"], artist_rows)
    album_rows = {}
    for artist, title, image in albums:
        artist_id = artist_ids[(name_key(artist),)]
        album_rows.setdefault((artist_id, name_key(title)), {
            "artist_id": artist_id, "title": title, "title_key": name_key(title), "needs_enrichment": True,
            "image_url": image, "image_source": image_source if image else None})
    album_ids, created = _ensure(conn, albums_t, ["artist_id", "title_key"], album_rows)
    created = len(created)
    by_names = {}
    for artist, title, _image in albums:
        akey, tkey = name_key(artist), name_key(title)
        by_names[(akey, tkey)] = album_ids[(artist_ids[(akey,)], tkey)]
    return by_names, created
