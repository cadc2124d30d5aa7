"""What one scrobble costs the database, and the app-wide ids that keep it small (importers/listens.KnownIds).

A listen of a known track asks about no artist, album or track; ids found in a transaction that
rolled back are never used; ids never cross from one database to another; and the journal's news
of a listen (published from a thread of its own) still arrives, once per change, newest last.
"""
import json
import threading
import time

import pytest
import sqlalchemy as sa
from flask_jobprogress import MemoryStore

from modules.db import db
from modules.importers import listen_feed
from modules.importers.listens import KnownIds, write_plays
from modules.importers.scrobbles import Scrobble
from modules.models import Album, Artist, Listen, Track
from tests.conftest import make_app

TOKEN = "scrobble-ids-test-token-0123456789"
AUTH = {"Authorization": f"Token {TOKEN}"}
NOW = int(time.time())


@pytest.fixture
def app(tmp_path, migrated_template):
    return make_app(tmp_path / "instance", migrated_template, environ={"API_TOKEN": TOKEN})


def single(t, artist="Massive Attack", title="Teardrop", album="Mezzanine"):
    meta = {"artist_name": artist, "track_name": title, **({"release_name": album} if album else {})}
    return json.dumps({"listen_type": "single", "payload": [{"listened_at": t, "track_metadata": meta}]})


class Statements:
    """The SQL statements an engine sends while it is recorded."""

    def __init__(self, engine):
        self.engine, self.sent = engine, []

    def _record(self, _conn, _cursor, statement, *_args):
        self.sent.append(" ".join(statement.split()))

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def touching(self, *tables):
        return [s for s in self.sent if any(f" {t} " in f" {s} " or f"FROM {t}" in s or f"INTO {t} " in s
                                            for t in tables)]


def stored(app):
    with app.app_context():
        try:
            return db.session.execute(
                sa.select(Listen.played_at, Artist.name, Track.title, Album.title)
                .join(Artist, Artist.id == Listen.artist_id).join(Track, Track.id == Listen.track_id)
                .outerjoin(Album, Album.id == Listen.album_id).order_by(Listen.played_at)).all()
        finally:
            db.session.remove()


def test_a_listen_of_a_known_track_looks_up_no_name(app):
    client = app.test_client()
    assert client.post("/1/submit-listens", data=single(NOW - 3000), headers=AUTH).status_code == 200
    with app.app_context():
        engine = db.engine
    with Statements(engine) as first_time:
        assert client.post("/1/submit-listens", data=single(NOW - 2000, title="Angel"), headers=AUTH).status_code == 200
    with Statements(engine) as again:
        assert client.post("/1/submit-listens", data=single(NOW - 1000), headers=AUTH).status_code == 200
    # A new track of a known artist and album: only the track is asked about, then created.
    assert [s.split()[0] for s in first_time.touching("tracks")] == ["SELECT", "INSERT"]
    assert not first_time.touching("artists", "albums")
    # The same track again: no name looked up at all, and the listen and its summaries written.
    assert not again.touching("artists", "albums", "tracks")
    assert len(again.touching("listens")) == 2  # the same-play check and the insert
    summaries = again.touching("listen_counts", "artist_plays", "album_plays", "track_plays")
    # One upsert per summary table; on PostgreSQL, the four in one statement (one round trip).
    assert len(summaries) == (1 if engine.dialect.name == "postgresql" else 4)
    assert all(f"INSERT INTO {t} " in " ".join(summaries)
               for t in ("listen_counts", "artist_plays", "album_plays", "track_plays"))
    assert [r[1:] for r in stored(app)] == [("Massive Attack", "Teardrop", "Mezzanine"),
                                            ("Massive Attack", "Angel", "Mezzanine"),
                                            ("Massive Attack", "Teardrop", "Mezzanine")]


def test_a_new_artists_album_and_track_are_inserted_without_a_lookup(app):
    client = app.test_client()
    with app.app_context():
        engine = db.engine
    with Statements(engine) as sent:
        assert client.post("/1/submit-listens", data=single(NOW - 100, "Björk", "Jóga", "Homogenic"),
                           headers=AUTH).status_code == 200
    assert [s.split()[0] for s in sent.touching("artists")] == ["SELECT", "INSERT"]
    assert [s.split()[0] for s in sent.touching("albums")] == ["INSERT"]
    assert [s.split()[0] for s in sent.touching("tracks")] == ["INSERT"]
    assert [r[1:] for r in stored(app)] == [("Björk", "Jóga", "Homogenic")]


def test_ids_of_a_transaction_that_rolled_back_are_not_kept(app):
    known = KnownIds()
    with app.app_context():
        with db.engine.begin() as conn:  # a first listen, committed (the feed's row is made then)
            ids = known.transaction()
            write_plays(conn, [Scrobble(NOW - 60, "Massive Attack", "Angel")], "listenbrainz_api", cache=ids)
        ids.commit()
        with pytest.raises(RuntimeError), db.engine.begin() as conn:
            ids = known.transaction()
            write_plays(conn, [Scrobble(NOW - 50, "Portishead", "Roads", "Dummy")], "listenbrainz_api", cache=ids)
            raise RuntimeError("the request failed after its listens were written")
        # The ids it found were never committed: a later transaction must not take them.
        with db.engine.begin() as conn:
            ids = known.transaction()
            outcome = write_plays(conn, [Scrobble(NOW - 40, "Portishead", "Roads", "Dummy")], "listenbrainz_api",
                                  cache=ids)
        ids.commit()
        db.session.remove()
    assert outcome.imported == 1
    assert [r[1:] for r in stored(app)] == [("Massive Attack", "Angel", None), ("Portishead", "Roads", "Dummy")]


def test_ids_never_cross_from_one_database_to_another(tmp_path, migrated_template):
    known = KnownIds()
    first = make_app(tmp_path / "first", migrated_template)
    second = make_app(tmp_path / "second", migrated_template)
    with second.app_context():  # the second database's ids are not the first's
        with db.engine.begin() as conn:
            write_plays(conn, [Scrobble(NOW - 500, "Someone Else", "Other Song")], "lastfm")
        db.session.remove()
    for application, t in ((first, NOW - 300), (second, NOW - 200), (first, NOW - 100)):
        with application.app_context():
            with db.engine.begin() as conn:
                ids = known.transaction()
                write_plays(conn, [Scrobble(t, "Air", "La femme d'argent", "Moon Safari")], "listenbrainz_api",
                            cache=ids)
            ids.commit()
            db.session.remove()
    assert [r[1:] for r in stored(first)] == [("Air", "La femme d'argent", "Moon Safari")] * 2
    assert [r[1:] for r in stored(second)] == [("Someone Else", "Other Song", None),
                                               ("Air", "La femme d'argent", "Moon Safari")]


def test_a_kept_id_whose_row_is_gone_is_asked_again(app):
    """Nothing in the app deletes artists or tracks; if someone does it by hand, the listen is still stored."""
    client = app.test_client()
    assert client.post("/1/submit-listens", data=single(NOW - 900, "Gone", "Vanished", None), headers=AUTH).status_code == 200
    with app.app_context():
        with db.engine.begin() as conn:
            for table in ("listen_counts", "artist_plays", "track_plays", "artist_month_plays", "album_month_plays",
                          "track_month_plays", "listens", "tracks", "artists"):
                conn.exec_driver_sql(f"DELETE FROM {table}")
        db.session.remove()
    assert client.post("/1/submit-listens", data=single(NOW - 800, "Gone", "Vanished", None), headers=AUTH).status_code == 200
    assert [r[1:] for r in stored(app)] == [("Gone", "Vanished", None)]


def test_news_of_quick_listens_arrives_newest_last():
    store = MemoryStore()
    sub = store.subscribe("listens-test")
    stamps = [listen_feed.FeedStamp("listens-test", v) for v in range(1, 6)]
    threads = [threading.Thread(target=listen_feed.announce_soon, args=(store, s), kwargs={"imported": 1})
               for s in stamps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = 0
    while seen < 5:  # events may be coalesced (the store keeps the latest); the last is version 5
        snapshot = sub.wait(seen, 30)
        assert snapshot is not None, "no news of the listens"
        assert snapshot["version"] > seen
        seen = snapshot["version"]
    sub.close()
    assert store.get("listens-test")["version"] == 5


def test_coalesced_news_adds_up_the_listens():
    published = []

    class Recorder:
        def publish(self, snapshot):
            published.append(snapshot)

    store = Recorder()  # the announcer holds it weakly
    announcer = listen_feed.Announcer(store)
    with announcer._wake:  # hold the announcer's thread back until all three are queued
        for version, imported in ((7, 2), (9, 1), (8, 4)):
            announcer.announce(listen_feed.FeedStamp("t", version), imported=imported, source="listenbrainz_api")
    announcer.flush()
    deadline = time.monotonic() + 30
    while not published and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(s["version"], s["imported"]) for s in published] == [(9, 7)]
